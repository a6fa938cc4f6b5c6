"""The run's baselines (components/evaluation/baselines.py) on a toy dataset."""

import numpy as np
import pytest

from components.evaluation import baselines, protocol
from models import ease
from models.popularity import PopularityModel
from models.retrieval_metrics import split_evaluator
from tests.conftest import toy_dataset

_GRID = (1.0, 100.0)  # two inverses keep the test fast


@pytest.fixture(scope="module")
def dataset():
    return toy_dataset()


@pytest.fixture(scope="module")
def evaluator(dataset):
    return split_evaluator(dataset, protocol.TRAINING_SPLITS, "test")


def test_a_random_split_has_popularity_and_ease_but_no_trending(dataset, evaluator):
    models, info = baselines.evaluate_baselines(dataset, evaluator, baselines.BaselineSettings(ease_grid=_GRID))
    assert list(models) == ["popularity", "ease", "trending"] and models["trending"] is None
    assert info["trending"] == {"days": 30, "window_start": None, "skipped": "not a temporal split (stratified)"}
    n = dataset.num_items
    assert models["ease"]["params"] == n * (n - 1) and models["ease"]["bytes"] == 128 + n * n * 4
    assert info["ease"]["skipped"] is None and info["ease"]["l2"] in _GRID and info["ease"]["seconds"] >= 0
    # The same evaluator as every other model: the metrics are what it gives the refit model.
    model, _ = ease.fit_for_test(dataset, grid=_GRID)
    assert models["ease"]["ndcg@10"] == round(evaluator.evaluate(model.score)["ndcg@10"], 4)
    training = np.concatenate([dataset.splits[s].item for s in protocol.TRAINING_SPLITS])
    popularity = PopularityModel(n).fit(training)
    assert models["popularity"]["ndcg@10"] == round(evaluator.evaluate(popularity.score)["ndcg@10"], 4)
    # The toy users stay within their cluster of items: the item-item model sees it, popularity cannot.
    assert models["ease"]["ndcg@10"] > models["popularity"]["ndcg@10"]


@pytest.mark.parametrize("method", ["temporal", "time_cutoff"])
def test_time_ordered_splits_have_trending(dataset, evaluator, method):
    settings = baselines.BaselineSettings(split_method=method, trending_days=1, ease_grid=_GRID)
    models, info = baselines.evaluate_baselines(dataset, evaluator, settings)
    assert models["trending"]["params"] == 2 * dataset.num_items and models["trending"]["users"] > 0
    latest = max(int(dataset.splits[s].timestamp.max()) for s in protocol.TRAINING_SPLITS)
    assert info["trending"] == {"days": 1, "window_start": latest - 86400, "skipped": None}


def test_ease_is_skipped_above_the_item_limit(dataset, evaluator):
    models, info = baselines.evaluate_baselines(dataset, evaluator, baselines.BaselineSettings(ease_max_items=10))
    assert models["ease"] is None and "ease_max_items 10" in info["ease"]["skipped"]
    assert models["popularity"] is not None

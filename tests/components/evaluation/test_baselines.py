"""The run's baselines (components/evaluation/baselines.py) on a toy dataset."""

import math

import numpy as np
import pytest

from components.evaluation import baselines, protocol
from models.retrieval_metrics import split_evaluator
from tests.conftest import toy_dataset

_GRID = (1.0, 100.0)  # two inverses keep the test fast


@pytest.fixture(scope="module")
def dataset():
    return toy_dataset()


@pytest.fixture(scope="module")
def evaluator(dataset):
    return split_evaluator(dataset, protocol.TRAINING_SPLITS, "test")


def _ndcg_at_10(scores, seen, relevant):
    """Mean ndcg@10 by its definition, one user at a time: scores(user) -> [num_items] (float64);
    seen, relevant: {user: set of items}. Items 0 and the user's seen ones are not ranked, equal
    scores go lower index first, relevance is binary (models/retrieval_metrics.py's protocol)."""
    values = []
    for user in sorted(relevant):
        row = scores(user)
        ranking = sorted((item for item in range(1, len(row)) if item not in seen.get(user, set())),
                         key=lambda item: (-row[item], item))
        dcg = sum(1 / math.log2(rank + 2) for rank, item in enumerate(ranking[:10]) if item in relevant[user])
        ideal = sum(1 / math.log2(rank + 2) for rank in range(min(len(relevant[user]), 10)))
        values.append(dcg / ideal)
    return sum(values) / len(values)


def _by_user(dataset, split_names):
    pairs = {}
    for name in split_names:
        for user, item in zip(dataset.splits[name].user.tolist(), dataset.splits[name].item.tolist()):
            pairs.setdefault(user, set()).add(item)
    return pairs


def _ridge_weights(histories, num_items, l2):
    """EASE's B by its definition (Steck 2019): column j regresses X[:, j] on the other columns,
    ridge-penalised, each solved on its own (B_jj = 0); X is binary [users, items]."""
    x = np.zeros([1 + max(histories), num_items])
    for user, items in histories.items():
        x[user, sorted(items)] = 1.0
    b = np.zeros([num_items, num_items])
    for j in range(1, num_items):
        others = [i for i in range(1, num_items) if i != j]
        a = x[:, others]
        b[others, j] = np.linalg.solve(a.T @ a + l2 * np.eye(len(others)), a.T @ x[:, j])
    return x, b


def test_a_random_split_has_popularity_and_ease_but_no_trending(dataset, evaluator):
    models, info = baselines.evaluate_baselines(dataset, evaluator, baselines.BaselineSettings(ease_grid=_GRID))
    assert list(models) == ["popularity", "ease", "trending"] and models["trending"] is None
    assert info["trending"] == {"days": 30, "window_start": None, "skipped": "not a temporal split (stratified)"}
    n = dataset.num_items
    assert models["ease"]["params"] == n * (n - 1) and models["ease"]["bytes"] == 128 + n * n * 4
    assert info["ease"]["skipped"] is None and info["ease"]["seconds"] >= 0
    # The expectations below use neither the baselines' models nor the evaluator: counts, ridge
    # regressions and ndcg@10 written out here, on the training share (train + eval) and the test split.
    share, test = _by_user(dataset, protocol.TRAINING_SPLITS), _by_user(dataset, ["test"])
    counts = np.zeros(n)
    for name in protocol.TRAINING_SPLITS:
        for item in dataset.splits[name].item.tolist():
            counts[item] += 1  # every interaction, repeats included
    assert models["popularity"]["ndcg@10"] == pytest.approx(_ndcg_at_10(lambda user: counts, share, test), abs=1e-4)
    # EASE: l2 is the grid's best eval ndcg@10 (fit on train, lowest l2 on a tie), then refit on train + eval.
    train, valid = _by_user(dataset, ["train"]), _by_user(dataset, ["eval"])
    on_eval = {}
    for l2 in _GRID:
        x, b = _ridge_weights(train, n, l2)
        on_eval[l2] = _ndcg_at_10(lambda user: x[user] @ b if user < len(x) else np.zeros(n), train, valid)
    picked = max(_GRID, key=lambda l2: round(on_eval[l2], 4))
    assert info["ease"]["l2"] == picked
    assert info["ease"]["grid"] == {f"{l2:g}": pytest.approx(on_eval[l2], abs=1e-4) for l2 in _GRID}
    x, b = _ridge_weights(share, n, picked)
    assert models["ease"]["ndcg@10"] == pytest.approx(_ndcg_at_10(lambda user: x[user] @ b, share, test), abs=1e-4)
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

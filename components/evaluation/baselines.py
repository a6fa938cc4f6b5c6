"""The baselines of every run, on the same split by the same evaluator as the learned models:
popularity, EASE (l2 picked on eval) and, on time-ordered splits, trending."""

import dataclasses
import os
import tempfile
import time
from typing import Dict, Optional, Tuple

import numpy as np

from components.evaluation import protocol
from models import ease
from models.popularity import PopularityModel
from models.retrieval_metrics import RetrievalEvaluator
from models.trending import TrendingModel

# Splits where "the last days of training" come just before the test period; on a random split
# the test interactions are spread over the whole history, so "recent" means nothing there.
TIME_ORDERED = ("temporal", "time_cutoff", "newest_span")
NON_PERSONALIZED = ("popularity", "trending")  # the blessing must beat these (blessing.py)


@dataclasses.dataclass(frozen=True)
class BaselineSettings:
    split_method: str = "stratified"
    trending_days: int = 30
    ease_max_items: int = ease.MAX_ITEMS
    ease_grid: Tuple[float, ...] = ease.L2_GRID


def evaluate_baselines(dataset, evaluator: RetrievalEvaluator, settings: BaselineSettings
                       ) -> Tuple[Dict[str, Optional[Dict]], Dict]:
    """({"popularity": M, "ease": M | None, "trending": M | None}, report.json's "baselines":
    {"ease": {"l2", "grid", "skipped", "seconds"}, "trending": {"days", "window_start", "skipped"}}).

    All are fit on the training share (train + eval), as the learned models' rankings remove it."""
    training = [dataset.splits[s] for s in protocol.TRAINING_SPLITS]
    items = np.concatenate([s.item for s in training])
    results = {"popularity": _saved_entry(evaluator, PopularityModel(dataset.num_items).fit(items))}

    started = time.monotonic()
    model, ease_info = ease.fit_for_test(dataset, settings.ease_max_items, settings.ease_grid)
    results["ease"] = _saved_entry(evaluator, model) if model is not None else None
    ease_info["seconds"] = round(time.monotonic() - started, 2)

    trending_info = {"days": settings.trending_days, "window_start": None, "skipped": None}
    if settings.split_method in TIME_ORDERED:
        trending = TrendingModel(dataset.num_items, settings.trending_days).fit(
            items, np.concatenate([s.timestamp for s in training]))
        results["trending"] = _saved_entry(evaluator, trending)
        trending_info["window_start"] = trending.window_start
    else:
        results["trending"] = None
        trending_info["skipped"] = f"not a temporal split ({settings.split_method})"
    return results, {"ease": ease_info, "trending": trending_info}


def _saved_entry(evaluator: RetrievalEvaluator, model) -> Dict:
    """M of a baseline; bytes: its saved .npy, as popularity has always been measured."""
    with tempfile.TemporaryDirectory() as tmp:
        sizes = protocol.sizes(model.save(os.path.join(tmp, "model")))
    return protocol.entry(evaluator, model.score, model.params, sizes)

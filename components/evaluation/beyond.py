"""Beyond accuracy: every model's and baseline's top 10 on the same test users, measured for
catalog coverage, concentration (Gini), novelty, intra-list diversity and the popular items'
share (models/beyond_accuracy.py). report.json holds them under each model as protocol.BEYOND_KEY.

The catalog is what the warm evaluation ranks: every item but index 0 and a cold-item
evaluation's held-out items. Popularity and novelty count the distinct users of each item in the
training share (train + eval, what every ranking removes). Diversity compares the items' list
features (genres, tags: the multi-valued item tables of models/feature_tables.py); without such a
feature it is null.
"""

from typing import Callable, Dict, Mapping, Optional

import numpy as np

from components.evaluation.protocol import BEYOND_KEY, TRAINING_SPLITS
from models import beyond_accuracy

TOP = 10


class WithBeyondAccuracy:
    """An evaluator whose evaluate() also returns BEYOND_KEY (the figures of each user's top 10),
    so that every entry (components/evaluation/protocol.py) gets them with one score_fn."""

    def __init__(self, inner, dataset, item_tables: Optional[Mapping[str, np.ndarray]] = None):
        self.inner = inner
        training = [dataset.splits[name] for name in TRAINING_SPLITS]
        users = np.concatenate([split.user for split in training])
        items = np.concatenate([split.item for split in training])
        self.counts = beyond_accuracy.item_user_counts(users, items, dataset.num_items)
        self.num_users = max(1, int(np.unique(users).size))
        hidden = np.asarray(getattr(dataset, "cold_items", ()), np.int64)
        self.catalog = np.setdiff1d(np.arange(1, dataset.num_items), hidden)
        self.features = list_features(item_tables or {}, dataset.num_items)

    def evaluate(self, score_fn: Callable, batch_size: int = 256, ks=(10, 100), **options) -> dict:
        metrics = self.inner.evaluate(score_fn, batch_size, ks, lists=TOP, **options)
        metrics[BEYOND_KEY] = beyond_accuracy.measure(metrics.pop("lists"), self.catalog, self.counts,
                                                      self.num_users, self.features)
        return metrics

    def __getattr__(self, name):  # users, cold, sample, ...: the wrapped evaluator's
        return getattr(self.inner, name)


def list_features(item_tables: Mapping[str, np.ndarray], num_items: int) -> Optional[list]:
    """Per item index, the ids (feature, value) of its multi-valued features; None without any."""
    lists = {name: np.asarray(table) for name, table in item_tables.items() if np.asarray(table).ndim == 2}
    if not lists:
        return None
    features = [[] for _ in range(num_items)]
    for name, table in sorted(lists.items()):
        for item in range(min(num_items, len(table))):
            features[item].extend((name, int(value)) for value in table[item] if value > 0)  # 0: padding, unknown
    return features


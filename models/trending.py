"""Trending baseline: every user gets the items most interacted with in the last days of training.

The window is `days` x 86400 seconds ending at the latest training timestamp (the training share's
own "now"), so on a time-ordered split it is what was popular just before the test period. Ties
rank by all-time training count, then by lower item index. Like PopularityModel it is scored with
the shared `RetrievalEvaluator`, which removes each user's training items.
"""

from __future__ import annotations

import numpy as np

from models.foundation import storage

DAY_SECONDS = 86400


class TrendingModel:
    """score(item) = its rank by (interactions in the window, all training interactions, -index).

    Args:
      num_items: catalog size; items are indices in [0, num_items).
      days: the window's length.
    """

    def __init__(self, num_items: int, days: int = 30):
        if not days > 0:
            raise ValueError(f"the trending window must be > 0 days, got {days}")
        self.num_items, self.days = int(num_items), days
        self.recent = np.zeros(self.num_items, np.int64)  # [num_items] interactions in the window
        self.total = np.zeros(self.num_items, np.int64)  # [num_items] all training interactions
        self.window_start = None  # Unix seconds: the first second of the window
        self._row = self._ranks()  # [num_items] float32, what score() returns for every user

    def fit(self, items: np.ndarray, timestamps: np.ndarray) -> "TrendingModel":
        """items [N], timestamps [N] (Unix seconds) of the training interactions (repeats count)."""
        items, timestamps = np.asarray(items).ravel(), np.asarray(timestamps).ravel()
        if items.shape != timestamps.shape:
            raise ValueError(f"items and timestamps differ in length: {items.size} != {timestamps.size}")
        if items.size and (not np.issubdtype(items.dtype, np.integer) or items.min() < 0
                           or items.max() >= self.num_items):
            raise ValueError(f"items must be integer item indices in [0, {self.num_items})")
        items = items.astype(np.int64)
        self.total = np.bincount(items, minlength=self.num_items)
        if items.size:
            self.window_start = int(timestamps.max()) - int(self.days * DAY_SECONDS)
            self.recent = np.bincount(items[timestamps >= self.window_start], minlength=self.num_items)
        self._row = self._ranks()
        return self

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        """user_indices [B] -> float32 scores [B, num_items], the same row for every user.

        The scores are ranks (num_items for the first item down to 1), exact in float32 for up to
        2**24 items, so the two-key order survives the float cast. The result is a read-only
        broadcast view (no [B, num_items] copy): copy it to modify it.
        """
        return np.broadcast_to(self._row, (np.asarray(user_indices).shape[0], self.num_items))

    def _ranks(self) -> np.ndarray:
        order = np.lexsort((np.arange(self.num_items), -self.total, -self.recent))  # last key is primary
        row = np.empty(self.num_items, np.float32)
        row[order] = np.arange(self.num_items, 0, -1, dtype=np.float32)
        return row

    @property
    def params(self) -> int:
        """Number of parameters: two counts per item (the window's and all of training)."""
        return 2 * self.num_items

    def save(self, path: str) -> str:
        """Writes the counts [2, num_items] int64 (window, all) as .npy; returns the path written."""
        path = path if path.endswith(".npy") else path + ".npy"  # the name np.save gave (it adds ".npy")
        storage.save_npy(path, np.stack([self.recent, self.total]))  # np.save's bytes; makes parent dirs
        return path

    @classmethod
    def load(cls, path: str, days: int = 30) -> "TrendingModel":
        """Reads a model written by `save` (days is not stored: it only matters to fit)."""
        counts = storage.load_npy(path)
        model = cls(counts.shape[1], days)
        model.recent, model.total = counts[0].astype(np.int64), counts[1].astype(np.int64)
        model._row = model._ranks()
        return model

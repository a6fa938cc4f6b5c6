"""Popularity baseline: every user gets the same ranking, by training interaction count.

It is the floor every learned model of the report must beat, scored with the same
`RetrievalEvaluator` (which removes each user's training items, so users do not all get the
same top-k list in the end). Ties (items with equal counts) rank by lower item index there.
"""

from __future__ import annotations

import numpy as np

from models.foundation import storage


class PopularityModel:
    """score(item) = number of training interactions of the item.

    Args:
      num_items: catalog size; items are indices in [0, num_items).
    """

    def __init__(self, num_items: int):
        self.num_items = int(num_items)
        self.counts = np.zeros(self.num_items, np.int64)  # [num_items], the model's only parameters

    def fit(self, train_items: np.ndarray) -> "PopularityModel":
        """train_items: item index of each training interaction [N] (repeats are the signal)."""
        items = np.asarray(train_items).ravel()
        if items.size and (not np.issubdtype(items.dtype, np.integer) or items.min() < 0
                           or items.max() >= self.num_items):
            raise ValueError(f"train_items must be integer item indices in [0, {self.num_items})")
        self.counts = np.bincount(items.astype(np.int64), minlength=self.num_items)
        return self

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        """user_indices [B] -> float32 scores [B, num_items], the same row for every user.

        The result is a read-only broadcast view (no [B, num_items] copy): copy it to modify it.
        """
        row = self.counts.astype(np.float32)  # exact up to 2**24 interactions per item
        return np.broadcast_to(row, (np.asarray(user_indices).shape[0], self.num_items))

    @property
    def params(self) -> int:
        """Number of parameters: one count per item."""
        return self.num_items

    def save(self, path: str) -> str:
        """Writes the counts [num_items] int64 as .npy; returns the path written (".npy" added)."""
        path = path if path.endswith(".npy") else path + ".npy"  # the name np.save gave (it adds ".npy")
        storage.save_npy(path, self.counts)  # np.save's bytes; makes parent dirs
        return path

    @classmethod
    def load(cls, path: str) -> "PopularityModel":
        """Reads a model written by `save`."""
        counts = storage.load_npy(path)
        model = cls(counts.shape[0])
        model.counts = counts.astype(np.int64)
        return model

"""The wide part's text columns for items without interactions, against a hand computation."""

import numpy as np
import pytest

from models import text_columns
from models.teacher import normalize_text


def test_cold_columns_are_the_calibrated_text_similarities_and_warm_ones_stay():
    rng = np.random.default_rng(0)
    num_items, users = 12, np.repeat(np.arange(1, 9), 3)
    items = rng.integers(1, 10, users.size)  # items 10 and 11 (and any not drawn) have no interactions
    wide = rng.normal(size=[num_items, num_items]).astype(np.float32)
    text = rng.normal(size=[num_items, 5])
    filled, info = text_columns.with_text_columns(wide, text, users, items)
    known = np.bincount(items, minlength=num_items) > 0
    known[0] = False
    unknown = np.flatnonzero(~known)[1:]  # without index 0
    assert info["items"] == unknown.size and 10 in unknown and 11 in unknown
    assert np.array_equal(filled[:, known], wide[:, known]) and np.array_equal(filled[:, 0], wide[:, 0])
    # alpha by hand: over each user's unseen warm items, EASE's score against the summed similarity
    unit = normalize_text(text).astype(np.float64)
    b, t = [], []
    for user in np.unique(users):
        seen = set(items[users == user].tolist())
        for j in np.flatnonzero(known):
            if j not in seen:
                b.append(sum(wide[h, j] for h in seen))
                t.append(sum(unit[h] @ unit[j] for h in seen))
    alpha = np.dot(b, t) / np.dot(t, t)
    assert info["alpha"] == pytest.approx(alpha, abs=1e-6)
    for i in unknown:
        for h in range(num_items):
            expected = alpha * (unit[h] @ unit[i]) if known[h] else 0.0
            assert filled[h, i] == pytest.approx(expected, abs=1e-5)


def test_a_catalog_without_cold_items_is_left_alone():
    wide = np.ones([4, 4], np.float32)
    filled, info = text_columns.with_text_columns(wide, np.eye(4), np.array([1, 1, 2]), np.array([1, 2, 3]))
    assert filled is wide and info == {"alpha": None, "items": 0}

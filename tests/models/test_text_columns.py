"""The wide part's columns for items without interactions, against a hand computation."""

import numpy as np
import pytest

from models import text_columns
from models.teacher import normalize_text


def test_cold_columns_are_the_text_weighted_means_of_their_nearest_warm_columns():
    rng = np.random.default_rng(0)
    num_items, users = 12, np.repeat(np.arange(1, 9), 3)
    items = rng.integers(1, 10, users.size)  # items 10 and 11 (and any not drawn) have no interactions
    wide = rng.normal(size=[num_items, num_items]).astype(np.float32)
    text = rng.normal(size=[num_items, 5])
    filled, info = text_columns.with_text_columns(wide, text, items, neighbours=3)
    known = np.bincount(items, minlength=num_items) > 0
    known[0] = False
    unknown = np.flatnonzero(~known)[1:]  # without index 0
    assert info == {"items": unknown.size, "neighbours": 3} and 10 in unknown and 11 in unknown
    assert np.array_equal(filled[:, known], wide[:, known]) and np.array_equal(filled[:, 0], wide[:, 0])
    unit = normalize_text(text).astype(np.float64)
    for i in unknown:
        # by hand: the 3 warm items of highest cosine, weighted by their positive cosines
        cosines = sorted(((unit[i] @ unit[j], j) for j in np.flatnonzero(known)), reverse=True)[:3]
        weights = {j: max(c, 0.0) for c, j in cosines}
        total = sum(weights.values())
        for h in range(num_items):
            expected = sum(w * wide[h, j] for j, w in weights.items()) / total if total > 0 else 0.0
            assert filled[h, i] == pytest.approx(expected, abs=1e-5)


def test_an_item_whose_text_resembles_no_warm_item_gets_an_empty_column():
    wide = np.arange(16, dtype=np.float32).reshape(4, 4)
    # item 3's text points away from items 1 and 2 (centred: the mean of 1..3 is removed first)
    text = np.array([[0.0, 0.0], [1.0, 0.1], [1.0, -0.1], [-2.0, 0.0]])
    filled, info = text_columns.with_text_columns(wide, text, np.array([1, 2]))
    assert info["items"] == 1 and np.array_equal(filled[:, 3], np.zeros(4))
    assert np.array_equal(filled[:, :3], wide[:, :3])


def test_a_catalog_without_cold_items_is_left_alone():
    wide = np.ones([4, 4], np.float32)
    filled, info = text_columns.with_text_columns(wide, np.eye(4), np.array([1, 2, 3]))
    assert filled is wide and info == {"items": 0, "neighbours": text_columns.NEIGHBOURS}

"""TrendingModel: the window and its tie-breaks by hand, validation, and save/load."""

import os

import numpy as np
import pytest

from models.trending import DAY_SECONDS, TrendingModel

_NOW = 100 * DAY_SECONDS
# In the last 2 days (from _NOW - 2 days on): item 4 twice, items 1 and 3 once each.
# Before: item 1 three times, item 2 twice, item 3 once. Totals: 1: 4, 2: 2, 3: 2, 4: 2.
_ITEMS = np.array([4, 4, 1, 3, 1, 1, 1, 2, 2, 3])
_TIMES = np.array([_NOW, _NOW - 1, _NOW - 2 * DAY_SECONDS, _NOW - DAY_SECONDS] + [_NOW - 10 * DAY_SECONDS] * 6)


def test_window_counts_and_ranking_by_hand():
    model = TrendingModel(6, days=2).fit(_ITEMS, _TIMES)
    assert model.window_start == _NOW - 2 * DAY_SECONDS  # inclusive: the row at the start counts
    np.testing.assert_array_equal(model.recent, [0, 1, 0, 1, 2, 0])
    np.testing.assert_array_equal(model.total, [0, 4, 2, 2, 2, 0])
    scores = model.score(np.array([3, 9]))
    assert scores.shape == (2, 6) and scores.dtype == np.float32
    # 4 (2 recent), then 1 and 3 (1 recent each; 1 has more in total), then 2 (0 recent, total 2),
    # then 0 and 5 (nothing; lower index first).
    order = np.argsort(-scores[0], kind="stable")
    np.testing.assert_array_equal(order, [4, 1, 3, 2, 0, 5])
    np.testing.assert_array_equal(scores[0], scores[1])  # the same row for everyone
    assert model.params == 12


def test_a_longer_window_is_popularity():
    model = TrendingModel(6, days=365).fit(_ITEMS, _TIMES)
    np.testing.assert_array_equal(model.recent, model.total)


def test_validation_and_empty_training():
    with pytest.raises(ValueError, match="days"):
        TrendingModel(3, days=0)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        TrendingModel(3).fit(np.array([3]), np.array([0]))
    with pytest.raises(ValueError, match="differ"):
        TrendingModel(3).fit(np.array([1, 2]), np.array([0]))
    empty = TrendingModel(3).fit(np.array([], np.int64), np.array([], np.int64))
    assert empty.window_start is None
    np.testing.assert_array_equal(empty.score(np.array([1]))[0], [3, 2, 1])  # ties: lower index first


def test_save_load_round_trip(tmp_path):
    model = TrendingModel(6, days=2).fit(_ITEMS, _TIMES)
    path = model.save(str(tmp_path / "trending"))
    assert path.endswith(".npy") and os.path.getsize(path) == 128 + 2 * 6 * 8
    loaded = TrendingModel.load(path, days=2)
    np.testing.assert_array_equal(loaded.score(np.arange(2)), model.score(np.arange(2)))

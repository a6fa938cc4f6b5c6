"""PopularityModel: counts by hand, save/load round trip, and its metrics through the evaluator."""

import math
import os

import numpy as np
import pytest

from models.popularity import PopularityModel
from models.retrieval_metrics import RetrievalEvaluator

# Training pairs: user 0 -> {3, 2}, user 1 -> {3, 2, 0}, user 2 -> {3}.
_USERS = np.array([0, 0, 1, 1, 1, 2])
_ITEMS = np.array([3, 2, 3, 2, 0, 3])


def test_counts_and_scores_by_hand():
    model = PopularityModel(5).fit(_ITEMS)
    # item 3: three interactions, item 2: two, item 0: one, items 1 and 4: none.
    np.testing.assert_array_equal(model.counts, [1, 0, 2, 3, 0])
    scores = model.score(np.array([7, 1]))
    assert scores.shape == (2, 5) and scores.dtype == np.float32
    np.testing.assert_array_equal(scores, [[1, 0, 2, 3, 0]] * 2)  # the same row for everyone
    assert model.params == 5


def test_fit_validates_and_handles_empty():
    np.testing.assert_array_equal(PopularityModel(3).fit(np.array([], np.int64)).counts, [0, 0, 0])
    with pytest.raises(ValueError, match="\\[0, 3\\)"):
        PopularityModel(3).fit(np.array([0, 3]))


def test_save_load_round_trip(tmp_path):
    model = PopularityModel(5).fit(_ITEMS)
    path = model.save(str(tmp_path / "popularity"))
    assert path.endswith(".npy") and os.path.getsize(path) == 128 + 5 * 8  # .npy header + int64s
    loaded = PopularityModel.load(path)
    np.testing.assert_array_equal(loaded.counts, model.counts)
    np.testing.assert_array_equal(loaded.score(np.arange(3)), model.score(np.arange(3)))


def test_metrics_by_hand():
    # Popularity ranking: 3, 2, 0, then 1 and 4 tied at 0 (lower index first): 3, 2, 0, 1, 4.
    # After removing each user's training items:
    #   user 0 (seen 3, 2):    0, 1, 4  -> relevant item 0 at rank 1
    #   user 1 (seen 3, 2, 0): 1, 4     -> relevant item 4 at rank 2
    #   user 2 (seen 3):       2, 0, 1, 4 -> relevant item 1 at rank 3
    # @1: only user 0 hits: recall = precision = ndcg = 1/3.
    # @3: every user hits once: recall 1, precision 1/3,
    #     ndcg = (1 + 1/log2(3) + 1/log2(4)) / 3 (one relevant item each, so IDCG = 1).
    model = PopularityModel(5).fit(_ITEMS)
    ev = RetrievalEvaluator(5, (_USERS, _ITEMS), {0: {0}, 1: {4}, 2: {1}})
    got = ev.evaluate(model.score, ks=(1, 3))
    assert (got["recall@1"], got["precision@1"], got["ndcg@1"]) == pytest.approx((1 / 3,) * 3)
    assert (got["recall@3"], got["precision@3"]) == pytest.approx((1, 1 / 3))
    assert got["ndcg@3"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(4)) / 3)

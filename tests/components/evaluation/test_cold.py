"""The cold-item evaluation against hand-computed cases, and the warm table without the cold items."""

import numpy as np
import pytest

from components.evaluation import cold as cold_lib
from models.interaction_data import Dataset, Split
from models.retrieval_metrics import split_evaluator

NUM_ITEMS = 106  # index 0, items 1..105; 4 and 5 are cold


def _split(pairs):
    users, items = (np.array(v, np.int64) for v in zip(*pairs)) if pairs else (np.zeros(0, np.int64),) * 2
    return Split(users, items, np.arange(len(users), dtype=np.int64))


def _dataset():
    splits = {"train": _split([(1, 1), (1, 2), (2, 1), (2, 3)]), "eval": _split([]),
              "test": _split([(1, 3), (1, 4), (2, 5), (2, 4)])}
    return Dataset(["", "u1", "u2"], [""] + [f"i{k}" for k in range(1, NUM_ITEMS)], [""] * 3, [""] * NUM_ITEMS,
                   splits, cold_items=np.array([4, 5], np.int64))


def _scores(table):
    return lambda users: np.stack([table[int(u)] for u in users])


def test_cold_metrics_by_hand():
    s = np.zeros([3, NUM_ITEMS])
    s[1, 6:106] = 1.0  # 100 warm items above user 1's cold items
    s[1, 4], s[1, 5] = 0.1, 0.3  # among the cold: 5 first, the positive 4 second
    s[2, 4], s[2, 5] = 2.0, 1.5  # both of user 2's positives first
    result = cold_lib.ColdEvaluator(_dataset()).evaluate(_scores(s), batch_size=1)
    assert result["ndcg@10"] == round((1 / np.log2(3) + 1.0) / 2, 4)
    assert result["recall@10"] == 1.0
    # pooled: user 1's positive is 102nd in the whole catalog, user 2's two are 1st and 2nd
    assert result["top100_share"] == round(2 / 3, 4)
    assert (result["users"], result["positives"]) == (2, 3)


def test_the_warm_table_neither_ranks_nor_counts_the_cold_items():
    s = np.zeros([3, NUM_ITEMS])
    s[1, 5], s[1, 3] = 9.0, 5.0  # a cold item above user 1's warm positive
    warm = split_evaluator(_dataset(), ["train", "eval"], "test")
    metrics = warm.evaluate(_scores(s), ks=(10,))
    assert metrics["users"] == 1  # user 2 has cold positives only
    assert metrics["ndcg@10"] == 1.0 and metrics["recall@10"] == 1.0


def test_with_cold_adds_the_cold_metrics_to_every_entry():
    dataset = _dataset()
    evaluator = cold_lib.evaluator_for(dataset, split_evaluator(dataset, ["train", "eval"], "test"))
    metrics = evaluator.evaluate(_scores(np.random.default_rng(0).random([3, NUM_ITEMS])), ks=(10, 100))
    assert set(metrics["cold"]) == {"ndcg@10", "recall@10", "top100_share", "users", "positives"}
    results = {"a": {"ndcg@10": 0.5, "cold": {"ndcg@10": 0.2}}, "b": None}
    assert cold_lib.split_cold(results) == {"a": {"ndcg@10": 0.2}} and results["a"] == {"ndcg@10": 0.5}
    warm_only = Dataset(**{**dataset.__dict__, "cold_items": np.zeros(0, np.int64)})
    plain = split_evaluator(warm_only, ["train", "eval"], "test")
    assert cold_lib.evaluator_for(warm_only, plain) is plain


def test_text_knn_is_the_mean_cosine_to_the_training_items():
    dataset = _dataset()
    text = np.random.default_rng(1).normal(size=[NUM_ITEMS, 4])
    scores = cold_lib.text_knn_scores(dataset, text)(np.array([1, 2]))
    centred = text - text[1:].mean(axis=0)
    for row, history in ((0, [1, 2]), (1, [1, 3])):
        for item in (4, 5, 50):
            cosines = [centred[h] @ centred[item] / np.linalg.norm(centred[h]) / np.linalg.norm(centred[item])
                       for h in history]
            assert scores[row, item] == pytest.approx(np.mean(cosines), abs=1e-6)


def test_random_scores_are_seeded_per_user():
    first = cold_lib.random_scores(NUM_ITEMS)(np.array([1, 2]))
    again = cold_lib.random_scores(NUM_ITEMS)(np.array([2]))
    assert first.shape == (2, NUM_ITEMS) and np.array_equal(first[1], again[0])
    assert not np.array_equal(first[0], first[1])

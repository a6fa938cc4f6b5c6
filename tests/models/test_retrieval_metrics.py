"""RetrievalEvaluator: hand-computed toy cases, then a slow pure-Python reference on random data."""

import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from models.retrieval_metrics import RetrievalEvaluator, from_pairs

L2, L3, L4 = math.log2(2), math.log2(3), math.log2(4)  # discounts of ranks 1, 2, 3


def _table(rows):
    """A score_fn that looks scores up in a [users, items] table."""
    table = np.asarray(rows, np.float32)
    return lambda users: table[users]


# ---- hand-computed toy cases --------------------------------------------------------------------
# 6 items. User 0: trained on item 0 (which also gets the top score), relevant {1, 3}.
# User 1: no training items, relevant {5}. User 2: no test item, so not evaluated.
_TRAIN = {0: {0}, 2: {1, 2}}
_TEST = {0: {1, 3}, 1: {5}, 2: set()}
_SCORES = [[10, 5, 4, 3, 2, 1], [0, 0, 0, 0, 0, 1], [1, 1, 1, 1, 1, 1]]


def test_toy_by_hand():
    got = RetrievalEvaluator(6, _TRAIN, _TEST).evaluate(_table(_SCORES), ks=(2, 3))
    # User 0: item 0 is removed, ranking 1, 2, 3, 4, 5 (without the removal, item 0 would take a slot).
    #   @2: top [1, 2], one hit at rank 1: P = 1/2, R = 1/2, DCG = 1, IDCG = 1 + 1/log2(3).
    #   @3: top [1, 2, 3], hits at ranks 1 and 3: P = 2/3, R = 2/2, DCG = 1 + 1/log2(4) = 1.5.
    # User 1: item 5 at rank 1; one relevant item, so IDCG = 1 (min(1, k) terms): P@2 = 1/2,
    #   P@3 = 1/3 (k in the denominator), R = 1, NDCG = 1.
    idcg0 = 1 / L2 + 1 / L3
    assert got["users"] == 2  # user 2 has an empty test set
    assert got["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert got["recall@2"] == pytest.approx((1 / 2 + 1) / 2)
    assert got["ndcg@2"] == pytest.approx((1 / idcg0 + 1) / 2)
    assert got["precision@3"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert got["recall@3"] == pytest.approx((1 + 1) / 2)
    assert got["ndcg@3"] == pytest.approx(((1 + 1 / L4) / idcg0 + 1) / 2)
    # per user (the push gate's paired comparison): users 0 and 1 in order, the same values
    paired = RetrievalEvaluator(6, _TRAIN, _TEST).evaluate(_table(_SCORES), ks=(2, 3), per_user=True)["per_user"]
    np.testing.assert_allclose(paired["ndcg@2"], [1 / idcg0, 1.0])
    np.testing.assert_allclose(paired["ndcg@3"], [(1 + 1 / L4) / idcg0, 1.0])


def test_ties_rank_lower_item_first():
    # All scores equal: ranking 0, 1, 2, 3; relevant item 2 is at rank 3.
    ev = RetrievalEvaluator(4, {}, {0: {2}})
    got = ev.evaluate(_table([[1, 1, 1, 1]]), ks=(2, 3))
    assert (got["recall@2"], got["recall@3"]) == (0.0, 1.0)
    assert got["ndcg@3"] == pytest.approx(1 / L4)  # DCG 1/log2(4), IDCG 1
    assert got["precision@3"] == pytest.approx(1 / 3)
    # A tie at the cut-off: scores 2, 1, 1, 1 with k = 2 keeps items 0 and 1, so item 1 is a hit.
    ev = RetrievalEvaluator(4, {}, {0: {1}})
    assert ev.evaluate(_table([[2, 1, 1, 1]]), ks=(2,))["recall@2"] == 1.0


def test_removed_items_never_take_a_slot():
    # Items 0 and 1 are seen; only item 2 remains, so @10 has one ranked item and 9 empty places:
    # P = 1/10 (k in the denominator), R = 1, NDCG = 1.
    got = RetrievalEvaluator(3, {0: {0, 1}}, {0: {2}}).evaluate(_table([[9, 8, 0]]), ks=(10,))
    assert (got["precision@10"], got["recall@10"], got["ndcg@10"]) == pytest.approx((0.1, 1.0, 1.0))
    # The model's own -inf scores still rank above removed items: ranking 1, 2, 3 (ties by index),
    # item 2 at rank 2 gives NDCG 1/log2(3); a removed item 0 ahead of them would make it rank 3.
    got = RetrievalEvaluator(4, {0: {0}}, {0: {2}}).evaluate(_table([[5] + [-np.inf] * 3]), ks=(2,))
    assert got["ndcg@2"] == pytest.approx(1 / L3)


def test_test_item_also_seen_in_training_counts_but_cannot_hit():
    # Relevant {0, 1}, item 0 was also a training item: it is removed, item 1 is ranked first.
    got = RetrievalEvaluator(3, {0: {0}}, {0: {0, 1}}).evaluate(_table([[3, 2, 1]]), ks=(2,))
    assert got["recall@2"] == pytest.approx(1 / 2)  # 1 hit out of 2 relevant, as in Recommenders


def test_evaluate_ranked_by_hand():
    # List 0, 1, 1, -1, 3 for user 0 of the toy: item 0 is seen, the second 1 is a repeat and -1
    # is padding, so the ranking is 1, 3: @2 P = 1, R = 1, NDCG = 1; @3 P = 2/3 (a missing place).
    ev = RetrievalEvaluator(6, _TRAIN, {0: {1, 3}})
    got = ev.evaluate_ranked(lambda users: np.array([[0, 1, 1, -1, 3]] * len(users)), ks=(2, 3))
    assert (got["precision@2"], got["recall@2"], got["ndcg@2"]) == pytest.approx((1, 1, 1))
    assert (got["precision@3"], got["recall@3"], got["ndcg@3"]) == pytest.approx((2 / 3, 1, 1))


def test_errors_are_explicit():
    ev = RetrievalEvaluator(3, {}, {0: {1}})
    with pytest.raises(ValueError, match="shape"):
        ev.evaluate(lambda users: np.zeros((len(users), 2), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        ev.evaluate(lambda users: np.full((len(users), 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="max\\(ks\\)"):
        ev.evaluate_ranked(lambda users: np.zeros((len(users), 5), np.int64), ks=(10,))
    with pytest.raises(ValueError, match="item indices"):
        ev.evaluate_ranked(lambda users: np.full((len(users), 10), 3), ks=(10,))
    with pytest.raises(ValueError, match="\\[0, 3\\)"):
        RetrievalEvaluator(3, {0: {3}}, {0: {1}})
    with pytest.raises(ValueError, match="nothing to evaluate"):
        RetrievalEvaluator(3, {0: {1}}, {1: set()}).evaluate(_table([[0, 0, 0]] * 2))


def test_from_pairs_and_input_forms_agree():
    users, items = np.array([0, 0, 2, 0]), np.array([1, 4, 3, 1])
    assert from_pairs(users, items) == {0: {1, 4}, 2: {3}}
    sparse = pytest.importorskip("scipy.sparse")
    test = {0: {2, 3}, 1: {0}, 2: {1}}
    scores = _table(np.random.default_rng(0).random((3, 5)))
    forms = [from_pairs(users, items), (users, items),
             sparse.csr_matrix((np.ones(4), (users, items)), shape=(3, 5))]
    results = [RetrievalEvaluator(5, train, test).evaluate(scores, ks=(2,)) for train in forms]
    assert results[0] == results[1] == results[2]


# ---- a slow, loop-only reference on random data -------------------------------------------------
def _reference(num_items, train, test, scores, ks):
    """Recommenders' definitions, one user at a time, one item at a time."""
    out = {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "precision", "ndcg")}
    users = [u for u in sorted(test) if test[u]]
    for u in users:
        unseen = [i for i in range(num_items) if i not in train.get(u, set())]
        ranking = sorted(unseen, key=lambda i: (-float(scores[u][i]), i))
        for k in ks:
            top = ranking[:k]
            hits = sum(1 for i in top if i in test[u])
            dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(top) if i in test[u])
            idcg = sum(1 / math.log2(r + 2) for r in range(min(len(test[u]), k)))
            out[f"precision@{k}"] += hits / k / len(users)
            out[f"recall@{k}"] += hits / len(test[u]) / len(users)
            out[f"ndcg@{k}"] += dcg / idcg / len(users)
    return {**out, "users": len(users)}


def _random_case(seed, num_users=40, num_items=30):
    rng = np.random.default_rng(seed)
    train, test = {}, {}
    for u in range(num_users):
        items = rng.permutation(num_items)
        n_train, n_test = rng.integers(0, 12), rng.integers(0, 6)  # some users have none of either
        if n_train:
            train[u] = set(items[:n_train].tolist())
        test[u] = set(items[n_train:n_train + n_test].tolist())
        if seed % 2 and n_train and rng.random() < 0.2:
            test[u].add(int(items[0]))  # a relevant item also seen in training
    # Small integer scores make many ties, also across the top-k cut-off.
    scores = (rng.integers(0, 4, (num_users, num_items)) if seed % 3 == 0
              else rng.standard_normal((num_users, num_items))).astype(np.float32)
    return num_items, train, test, scores


@pytest.mark.parametrize("seed", range(6))
def test_matches_loop_reference(seed):
    num_items, train, test, scores = _random_case(seed)
    ks = (1, 5, 10, 100)  # 100 > num_items: the ranking runs out, places count as misses
    expected = _reference(num_items, train, test, scores, ks)
    ev = RetrievalEvaluator(num_items, train, test)
    results = [ev.evaluate(_table(scores), batch_size=b, ks=ks) for b in (1, 3, 256)]
    assert results[0] == results[1] == results[2]  # bit-identical whatever the batch size
    assert results[0]["users"] == expected["users"]
    assert results[0] == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_evaluate_ranked_equals_evaluate_on_full_argsort(seed):
    num_items, train, test, scores = _random_case(seed)
    ev = RetrievalEvaluator(num_items, train, test)
    full = lambda users: np.argsort(-scores[users], axis=1, kind="stable")  # noqa: E731
    for b in (1, 3, 256):
        assert ev.evaluate_ranked(full, b, (1, 5, 10)) == pytest.approx(
            ev.evaluate(_table(scores), b, (1, 5, 10)), rel=1e-12)


@pytest.mark.slow  # a fresh interpreter (~4 s)
def test_modules_do_not_import_tensorflow():
    code = "import sys, models.retrieval_metrics, models.popularity; sys.exit('tensorflow' in sys.modules)"
    root = pathlib.Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0


def test_a_sample_evaluates_a_seeded_subset_of_the_users():
    from models.retrieval_metrics import RetrievalEvaluator

    users = np.arange(1, 11)
    evaluator = RetrievalEvaluator(5, (users, np.ones(10, np.int64)), (users, 1 + users % 4))
    assert evaluator.sample(10) is evaluator and evaluator.sample(20) is evaluator
    sampled = evaluator.sample(4, seed=3)
    assert sampled.users.size == 4 and set(sampled.users) <= set(users) and np.all(np.diff(sampled.users) > 0)
    assert np.array_equal(evaluator.sample(4, seed=3).users, sampled.users) and evaluator.users.size == 10
    scores = np.tile(np.arange(5, dtype=np.float32), (11, 1))  # item 4 first, then 3, 2 (1 is seen)
    hit = {u: 1.0 if 1 + u % 4 == 4 else 0.0 for u in users}  # recall@1 of each user
    got = sampled.evaluate(lambda u: scores[u], ks=(1,))
    assert got["users"] == 4 and got["recall@1"] == pytest.approx(np.mean([hit[u] for u in sampled.users]))


@pytest.mark.parametrize("seed", range(3))
def test_lists_are_each_users_top_k_without_removed_items(seed):
    num_items, train, test, scores = _random_case(seed)
    ev = RetrievalEvaluator(num_items, train, test)
    for k in (3, 40):  # 40 > num_items: the lists run out and are padded with -1
        got = ev.evaluate(_table(scores), batch_size=7, ks=(10,), lists=k)
        assert got["lists"].shape == (len(ev.users), k)
        for row, user in zip(got["lists"], ev.users):
            unseen = [i for i in range(num_items) if i not in train.get(int(user), set())]
            expected = sorted(unseen, key=lambda i: (-float(scores[user][i]), i))[:k]
            assert row.tolist() == expected + [-1] * (k - len(expected))
        if k <= num_items:  # a ranked_fn returns at least k items
            ranked = ev.evaluate_ranked(lambda users: np.argsort(-scores[users], axis=1, kind="stable"), 7, (10,),
                                        lists=k)
            np.testing.assert_array_equal(ranked["lists"], got["lists"])
        del got["lists"]
        assert got == ev.evaluate(_table(scores), batch_size=7, ks=(10,))  # the metrics do not move


def test_the_noise_level_is_shared_by_the_comparisons():
    from models.retrieval_metrics import noise_z
    # normal table values: one-sided 5% (1.645), 2.5% (1.96), 5% / 6 = 0.833% (2.394), 1% (2.326)
    assert (noise_z(1), noise_z(2), noise_z(6), noise_z(1, level=0.01)) == (1.645, 1.96, 2.394, 2.326)
    with pytest.raises(ValueError):
        noise_z(0)

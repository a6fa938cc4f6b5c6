"""EaseModel: the closed form against per-column ridge regressions, the padding rules, save/load,
and the l2 grid on a toy dataset."""

import os

import numpy as np
import pytest

from models import ease
from models.ease import EaseModel
from models.retrieval_metrics import split_evaluator
from tests.conftest import toy_dataset

# Users 1..4 over items 1..4 (index 0 is padding); user 1 repeats item 1, user 0 and item 0 are unknown.
_USERS = np.array([1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 1, 0, 2])
_ITEMS = np.array([1, 2, 3, 2, 3, 1, 3, 4, 4, 1, 1, 2, 0])


def _binary_matrix():
    x = np.zeros([5, 5])
    known = (_USERS > 0) & (_ITEMS > 0)
    x[_USERS[known], _ITEMS[known]] = 1.0
    return x


def _per_column_ridge(x, l2):
    """B by its definition: column j regresses X[:, j] on the other columns (B_jj = 0 by construction),
    ridge-penalised, each solved on its own."""
    n = x.shape[1]
    b = np.zeros([n, n])
    for j in range(n):
        others = [i for i in range(n) if i != j]
        a = x[:, others]
        b[others, j] = np.linalg.solve(a.T @ a + l2 * np.eye(n - 1), a.T @ x[:, j])
    return b


@pytest.mark.parametrize("l2", [0.5, 3.0, 100.0])
def test_closed_form_equals_the_constrained_least_squares(l2):
    model = EaseModel(5, l2).fit(_USERS, _ITEMS, num_users=5)
    expected = _per_column_ridge(_binary_matrix(), l2)
    np.testing.assert_allclose(model.weights, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.diag(model.weights), 0.0)
    assert model.weights.dtype == np.float32 and model.params == 20


def test_scores_are_x_times_b_with_padding_never_recommended():
    model = EaseModel(5, 3.0).fit(_USERS, _ITEMS, num_users=5)
    scores = model.score(np.array([1, 4, 0]))
    assert scores.shape == (3, 5) and scores.dtype == np.float32
    assert np.isneginf(scores[:, 0]).all()
    expected = _binary_matrix() @ model.weights.astype(np.float64)
    np.testing.assert_allclose(scores[:, 1:], expected[[1, 4, 0], 1:], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(scores[2, 1:], 0.0)  # user 0's rows were left out: no history


def test_repeats_count_once():
    once = EaseModel(5, 3.0).fit(_USERS[:10], _ITEMS[:10], num_users=5)
    repeated = EaseModel(5, 3.0).fit(np.tile(_USERS[:10], 3), np.tile(_ITEMS[:10], 3), num_users=5)
    np.testing.assert_array_equal(once.weights, repeated.weights)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="l2"):
        EaseModel(5, 0.0)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        EaseModel(5, 1.0).fit(np.array([1]), np.array([5]), num_users=3)
    with pytest.raises(ValueError, match="use_interactions"):
        EaseModel(5, 1.0).score(np.array([1]))


def test_save_load_round_trip(tmp_path):
    model = EaseModel(5, 3.0).fit(_USERS, _ITEMS, num_users=5)
    path = model.save(str(tmp_path / "ease"))
    assert path.endswith(".npy") and os.path.getsize(path) == 128 + 25 * 4  # .npy header + float32s
    loaded = EaseModel.load(path).use_interactions(_USERS, _ITEMS, num_users=5)
    np.testing.assert_array_equal(loaded.weights, model.weights)
    np.testing.assert_array_equal(loaded.score(np.arange(5)), model.score(np.arange(5)))


def test_pick_l2_takes_the_best_eval_ndcg_of_the_grid():
    dataset = toy_dataset()
    train = dataset.splits["train"]
    evaluator = split_evaluator(dataset, ("train",), "eval")
    grid = (1.0, 10.0, 1000.0)
    best, found = ease.pick_l2(train.user, train.item, dataset.num_users, dataset.num_items, evaluator, grid)
    for l2 in grid:  # each value as an independent fit would score it
        model = EaseModel(dataset.num_items, l2).fit(train.user, train.item, dataset.num_users)
        assert found[f"{l2:g}"] == round(evaluator.evaluate(model.score, ks=(10,))["ndcg@10"], 4)
    assert found[f"{best:g}"] == max(found.values())


def test_fit_for_test_refits_on_train_and_eval_with_the_picked_l2():
    dataset = toy_dataset()
    model, info = ease.fit_for_test(dataset, grid=(1.0, 10.0, 1000.0))
    assert info["skipped"] is None and set(info["grid"]) == {"1", "10", "1000"} and model.l2 == info["l2"]
    train, valid = dataset.splits["train"], dataset.splits["eval"]
    refit = EaseModel(dataset.num_items, info["l2"]).fit(np.concatenate([train.user, valid.user]),
                                                         np.concatenate([train.item, valid.item]), dataset.num_users)
    np.testing.assert_array_equal(model.weights, refit.weights)
    np.testing.assert_array_equal(model.score(np.arange(1, 5)), refit.score(np.arange(1, 5)))


def test_fit_for_test_skips_a_catalog_above_the_limit():
    model, info = ease.fit_for_test(toy_dataset(), max_items=30)  # the toy catalog has 31 (with padding)
    assert model is None and info["l2"] is None and "31 items > ease_max_items 30" in info["skipped"]


def test_b_assembled_in_blocks_of_rows_is_the_same():
    matrix = ease.interaction_matrix(_USERS, _ITEMS, 5, 5)
    gram = ease._gram(matrix)
    np.testing.assert_array_equal(ease._weights(gram, 3.0, block=2), ease._weights(gram, 3.0))
    np.testing.assert_array_equal(gram, ease._gram(matrix))  # the grid reuses it: not modified

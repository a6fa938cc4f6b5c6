"""models/beyond_accuracy.py on a hand-made example, each figure worked out by hand (and the Gini
index a second way: the mean absolute difference)."""

import itertools

import numpy as np
import pytest

from models import beyond_accuracy

# Catalog 1..5; two lists of three, the second one short. Training users per item (4 users):
# item 1: 4, item 2: 2, item 3: 1, item 4: 0, item 5: 1. Genres: 1 {a, b}, 2 {a}, 3 {c}, 4 {}, 5 {a}.
LISTS = np.array([[1, 2, 3], [1, 2, -1]])
CATALOG = np.arange(1, 6)
COUNTS = np.array([0, 4, 2, 1, 0, 1])
FEATURES = [[], [0, 1], [0], [2], [], [0]]


def test_each_figure_by_hand():
    got = beyond_accuracy.measure(LISTS, CATALOG, COUNTS, num_users=4, features=FEATURES)
    # recommended: 1, 2, 3, 1, 2 -> times per catalog item [2, 2, 1, 0, 0]
    assert got["coverage"] == 0.6  # 3 of 5 items
    # sorted [0, 0, 1, 2, 2], weights 2i - n - 1 = [-4, -2, 0, 2, 4]: (0 + 0 + 0 + 4 + 8) / (5 * 5)
    assert got["gini"] == 0.48
    # -log2(4/4), -log2(2/4), -log2(1/4), -log2(4/4), -log2(2/4) = 0, 1, 2, 0, 1
    assert got["novelty"] == 0.8
    # the head: ceil(0.1 * 5) = 1 item, item 1; 2 of the 5 recommendations
    assert got["popular_share"] == 0.4
    # list 1: pairs (1,2) 1 - 1/sqrt(2), (1,3) 1, (2,3) 1; list 2: (1,2) 1 - 1/sqrt(2)
    first, second = (1 - 1 / np.sqrt(2) + 2) / 3, 1 - 1 / np.sqrt(2)
    assert got["diversity"] == pytest.approx(round((first + second) / 2, 4))


def test_gini_is_the_mean_absolute_difference_over_twice_the_mean():
    rng = np.random.default_rng(0)
    for values in (rng.integers(0, 20, size=30), np.zeros(4), np.ones(7), np.array([0, 0, 0, 9])):
        n = values.size
        mad = sum(abs(a - b) for a, b in itertools.product(values, values)) / (n * n)
        expected = 0.0 if values.sum() == 0 else mad / (2 * values.mean())
        assert beyond_accuracy.gini(values) == pytest.approx(expected)
    assert beyond_accuracy.gini(np.array([0, 0, 0, 9])) == pytest.approx(0.75)  # (n - 1) / n: one item has all


def test_distinct_users_per_item_and_what_is_refused_or_empty():
    counts = beyond_accuracy.item_user_counts(np.array([1, 1, 2, 3, 3]), np.array([2, 2, 2, 1, 4]), 5)
    assert counts.tolist() == [0, 1, 2, 0, 1]  # user 1's repeat of item 2 counts once
    with pytest.raises(ValueError, match="outside the catalog"):
        beyond_accuracy.measure(np.array([[0, 1]]), CATALOG, COUNTS, 4)  # index 0 is never a recommendation
    empty = beyond_accuracy.measure(np.full([2, 3], -1), CATALOG, COUNTS, 4)
    assert empty == {"coverage": 0.0, "gini": None, "novelty": None, "diversity": None, "popular_share": None}
    # an item nobody interacted with counts as one user's: -log2(1/4) = 2
    assert beyond_accuracy.measure(np.array([[4]]), CATALOG, COUNTS, 4)["novelty"] == 2.0

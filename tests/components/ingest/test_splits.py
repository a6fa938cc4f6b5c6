"""Split assignment: the benchmark protocol, per-user guarantees, time order, duplicates."""

import numpy as np
import pandas as pd
import pytest

from components.ingest import splits
from components.ingest.rows import Interaction
from components.ingest.splits import EVAL, TEST, TRAIN, SplitSpec


def _reference_stratified(df: pd.DataFrame, ratio: float, seed: int):
    """Microsoft Recommenders' python_stratified_split (random, per user), written with pandas."""
    np.random.seed(seed)
    df = df.copy()
    df["random"] = np.random.rand(df.shape[0])
    df = df.sort_values(["user_id", "random"])
    groups = df.groupby("user_id")
    df["count"] = groups["user_id"].transform("count")
    df["rank"] = groups.cumcount() + 1
    train = df[df["rank"] <= round(ratio * df["count"])]
    return set(train["line"]), set(df["line"]) - set(train["line"])


def _random_log(n_rows=3000, n_users=60, seed=3):
    rng = np.random.RandomState(seed)
    users = rng.randint(0, n_users, n_rows)
    return pd.DataFrame({"user_id": [f"u{u}" for u in users], "item_id": rng.randint(0, 500, n_rows),
                         "timestamp": rng.randint(0, 10**6, n_rows), "line": np.arange(2, n_rows + 2)})


def _interactions(df: pd.DataFrame, seed=42):
    keys = np.random.RandomState(seed).rand(len(df))
    return [Interaction(r.user_id, str(r.item_id), int(r.timestamp), None, int(r.line), float(k))
            for r, k in zip(df.itertuples(), keys)]


def _split_all(rows, spec):
    by_user = {}
    for r in rows:
        by_user.setdefault(r.user_id, []).append(r)
    return [pair for user_rows in by_user.values() for pair in splits.split_user(user_rows, spec)]


def test_stratified_split_equals_the_microsoft_recommenders_protocol():
    df = _random_log()
    # Every user has >= 2 rows here, so the "both sides" guarantee never overrides the protocol.
    assert df.groupby("user_id").size().min() >= 20
    expected_train, expected_test = _reference_stratified(df, ratio=0.75, seed=42)
    assigned = _split_all(_interactions(df), SplitSpec("stratified", test_share=0.25, eval_share=0.0, seed=42))
    assert {r.line for s, r in assigned if s == TRAIN} == expected_train
    assert {r.line for s, r in assigned if s == TEST} == expected_test


def test_eval_is_carved_out_of_train_and_test_is_unchanged():
    rows = _interactions(_random_log())
    without = _split_all(rows, SplitSpec("stratified", 0.25, 0.0))
    with_eval = _split_all(rows, SplitSpec("stratified", 0.25, 0.1))
    assert {r.line for s, r in with_eval if s == TEST} == {r.line for s, r in without if s == TEST}
    assert {r.line for s, r in with_eval if s in (TRAIN, EVAL)} == {r.line for s, r in without if s == TRAIN}
    assert sum(s == EVAL for s, _ in with_eval) > 0


@pytest.mark.parametrize("n", [2, 3, 4, 5, 9])
def test_stratified_keeps_small_users_on_both_sides(n):
    rows = [Interaction("u", f"i{k}", k, None, k + 2, (k * 0.37) % 1) for k in range(n)]
    labels = [s for s, _ in splits.split_user(rows, SplitSpec("stratified", 0.25, 0.1))]
    assert labels.count(TEST) >= 1 and labels.count(TRAIN) >= 1 and len(labels) == n


def test_a_single_interaction_goes_to_train():
    row = Interaction("u", "i", 1, None, 2, 0.5)
    assert splits.split_user([row], SplitSpec("temporal", 0.2, 0.1)) == [(TRAIN, row)]


def test_temporal_split_never_trains_on_the_future():
    rows = _interactions(_random_log(seed=7))
    assigned = _split_all(rows, SplitSpec("temporal", 0.2, 0.1))
    for user in {r.user_id for r in rows}:
        stamps = {s: [r.timestamp for t, r in assigned if t == s and r.user_id == user] for s in (TRAIN, EVAL, TEST)}
        assert max(stamps[TRAIN]) <= min(stamps[EVAL] + stamps[TEST])
        if stamps[EVAL]:
            assert max(stamps[EVAL]) <= min(stamps[TEST])


def test_time_cutoff_split():
    row = lambda t: Interaction("u", "i", t, None, 2, 0.1)  # noqa: E731
    assert [splits.split_by_time(row(t), 50, 100) for t in (10, 50, 99, 100, 150)] == [TRAIN, EVAL, EVAL, TEST, TEST]
    assert SplitSpec("time_cutoff", test_share=0.25, eval_share=0.2).cutoff_quantiles() == pytest.approx((0.6, 0.75))


def test_drop_duplicates_keeps_the_first_of_exact_repeats_only():
    a = Interaction("u", "i1", 5, 4.0, 2, 0.1)
    same = Interaction("u", "i1", 5, 4.0, 9, 0.7)
    other_time = Interaction("u", "i1", 6, 4.0, 4, 0.2)
    kept, repeats = splits.drop_duplicates([same, other_time, a])
    assert kept == [a, other_time] and repeats == [same]


def test_bad_split_settings_are_rejected():
    with pytest.raises(ValueError, match="method"):
        SplitSpec(method="random")
    with pytest.raises(ValueError, match="test_share"):
        SplitSpec(test_share=1.5)


def test_cold_items_are_a_seeded_share_of_the_catalog_in_any_order():
    ids = [f"i{k}" for k in range(200)]
    cold = splits.pick_cold_items(ids, 0.1, seed=7)
    assert len(cold) == 20 and cold <= set(ids)
    assert splits.pick_cold_items(reversed(ids + ids[:5]), 0.1, seed=7) == cold  # order, repeats
    assert splits.pick_cold_items(ids, 0.1, seed=8) != cold
    assert splits.pick_cold_items(ids, 0.0, seed=7) == frozenset()


@pytest.mark.parametrize("method", ["stratified", "temporal"])
def test_cold_items_go_to_test_and_the_rest_splits_as_without_them(method):
    df = _random_log()
    rows = _interactions(df)
    spec = SplitSpec(method, 0.25, 0.1, cold_items=0.1)
    cold = splits.pick_cold_items({r.item_id for r in rows}, spec.cold_items, spec.seed)
    by_user = {}
    for r in rows:
        by_user.setdefault(r.user_id, []).append(r)
    assigned = [pair for user_rows in by_user.values() for pair in splits.split_user(user_rows, spec, cold)]
    warm_only = [pair for user_rows in by_user.values()
                 for pair in splits.split_user([r for r in user_rows if r.item_id not in cold], spec)]
    assert sorted((s, r.line) for s, r in assigned if r.item_id not in cold) == sorted((s, r.line) for s, r in warm_only)
    cold_rows = [(s, r) for s, r in assigned if r.item_id in cold]
    assert cold_rows and all(s == TEST for s, _ in cold_rows)
    assert len(cold_rows) == sum(r.item_id in cold for r in rows)
    trained = {r.item_id for s, r in assigned if s in (TRAIN, EVAL)}
    assert not trained & cold


def test_time_cutoff_sends_cold_items_to_test():
    row = Interaction("u", "i", 5, None, 2, 0.5)
    assert splits.split_by_time(row, 10, 20) == TRAIN
    assert splits.split_by_time(row, 10, 20, cold={"i"}) == TEST

"""Tests for the synthetic dataset writer: format, determinism, structure and bad rows."""

import collections
import csv
import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from components.ingest import reasons
from tfx_pipeline.datasets import synth

FILES = ("interactions.csv", "users.csv", "items.csv", "synth.json")
SMALL = {"users": 120, "items": 150, "interactions": 6_000}


def _read(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def _bytes(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in FILES}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    synth.write_synthetic(out, seed=7, **SMALL)
    return out


def test_headers_and_ids(clean):
    interactions, users, items = (_read(clean / f) for f in FILES[:3])
    assert interactions[0] == ["user_id", "item_id", "timestamp", "rating"]
    assert users[0] == ["user_id", "age", "gender", "occupation"]
    assert items[0] == ["item_id", "title", "year", "genres"]
    assert [r[0] for r in users[1:]] == [f"u{i:06d}" for i in range(1, 121)]
    assert [r[0] for r in items[1:]] == [f"i{i:06d}" for i in range(1, 151)]
    assert len(interactions) - 1 == 6_000
    assert json.loads((clean / "synth.json").read_text()) == {**SMALL, "bad": {}}


def test_same_seed_same_bytes_other_seed_differs(clean, tmp_path):
    synth.write_synthetic(tmp_path / "again", seed=7, **SMALL)
    synth.write_synthetic(tmp_path / "other", seed=8, **SMALL)
    assert _bytes(tmp_path / "again") == _bytes(clean)
    assert _bytes(tmp_path / "other")["interactions.csv"] != _bytes(clean)["interactions.csv"]


def test_clean_rows_are_valid_and_per_user_time_ordered(clean):
    user_ids = {r[0] for r in _read(clean / "users.csv")[1:]}
    item_ids = {r[0] for r in _read(clean / "items.csv")[1:]}
    rows = _read(clean / "interactions.csv")[1:]
    assert all(len(r) == 4 and r[0] in user_ids and r[1] in item_ids for r in rows)
    assert {r[3] for r in rows} <= {"1", "2", "3", "4", "5"}
    last, per_user = {}, collections.Counter()
    for user, _, ts, _ in rows:
        assert int(ts) > last.get(user, 0)
        last[user] = int(ts)
        per_user[user] += 1
    assert set(per_user) == user_ids and min(per_user.values()) >= 5
    assert len(set(map(tuple, rows))) == len(rows)


def test_clusters_are_learnable(clean):
    # An item's cluster is its first genre; a user's dominant cluster is their most frequent one.
    cluster = {r[0]: r[3].split("|")[0] for r in _read(clean / "items.csv")[1:]}
    rows = _read(clean / "interactions.csv")[1:]
    users = np.array([r[0] for r in rows])
    genres = np.array([cluster[r[1]] for r in rows])
    ratings = np.array([int(r[3]) for r in rows])

    def modal_share(user_column):
        counts = collections.defaultdict(collections.Counter)
        for user, genre in zip(user_column, genres):
            counts[user][genre] += 1
        modal = {u: c.most_common(1)[0][0] for u, c in counts.items()}
        return np.mean([modal[u] == g for u, g in zip(user_column, genres)]), modal

    share, modal = modal_share(users)
    # Same statistic with the users shuffled over rows: what popularity alone gives.
    chance, _ = modal_share(np.random.default_rng(0).permutation(users))
    assert share > 0.6 and share > chance + 0.25
    in_cluster = np.array([modal[u] == g for u, g in zip(users, genres)])
    assert ratings[in_cluster].mean() > ratings[~in_cluster].mean() + 0.7
    # Popularity skew: the top tenth of items gets far more than a tenth of the interactions.
    top = np.sort(np.array(list(collections.Counter(r[1] for r in rows).values())))[::-1]
    assert top[: len(top) // 10].sum() > 0.3 * len(rows)


def test_titles_quote_and_round_trip(clean):
    text = (clean / "items.csv").read_text(encoding="utf-8")
    titles = [r[1] for r in _read(clean / "items.csv")[1:]]
    assert any("," in t for t in titles) and any('"' in t for t in titles)
    assert '"' in text  # the csv module quoted them
    assert all(t and t == t.strip() for t in titles)


def _classify(row: list[str], item_ids: set[str]) -> str | None:
    """The first check a row fails, in the order of components/ingest/reasons.py."""
    if len(row) != 4:
        return reasons.WRONG_FIELD_COUNT
    if not row[0] or not row[1]:
        return reasons.MISSING_ID
    if not row[2].isdigit():
        return reasons.BAD_TIMESTAMP
    if row[1] not in item_ids:
        return reasons.UNKNOWN_ITEM
    return None


@pytest.mark.parametrize("bad_share", [0.1, 0.0101])
def test_bad_rows_counted_exactly(tmp_path, bad_share):
    summary = synth.write_synthetic(tmp_path, seed=1, bad_share=bad_share, **SMALL)
    item_ids = {r[0] for r in _read(tmp_path / "items.csv")[1:]}
    rows = _read(tmp_path / "interactions.csv")[1:]
    found = collections.Counter(_classify(r, item_ids) for r in rows)
    bad = {k: v for k, v in found.items() if k is not None}
    assert len(rows) == 6_000
    assert sum(bad.values()) == round(bad_share * 6_000)
    assert summary["bad"] == bad
    assert json.loads((tmp_path / "synth.json").read_text()) == summary
    assert max(bad.values()) - min(bad.values()) <= 1 and len(bad) == 4
    assert len(set(map(tuple, rows))) == len(rows)  # no exact duplicates
    positions = [i for i, r in enumerate(rows) if _classify(r, item_ids)]
    assert positions[0] < 6_000 * 0.1 and positions[-1] > 6_000 * 0.9  # spread through the file


def test_small_chunks_give_identical_output(tmp_path):
    args = dict(seed=3, bad_share=0.05, **SMALL)
    synth.write_synthetic(tmp_path / "big", **args)
    with mock.patch.object(synth, "_CHUNK_ROWS", 7):
        synth.write_synthetic(tmp_path / "small", **args)
    assert _bytes(tmp_path / "small") == _bytes(tmp_path / "big")


def test_fewer_interactions_than_users(tmp_path):
    summary = synth.write_synthetic(tmp_path, users=50, items=10, interactions=30)
    assert summary["interactions"] == 30
    assert len(_read(tmp_path / "interactions.csv")) == 31


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="bad_share"):
        synth.write_synthetic(tmp_path, users=2, items=2, interactions=10, bad_share=1.5)
    with pytest.raises(ValueError, match="users >= 1"):
        synth.write_synthetic(tmp_path, users=0, items=2, interactions=10)

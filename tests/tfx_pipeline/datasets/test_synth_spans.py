"""Tests for the synthetic spans: format, arrivals, determinism, drift and staleness."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from components.ingest import rows
from components.ingest.csv_rows import BadRow
from tfx_pipeline import cli
from tfx_pipeline.datasets import synth_spans

SPANS, SHIFT_AT = 6, 4
SMALL = {"spans": SPANS, "users": 2_000, "items": 300, "interactions": SPANS * 8_000}
FILES = (rows.INTERACTIONS_FILE, rows.USERS_FILE, rows.ITEMS_FILE)


def _read(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))[1:]


def _bytes(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def gradual(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gradual")
    synth_spans.write_synthetic_spans(out, seed=5, **SMALL)
    return out


@pytest.fixture(scope="module")
def shifted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shifted")
    synth_spans.write_synthetic_spans(out, seed=5, shift_at=SHIFT_AT, **SMALL)
    return out


def _span(out: Path, k: int, name: str) -> list[list[str]]:
    return _read(out / f"span-{k}" / name)


def test_same_arguments_same_bytes_other_seed_differs(gradual, tmp_path):
    synth_spans.write_synthetic_spans(tmp_path / "again", seed=5, **SMALL)
    synth_spans.write_synthetic_spans(tmp_path / "other", seed=6, **SMALL)
    assert _bytes(tmp_path / "again") == _bytes(gradual)
    assert _bytes(tmp_path / "other")["span-2/interactions.csv"] != _bytes(gradual)["span-2/interactions.csv"]


def test_the_spans_before_the_shift_do_not_depend_on_it(gradual, shifted):
    before, after = _bytes(gradual), _bytes(shifted)
    for k in range(1, SHIFT_AT):
        for name in FILES:
            assert after[f"span-{k}/{name}"] == before[f"span-{k}/{name}"]
    assert after[f"span-{SHIFT_AT}/interactions.csv"] != before[f"span-{SHIFT_AT}/interactions.csv"]


def test_every_span_parses_with_the_ingest_readers_without_bad_rows(shifted):
    for k in range(1, SPANS + 1):
        directory = shifted / f"span-{k}"
        interactions = list(rows.read_interactions(str(directory / rows.INTERACTIONS_FILE), seed=0))
        users = list(rows.read_entities(str(directory / rows.USERS_FILE), rows.USERS_FILE))
        items = list(rows.read_entities(str(directory / rows.ITEMS_FILE), rows.ITEMS_FILE))
        assert not [r for r in interactions + users + items if isinstance(r, BadRow)]
        assert interactions and users and items
        assert rows.feature_columns(str(directory / rows.ITEMS_FILE), rows.ITEMS_FILE) == ["title", "year", "genres"]
        assert len({(r.user_id, r.item_id, r.timestamp, r.rating) for r in interactions}) == len(interactions)


def test_users_and_items_arrive_every_span_and_are_used_only_from_then(shifted):
    summary = json.loads((shifted / "synth.json").read_text())
    known_users, known_items = set(), set()
    for k, span in enumerate(summary["per_span"], start=1):
        new_users = [r[0] for r in _span(shifted, k, rows.USERS_FILE)]
        new_items = [r[0] for r in _span(shifted, k, rows.ITEMS_FILE)]
        interactions = _span(shifted, k, rows.INTERACTIONS_FILE)
        assert new_users and new_items and not known_users & set(new_users) and not known_items & set(new_items)
        assert new_users == sorted(new_users) and new_items == sorted(new_items)  # ids in arrival order
        known_users.update(new_users)
        known_items.update(new_items)
        # Every interaction refers to a user and an item of this span or an earlier one...
        assert {r[0] for r in interactions} <= known_users and {r[1] for r in interactions} <= known_items
        # ...and the new items are used at once.
        assert {r[1] for r in interactions} & set(new_items)
        stamps = np.array([int(r[2]) for r in interactions])
        assert (np.diff(stamps) > 0).all() and span["start"] <= stamps[0] and stamps[-1] < span["end"]
        assert span["end"] - span["start"] == 7 * 86_400 and span["start"] == summary["per_span"][0]["start"] \
            + (k - 1) * 7 * 86_400
        assert (span["new_users"], span["new_items"], span["interactions"]) == \
            (len(new_users), len(new_items), len(interactions))
        assert (span["users"], span["items"], span["shift"]) == (len(known_users), len(known_items), k == SHIFT_AT)
    assert (len(known_users), len(known_items)) == (SMALL["users"], SMALL["items"])
    assert summary["interactions"] == sum(s["interactions"] for s in summary["per_span"]) == SMALL["interactions"]


def _genre_distances(out: Path) -> np.ndarray:
    """L-infinity distances between consecutive spans' distributions of the interactions' genres
    (every genre of a multi-genre item counts, as TFDV counts the values of a list feature)."""
    genres = {}
    for k in range(1, SPANS + 1):
        genres.update({r[0]: r[3].split("|") for r in _span(out, k, rows.ITEMS_FILE)})
    names = sorted({g for values in genres.values() for g in values})
    shares = []
    for k in range(1, SPANS + 1):
        values = [names.index(g) for r in _span(out, k, rows.INTERACTIONS_FILE) for g in genres[r[1]]]
        shares.append(np.bincount(values, minlength=len(names)) / len(values))
    return np.abs(np.diff(np.array(shares), axis=0)).max(axis=1)


def test_an_abrupt_shift_stands_out_of_the_gradual_drift(gradual, shifted):
    gradual_distances, shifted_distances = _genre_distances(gradual), _genre_distances(shifted)
    at_shift = shifted_distances[SHIFT_AT - 2]  # between span SHIFT_AT - 1 and span SHIFT_AT
    others = np.delete(shifted_distances, SHIFT_AT - 2)
    assert at_shift > 4 * max(gradual_distances.max(), others.max())
    assert at_shift > 0.1 and gradual_distances.max() < 0.04


def _ndcg_of_most_popular(train: list[list[str]], test: list[list[str]]) -> float:
    """ndcg@10 of one top-10 list (the training span's most popular items) for every test user,
    the relevant items being the user's items of the test span."""
    ids, counts = np.unique([r[1] for r in train], return_counts=True)
    top = list(ids[np.lexsort((ids, -counts))][:10])
    relevant = {}
    for user, item, *_ in test:
        relevant.setdefault(user, set()).add(item)
    discount = 1.0 / np.log2(np.arange(2, 12))
    return float(np.mean([discount[[i for i, item in enumerate(top) if item in items]].sum()
                          / discount[:min(10, len(items))].sum() for items in relevant.values()]))


def test_a_ranking_of_span_1_goes_stale(gradual):
    for k in range(3, SPANS + 1):
        test = _span(gradual, k, rows.INTERACTIONS_FILE)
        stale = _ndcg_of_most_popular(_span(gradual, 1, rows.INTERACTIONS_FILE), test)
        fresh = _ndcg_of_most_popular(_span(gradual, k - 1, rows.INTERACTIONS_FILE), test)
        assert stale < (0.9 if k < SPANS else 0.6) * fresh, (k, stale, fresh)


@pytest.mark.parametrize("change, message", [
    ({"spans": 0}, "spans must be >= 1"),
    ({"users": 11}, "users and items must be >= 2 \\* spans"),
    ({"interactions": SPANS - 1}, "interactions must be in spans"),
    ({"interactions": SPANS * synth_spans.MAX_INTERACTIONS_PER_SPAN + 1}, "interactions must be in spans"),
    ({"shift_at": 1}, "shift_at must be in 2..spans"),
    ({"shift_at": SPANS + 1}, "shift_at must be in 2..spans"),
    ({"half_life": 0}, "half_life must be > 0"),
    ({"spans": 2, "items": 8, "shift_at": 2}, "at least 2 taste clusters"),
])
def test_rejects_bad_arguments(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        synth_spans.write_synthetic_spans(tmp_path, **{**SMALL, "users": 12, "items": 40, **change})


def test_the_cli_writes_the_spans(tmp_path, capsys):
    args = ["synth", "--users", "40", "--items", "40", "--interactions", "400", "--output", str(tmp_path)]
    assert cli.main(args + ["--spans", "3", "--shift-at", "3"]) == 0
    assert "wrote 3 spans" in capsys.readouterr().out
    assert json.loads((tmp_path / "synth.json").read_text())["shift_at"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["span-1", "span-2", "span-3", "synth.json"]


@pytest.mark.parametrize("flags, message", [
    (["--spans", "0"], "--spans must be at least 1"),
    (["--shift-at", "2"], "--shift-at needs --spans"),
    (["--spans", "3", "--shift-at", "4"], "--shift-at must be in 2..3"),
    (["--spans", "3", "--bad-share", "0.1"], "--bad-share is not supported with --spans"),
    (["--spans", "30"], "--users and --items must be at least 2 * --spans (60)"),
    (["--spans", "1", "--interactions", "604801"], "--interactions must be at least --spans (1) and at most"),
])
def test_the_cli_refuses_bad_span_flags_in_one_line(tmp_path, capsys, flags, message):
    args = ["synth", "--users", "40", "--items", "40", "--interactions", "400", "--output", str(tmp_path / "o")]
    assert cli.main(args + flags) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"recdistill: error: {message}"), lines
    assert not (tmp_path / "o").exists()

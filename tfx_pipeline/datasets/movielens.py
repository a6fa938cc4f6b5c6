"""MovieLens-100K in recdistill's input format, converted from the copy that recbole ships.

recbole's wheel carries `dataset_example/ml-100k/ml-100k.{inter,user,item}`: tab-separated
"atomic files" with typed headers (`user_id:token`), UTF-8, already cleaned of ml-100k's Latin-1
bytes. This module only reads those files; it never imports recbole (that would import torch).
"""

import csv
import importlib.util
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

_FORMAT_VERSION = 1
_MARKER = ".complete"
_EXPECTED_ROWS = {"interactions.csv": 100_000, "users.csv": 943, "items.csv": 1_682}
_INSTALL_HINT = "pip install --no-deps recbole==1.2.1"
# Output column -> column of the atomic file (typed header names without their ":type").
_INTERACTIONS = {"user_id": "user_id", "item_id": "item_id", "timestamp": "timestamp",
                 "rating": "rating"}
_USERS = {"user_id": "user_id", "age": "age", "gender": "gender", "occupation": "occupation",
          "zip_code": "zip_code"}
_ITEMS = {"item_id": "item_id", "title": "movie_title", "year": "release_year",
          "genres": "class"}
_TITLE_WITH_YEAR = re.compile(r"^(.*) \((\d{4})\)$")


def prepare_movielens_100k(dest_dir: str | Path) -> Path:
    """Writes MovieLens-100K as interactions.csv, users.csv and items.csv into `dest_dir`.

    Idempotent: a directory holding a complete conversion of the current format is returned
    untouched. Atomic: files are written into a temporary sibling directory that is renamed into
    place only once the row counts are checked, so `dest_dir` is never half written.

    Raises:
      ImportError: recbole's data files are not installed.
      ValueError: the converted files do not hold 100,000 / 943 / 1,682 rows.
    """
    dest = Path(dest_dir)
    if _is_complete(dest):
        return dest
    source = _recbole_ml100k_dir()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private (0700); the renamed dataset should not be
        _convert(source, tmp)
        counts = _check_counts(tmp)
        marker = {"format": _FORMAT_VERSION, "source": "recbole dataset_example/ml-100k",
                  "rows": counts}
        (tmp / _MARKER).write_text(json.dumps(marker, sort_keys=True) + "\n", encoding="utf-8")
        _move_into_place(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _recbole_ml100k_dir() -> Path:
    # find_spec locates a top-level package without executing its __init__ (no torch import).
    spec = importlib.util.find_spec("recbole")
    if spec is not None and spec.submodule_search_locations:
        source = Path(spec.submodule_search_locations[0]) / "dataset_example" / "ml-100k"
        if all((source / f"ml-100k.{ext}").is_file() for ext in ("inter", "user", "item")):
            return source
    raise ImportError(
        "MovieLens-100K is read from the files that the `recbole` package ships "
        f"(recbole/dataset_example/ml-100k/), which are not installed. Install them with "
        f"`{_INSTALL_HINT}` (--no-deps: only the data files are used, not torch)."
    )


def _is_complete(dest: Path) -> bool:
    try:
        marker = json.loads((dest / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("format") == _FORMAT_VERSION


def _read_atomic(path: Path) -> tuple[list[str], list[list[str]]]:
    """Returns the column names (types stripped) and the rows of a recbole atomic file."""
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    header = [name.split(":", 1)[0] for name in lines[0].split("\t")]
    rows = [line.split("\t") for line in lines[1:]]
    bad = next((i for i, row in enumerate(rows) if len(row) != len(header)), None)
    if bad is not None:
        raise ValueError(f"{path}:{bad + 2}: expected {len(header)} tab-separated fields")
    return header, rows


def _columns(path: Path, mapping: dict[str, str]) -> list[list[str]]:
    """Reads `path` and returns its rows as the output columns named by `mapping`."""
    header, rows = _read_atomic(path)
    missing = [src for src in mapping.values() if src not in header]
    if missing:
        raise ValueError(f"{path}: columns {missing} not in header {header}")
    index = [header.index(src) for src in mapping.values()]
    return [[row[i] for i in index] for row in rows]


def _fix_item(row: list[str]) -> list[str]:
    item_id, title, year, genres = row
    if not re.fullmatch(r"\d{4}", year):
        # recbole took the last "(...)" of ml-100k's title as the year. Item 1412 ends in
        # "(1995) (V)" (a video release): its year becomes "V" and "(1995)" stays in the title.
        # Item 267 has no title or date at all: both hold the placeholder "unkonwn" (sic).
        match = _TITLE_WITH_YEAR.match(title)
        title, year = (match.group(1), match.group(2)) if match else (title, "")
    # Genres are space-separated tokens there; no genre name contains a space.
    return [item_id, title, year, "|".join(genres.split())]


def _fix_interaction(row: list[str]) -> list[str]:
    user_id, item_id, timestamp, rating = row
    # The header types the timestamp as float; the contract wants integer Unix seconds.
    seconds = float(timestamp)
    if not seconds.is_integer():
        raise ValueError(f"ml-100k.inter: timestamp {timestamp!r} is not whole seconds")
    return [user_id, item_id, str(int(seconds)), rating]


def _convert(source: Path, out: Path) -> None:
    tables = {
        "interactions.csv": [_fix_interaction(r)
                             for r in _columns(source / "ml-100k.inter", _INTERACTIONS)],
        "users.csv": _columns(source / "ml-100k.user", _USERS),
        "items.csv": [_fix_item(r) for r in _columns(source / "ml-100k.item", _ITEMS)],
    }
    headers = {"interactions.csv": _INTERACTIONS, "users.csv": _USERS, "items.csv": _ITEMS}
    for name, rows in tables.items():
        with open(out / name, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            writer.writerow(list(headers[name]))
            writer.writerows(rows)  # keeps the file order: the benchmark split depends on it


def _check_counts(out: Path) -> dict[str, int]:
    """Re-reads the written files (which also proves they parse as CSV) and checks row counts."""
    counts = {}
    for name, expected in _EXPECTED_ROWS.items():
        with open(out / name, encoding="utf-8", newline="") as f:
            counts[name] = sum(1 for _ in csv.reader(f)) - 1
    if counts != _EXPECTED_ROWS:
        raise ValueError(
            f"MovieLens-100K conversion produced rows {counts}, expected {_EXPECTED_ROWS}; "
            f"the installed recbole data files differ from recbole 1.2.1 ({_INSTALL_HINT})."
        )
    return counts


def _move_into_place(tmp: Path, dest: Path) -> None:
    try:
        os.rename(tmp, dest)  # atomic; also replaces an empty directory
        return
    except OSError:
        if _is_complete(dest):  # another process finished the same conversion first
            return
    leftovers = {p.name for p in dest.iterdir()} - {*_EXPECTED_ROWS, _MARKER}
    if leftovers:
        raise FileExistsError(
            f"{dest} exists and holds files that are not a MovieLens conversion: "
            f"{sorted(leftovers)}; choose another directory or empty it."
        )
    # An older or interrupted conversion: swap it out, then delete it.
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    os.rename(dest, old / dest.name)
    os.rename(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)

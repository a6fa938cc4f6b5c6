"""Flat input files cut into spans of a fixed number of days (MovieLens-100K as 4-week spans for
the continuous bench, tfx_pipeline/bench_continuous.py; docs/spans.md).

Span k holds the interactions of days [(k - 1) d, k d) after the first interaction, and the items
and users whose first interaction falls in it (those without any interaction arrive in span 1),
as a catalog that grows would deliver them. Rows keep their columns and values; interactions are
written in time order.
"""

import csv
import io
import os
from typing import Dict, List

from models.foundation import storage

DAY = 86_400


def _read(path: str):
    reader = csv.reader(io.StringIO(storage.read_text(path)))
    header = next(reader)
    return header, [row for row in reader if row]


def write_time_spans(flat_dir: str, output_dir: str, days: int) -> Dict:
    """Writes output_dir/span-1 ... span-N from flat_dir's three files; returns
    {"spans": N, "days": days, "interactions": [count per span]}."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    header, rows = _read(os.path.join(flat_dir, "interactions.csv"))
    user, item, stamp = (header.index(c) for c in ("user_id", "item_id", "timestamp"))
    rows.sort(key=lambda row: int(row[stamp]))
    first = int(rows[0][stamp]) if rows else 0
    span_of = lambda row: (int(row[stamp]) - first) // (days * DAY) + 1  # noqa: E731
    count = span_of(rows[-1]) if rows else 1
    by_span: List[List[list]] = [[] for _ in range(count)]
    arrival = {"user_id": {}, "item_id": {}}
    for row in rows:
        span = span_of(row)
        by_span[span - 1].append(row)
        arrival["user_id"].setdefault(row[user].strip(), span)
        arrival["item_id"].setdefault(row[item].strip(), span)
    for span in range(1, count + 1):
        directory = os.path.join(output_dir, f"span-{span}")
        os.makedirs(directory, exist_ok=True)
        _write(os.path.join(directory, "interactions.csv"), header, by_span[span - 1])
    for name, key in (("users.csv", "user_id"), ("items.csv", "item_id")):
        entity_header, entities = _read(os.path.join(flat_dir, name))
        at = entity_header.index(key)
        for span in range(1, count + 1):
            mine = [row for row in entities if arrival[key].get(row[at].strip(), 1) == span]
            _write(os.path.join(output_dir, f"span-{span}", name), entity_header, mine)
    return {"spans": count, "days": days, "interactions": [len(s) for s in by_span]}


def _write(path: str, header: List[str], rows: List[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)

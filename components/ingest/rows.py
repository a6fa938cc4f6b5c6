"""Turning CSV records into typed rows, or into the reason they are bad.

The three input files (docs/data.md, "Input format"):
  interactions.csv  user_id,item_id,timestamp[,rating]
  users.csv         user_id,...   (further columns: user features)
  items.csv         item_id,title,... (further columns: item features)
"""

import dataclasses
import math
import re
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np

from components.ingest import reasons
from components.ingest.csv_rows import BadRow, Record, read_header, read_records

INTERACTIONS_FILE = "interactions.csv"
USERS_FILE = "users.csv"
ITEMS_FILE = "items.csv"
REQUIRED_COLUMNS = {
    INTERACTIONS_FILE: ("user_id", "item_id", "timestamp"),
    USERS_FILE: ("user_id",),
    ITEMS_FILE: ("item_id", "title"),
}
ID_COLUMN = {USERS_FILE: "user_id", ITEMS_FILE: "item_id"}

_INTEGER = re.compile(r"[+-]?\d+")
# Unicode's category Cc, all of it (a closed set: U+0000-U+001F and U+007F-U+009F). Ids are checked
# before they are stripped: str.strip() would silently drop a leading or trailing "\n" or "\x85".
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Order keys are drawn in chunks; RandomState yields the same stream whatever the chunk size.
_ORDER_KEY_CHUNK = 65536


class Interaction(NamedTuple):
    """A valid interaction row. A tuple, so that Beam encodes it fast between stages."""

    user_id: str
    item_id: str
    timestamp: int
    rating: Optional[float]
    line: int
    # Uniform [0, 1) draw for the random split: the i-th number of RandomState(seed).rand(),
    # i being the record's position in the file, as the Microsoft Recommenders benchmark draws it.
    order_key: float
    # The file the row came from, as bad rows name it ("interactions.csv"; of a span,
    # "span-3/interactions.csv": components/ingest/spans.py).
    source: str = INTERACTIONS_FILE

    def duplicate_key(self) -> Tuple:
        return (self.item_id, self.timestamp, self.rating)


@dataclasses.dataclass(frozen=True)
class Entity:
    """A row of users.csv or items.csv: its id and its other columns as raw strings."""

    id: str
    features: Dict[str, str]
    line: int


def read_interactions(path: str, seed: int, label: str = "") -> Iterator[Interaction | BadRow]:
    """Yields every record of interactions.csv as an Interaction or a BadRow, in file order. With a
    `label` ("span-3/interactions.csv"), bad rows and Interaction.source name the file by it."""
    columns = read_header(path, REQUIRED_COLUMNS[INTERACTIONS_FILE])
    user, item, stamp = (columns.index(c) for c in REQUIRED_COLUMNS[INTERACTIONS_FILE])
    rating = columns.index("rating") if "rating" in columns else None
    keys = _order_keys(seed)
    for record in read_records(path, len(columns), label):
        order_key = next(keys)
        if isinstance(record, BadRow):
            yield record
            continue
        yield _parse_interaction(record, user, item, stamp, rating, order_key, label or INTERACTIONS_FILE)


def read_entities(path: str, file_name: str, label: str = "") -> Iterator[Entity | BadRow]:
    """Yields every record of users.csv or items.csv; a repeated id is a bad row (first wins).
    With a `label` ("span-3/items.csv"), bad rows name the file by it."""
    columns = read_header(path, REQUIRED_COLUMNS[file_name])
    id_index = columns.index(ID_COLUMN[file_name])
    seen = set()
    for record in read_records(path, len(columns), label):
        if isinstance(record, BadRow):
            yield record
            continue
        raw_id = record.fields[id_index]
        entity_id = raw_id.strip()
        control = control_character(columns[id_index], raw_id)
        if control:
            yield BadRow(label or file_name, record.line, reasons.CONTROL_CHARACTER, control)
        elif not entity_id:
            yield BadRow(label or file_name, record.line, reasons.MISSING_ID, f"empty {columns[id_index]}")
        elif entity_id in seen:
            yield BadRow(label or file_name, record.line, reasons.DUPLICATE_ID, f"{columns[id_index]} {entity_id!r} repeated")
        else:
            seen.add(entity_id)
            features = {
                name: value.strip()
                for i, (name, value) in enumerate(zip(columns, record.fields))
                if i != id_index
            }
            yield Entity(entity_id, features, record.line)


def feature_columns(path: str, file_name: str) -> List[str]:
    """The feature columns of users.csv or items.csv: every column but the id, in file order."""
    return [c for c in read_header(path, REQUIRED_COLUMNS[file_name]) if c != ID_COLUMN[file_name]]


def _parse_interaction(
    record: Record, user: int, item: int, stamp: int, rating: Optional[int], order_key: float,
    label: str = INTERACTIONS_FILE,
) -> Interaction | BadRow:
    fields = record.fields
    control = control_character("user_id", fields[user]) or control_character("item_id", fields[item])
    if control:
        return BadRow(label, record.line, reasons.CONTROL_CHARACTER, control)
    user_id, item_id = fields[user].strip(), fields[item].strip()
    if not user_id or not item_id:
        return BadRow(label, record.line, reasons.MISSING_ID, "empty user_id" if not user_id else "empty item_id")
    raw_stamp = fields[stamp].strip()
    if not _INTEGER.fullmatch(raw_stamp):
        return BadRow(label, record.line, reasons.BAD_TIMESTAMP, f"timestamp {raw_stamp!r} is not an integer")
    value = None
    if rating is not None:
        value = _finite_float(fields[rating])
        if value is None:
            return BadRow(label, record.line, reasons.BAD_RATING, f"rating {fields[rating]!r} is not a number")
    return Interaction(user_id, item_id, int(raw_stamp), value, record.line, order_key, label)


def control_character(column: str, value: str) -> str:
    """Why an id is bad for holding a control character (its column, value and the character as
    repr and code point), or "" when it holds none."""
    found = _CONTROL.search(value)
    if found is None:
        return ""
    shown = repr(value) if len(value) <= 80 else repr(value[:80]) + "..."
    char = found.group()
    return f"{column} {shown} holds control character {char!r} (U+{ord(char):04X}) at position {found.start()}"


def _finite_float(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _order_keys(seed: int) -> Iterator[float]:
    state = np.random.RandomState(seed)
    while True:
        yield from state.rand(_ORDER_KEY_CHUNK).tolist()



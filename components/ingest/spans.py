"""Spans: input that arrives in parts, `span-1/`, `span-2/`, ... under the data directory (TFX's
name and numbering: a span is one delivery of data, a day's or a week's).

Each span directory holds the three CSVs of the input format (docs/data.md). A span's
interactions.csv holds that span's interactions; its items.csv and users.csv the items and users
that are new or changed in it (a file with the header alone: none). A run reads
  interactions  of the training window: the latest `window_spans` spans up to the newest one;
  items, users  of every span up to the newest, a later span's row of an id replacing an earlier
                one (an item introduced before the window is still in the catalog, as it is today).
The newest span is the largest number present when ExampleGen runs, unless the run pins one: the
local runner pins it when it builds the DAG, so that the span is part of TFX's cache key and a rerun
without a new span is answered from the cache. A compiled Kubeflow pipeline leaves it open, and
each scheduled run takes the newest span it finds (docs/spans.md).
"""

import dataclasses
import re
from typing import Dict, List, Optional, Tuple

from models.foundation import storage

SPAN_PATTERN = "span-{SPAN}"  # a span's directory; {SPAN} is TFX's placeholder for its number
_SPAN_DIR = re.compile(r"span-(\d+)")


class SpanError(ValueError):
    """The span directories cannot be read as spans (the message names the directory)."""


@dataclasses.dataclass(frozen=True)
class SpanWindow:
    """The spans one run reads, oldest first."""

    newest: int
    window: Tuple[int, ...]   # interactions.csv of these
    catalog: Tuple[int, ...]  # items.csv and users.csv of these (every span up to the newest)
    previous: Optional[int] = None  # the span before the newest (the drift check's baseline)

    def describe(self) -> str:
        first, last = self.window[0], self.window[-1]
        return f"span {last}" if first == last else f"spans {first}-{last}"


def span_name(span: int) -> str:
    return SPAN_PATTERN.replace("{SPAN}", str(span))


def span_dir(data_dir: str, span: int) -> str:
    return storage.join(data_dir, span_name(span))


def find_spans(data_dir: str) -> List[int]:
    """The span numbers of the `span-N` directories in data_dir, ascending ([] when none).
    Two directories for one number (span-1 and span-01) are a SpanError."""
    found: Dict[int, str] = {}
    for name in storage.listdir(data_dir) if storage.isdir(data_dir) else []:
        match = _SPAN_DIR.fullmatch(name)
        if match is None or not storage.isdir(storage.join(data_dir, name)):
            continue
        number = int(match.group(1))
        if number in found:
            raise SpanError(f"{data_dir}: {found[number]} and {name} are both span {number}")
        found[number] = name
    return sorted(found)


def resolve(data_dir: str, window_spans: int, newest: Optional[int] = None) -> SpanWindow:
    """The spans a run reads: the newest (pinned, or the largest present) and the `window_spans`
    latest up to it. A gap in the numbering is allowed (a delivery that never came); the window
    then counts the spans present."""
    if window_spans < 1:
        raise SpanError(f"window_spans must be at least 1, got {window_spans}")
    present = find_spans(data_dir)
    if not present:
        raise SpanError(f"{data_dir}: no span directory (span-1, span-2, ...)")
    if newest is None:
        newest = present[-1]
    elif newest not in present:
        raise SpanError(f"{span_dir(data_dir, newest)}: span {newest} is not there "
                        f"(spans present: {', '.join(map(str, present))})")
    catalog = tuple(span for span in present if span <= newest)
    return SpanWindow(newest=newest, window=catalog[-window_spans:], catalog=catalog,
                      previous=catalog[-2] if len(catalog) > 1 else None)


def is_spanned(data_dir: str, flat_files) -> bool:
    """True when data_dir holds span directories; a SpanError when it also holds the flat files
    (which of the two a run should read is not for the pipeline to guess)."""
    if not find_spans(data_dir):
        return False
    flat = [name for name in flat_files if storage.isfile(storage.join(data_dir, name))]
    if flat:
        raise SpanError(f"{data_dir}: holds both span directories and {', '.join(flat)}; "
                        "keep the files of each span in its span-N directory")
    return True

"""Spans: input that arrives in parts, `span-1/`, `span-2/`, ... under the data directory (TFX's
name and numbering: a span is one delivery of data, a day's or a week's).

Each span directory holds the three CSVs of the input format (docs/data.md). A span's
interactions.csv holds that span's interactions; its items.csv and users.csv the items and users
that are new or changed in it (a file with the header alone: none). A run reads
  interactions  of the training window: the latest `window_spans` spans up to the newest one;
  items, users  of every span up to the newest, a later span's row of an id replacing an earlier
                one (an item introduced before the window is still in the catalog, as it is today).
Directory names follow a pattern (`spans: {pattern: span-{SPAN}}`: {SPAN} is the number, TFX's
placeholder). The newest span is the largest number present when ExampleGen runs, unless the run pins one: the
local runner pins it when it builds the DAG, so that the span is part of TFX's cache key and a rerun
without a new span is answered from the cache. A compiled Kubeflow pipeline leaves it open, and
each scheduled run takes the newest span it finds (docs/spans.md).
"""

import dataclasses
import re
from typing import Dict, List, Optional, Tuple

from models.foundation import storage

SPAN_PATTERN = "span-{SPAN}"  # a span's directory; {SPAN} is TFX's placeholder for its number


class SpanError(ValueError):
    """The span directories cannot be read as spans (the message names the directory)."""


@dataclasses.dataclass(frozen=True)
class SpanSettings:
    """The `spans` section of the configuration."""

    window: int = 4  # interactions of the latest `window` spans are trained on
    pattern: str = SPAN_PATTERN  # a span's directory name; {SPAN} stands for its number

    def __post_init__(self):
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"spans window must be a positive integer, got {self.window!r}")
        if not isinstance(self.pattern, str) or self.pattern.count("{SPAN}") != 1 or "/" in self.pattern \
                or not re.fullmatch(r"[\w.{}-]+", self.pattern):
            raise ValueError(f"spans pattern must be a directory name holding {{SPAN}} once (letters, digits, "
                             f"_, -, .), got {self.pattern!r}")

    def matcher(self) -> "re.Pattern":
        before, after = self.pattern.split("{SPAN}")
        return re.compile(re.escape(before) + r"(\d+)" + re.escape(after))


@dataclasses.dataclass(frozen=True)
class SpanWindow:
    """The spans one run reads, oldest first."""

    newest: int
    window: Tuple[int, ...]   # interactions.csv of these
    catalog: Tuple[int, ...]  # items.csv and users.csv of these (every span up to the newest)
    previous: Optional[int] = None  # the span before the newest (the drift check's baseline)
    pattern: str = SPAN_PATTERN

    def describe(self) -> str:
        first, last = self.window[0], self.window[-1]
        return f"span {last}" if first == last else f"spans {first}-{last}"

    def name(self, span: int) -> str:
        return span_name(span, self.pattern)


def span_name(span: int, pattern: str = SPAN_PATTERN) -> str:
    return pattern.replace("{SPAN}", str(span))


def span_dir(data_dir: str, span: int, pattern: str = SPAN_PATTERN) -> str:
    return storage.join(data_dir, span_name(span, pattern))


def find_spans(data_dir: str, settings: SpanSettings = SpanSettings()) -> List[int]:
    """The span numbers of the span directories in data_dir, ascending ([] when none).
    Two directories for one number (span-1 and span-01) are a SpanError."""
    found: Dict[int, str] = {}
    matcher = settings.matcher()
    for name in storage.listdir(data_dir) if storage.isdir(data_dir) else []:
        match = matcher.fullmatch(name)
        if match is None or not storage.isdir(storage.join(data_dir, name)):
            continue
        number = int(match.group(1))
        if number in found:
            raise SpanError(f"{data_dir}: {found[number]} and {name} are both span {number}")
        found[number] = name
    return sorted(found)


def resolve(data_dir: str, settings: SpanSettings = SpanSettings(), newest: Optional[int] = None) -> SpanWindow:
    """The spans a run reads: the newest (pinned, or the largest present) and the `settings.window`
    latest up to it. A gap in the numbering is allowed (a delivery that never came); the window
    then counts the spans present."""
    present = find_spans(data_dir, settings)
    if not present:
        raise SpanError(f"{data_dir}: no span directory ({span_name(1, settings.pattern)}, "
                        f"{span_name(2, settings.pattern)}, ...)")
    if newest is None:
        newest = present[-1]
    elif newest not in present:
        raise SpanError(f"{span_dir(data_dir, newest, settings.pattern)}: span {newest} is not there "
                        f"(spans present: {', '.join(map(str, present))})")
    catalog = tuple(span for span in present if span <= newest)
    return SpanWindow(newest=newest, window=catalog[-settings.window:], catalog=catalog,
                      previous=catalog[-2] if len(catalog) > 1 else None, pattern=settings.pattern)


def is_spanned(data_dir: str, flat_files, settings: SpanSettings = SpanSettings()) -> bool:
    """True when data_dir holds span directories; a SpanError when it also holds the flat files
    (which of the two a run should read is not for the pipeline to guess)."""
    if not find_spans(data_dir, settings):
        return False
    flat = [name for name in flat_files if storage.isfile(storage.join(data_dir, name))]
    if flat:
        raise SpanError(f"{data_dir}: holds both span directories and {', '.join(flat)}; "
                        "keep the files of each span in its span-N directory")
    return True

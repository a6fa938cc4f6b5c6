"""Reading one input CSV file record by record, with the line number of every record.

Files are read in one sequential pass: RFC 4180 allows newlines inside quoted fields, so a file
cannot be cut at arbitrary byte offsets without misreading records. Everything after reading
(validation, join, split, serialization) runs in parallel in Beam.
"""

import contextlib
import csv
import dataclasses
import io
import os
import re
from typing import Iterator, List, Sequence, TextIO, Tuple

from components.ingest import reasons
from models.foundation import beam_credentials

beam_credentials.anonymous_when_emulated()  # these readers run in Beam workers, on gs:// too

# A title or a free-text feature may be long; the csv module's default limit (128 KiB) would turn
# a long but valid field into an error.
csv.field_size_limit(16 * 1024 * 1024)
# What a message must not print raw: control characters (category Cc) and the lone surrogates that
# undecodable bytes become (surrogateescape: file names, lines read with errors="surrogateescape").
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\udc80-\udcff]")


class InputFileError(ValueError):
    """The file as a whole is unusable (absent, empty, header without a required column)."""

    def __init__(self, path: str, line: int, reason: str):
        self.path, self.line, self.reason = path, line, reason
        super().__init__(f"{display_name(path)}, line {line}: {reason}")


@dataclasses.dataclass(frozen=True)
class Record:
    """One record of a CSV file: `fields` holds as many values as the header has columns."""

    line: int  # the line the record starts on (the header is line 1)
    fields: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class BadRow:
    """A rejected row: where it is and why. It counts as `lines` bad rows (see read_records)."""

    file: str  # the file's name, as report.json's data_quality keys it
    line: int
    reason: str
    detail: str
    lines: int = 1


def read_header(path: str, required: Sequence[str]) -> List[str]:
    """Returns the header's column names; raises InputFileError if the file cannot be used."""
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(path):
        raise InputFileError(path, 0, "file not found")
    try:
        with _open_text(path) as f:
            reader = csv.reader(f)
            header = next(reader, None)
    except IsADirectoryError:  # a local directory "exists" too; os.path.isfile said "not found"
        raise InputFileError(path, 0, "file not found") from None
    if not header:
        raise InputFileError(path, 1, "the file is empty: a header line is required")
    names = [name.strip() for name in header]
    if _has_surrogates(names):
        raise InputFileError(path, 1, "the header is not valid UTF-8")
    if any("\x00" in name for name in names):  # UTF-16 without a byte order mark reads so
        raise InputFileError(path, 1, "the header holds NUL characters (a UTF-16 file?): the file must be UTF-8")
    for name in required:
        if name not in names:
            raise InputFileError(path, 1, f"missing column '{name}' in header {printable(','.join(names))}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputFileError(path, 1, f"duplicate column(s) {','.join(duplicates)} in header")
    return names


def read_records(path: str, num_columns: int, label: str = "") -> Iterator[Record | BadRow]:
    """Yields every record after the header, in file order. Bad rows name the file by `label`
    (default: its display name; a span's files: "span-3/items.csv").

    Handles a UTF-8 byte order mark, CRLF line ends and quoted commas, quotes and newlines.
    Blank lines carry no data and are skipped. A record with the wrong number of fields that
    spans several lines (an unclosed quote swallows the lines after it) counts as that many bad
    rows, so that the lines it swallowed are not lost silently.
    """
    name = label or display_name(path)
    with _open_text(path) as f:
        reader = csv.reader(f, strict=False)
        next(reader, None)  # the header, checked by read_header
        last_line = reader.line_num
        while True:
            start = last_line + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as error:  # e.g. a NUL byte in the line
                last_line = reader.line_num
                yield BadRow(name, start, reasons.WRONG_FIELD_COUNT, f"unreadable CSV: {error}")
                continue
            last_line = reader.line_num
            if not fields:
                continue
            if _has_surrogates(fields):
                yield BadRow(name, start, reasons.INVALID_UTF8, "the line's bytes are not UTF-8")
            elif len(fields) != num_columns:
                spanned = last_line - start + 1
                yield BadRow(
                    name,
                    start,
                    reasons.WRONG_FIELD_COUNT,
                    f"{len(fields)} fields where the header has {num_columns}",
                    lines=spanned,
                )
            else:
                yield Record(start, tuple(fields))


@contextlib.contextmanager
def _open_text(path: str) -> Iterator[TextIO]:
    """The file as text, decoded exactly as open(path, encoding="utf-8-sig",
    errors="surrogateescape", newline="") would: a BOM is dropped, undecodable bytes become lone
    surrogates, line ends reach the csv module untouched (newlines inside quoted fields).

    Beam's FileSystems rather than tf.io.gfile: these readers run inside Beam transforms (on
    Dataflow workers, with the pipeline's credentials), take local paths and gs:// alike, and
    must not load TensorFlow. UNCOMPRESSED: the default would guess a codec from the name.
    """
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    with io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="") as text:
        yield text  # closing the wrapper closes `raw`


def display_name(path: str) -> str:
    """The file's name as messages and BadRow.file give it: its basename, printable (a name that is
    not UTF-8 reaches Python with lone surrogates, which a strict UTF-8 terminal cannot print)."""
    return printable(os.path.basename(path))


def printable(text: str) -> str:
    """`text` with control characters and undecodable bytes as escapes ("\\n", "\\xe9"): one line
    that any terminal prints."""
    if text.isprintable() or not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(lambda found: _escape(found.group()), text)


def _escape(char: str) -> str:
    if "\udc80" <= char <= "\udcff":  # surrogateescape's stand-in for the byte 0x80-0xFF
        return f"\\x{ord(char) - 0xDC00:02x}"
    return repr(char)[1:-1]


def _has_surrogates(values: Sequence[str]) -> bool:
    # errors="surrogateescape" maps each undecodable byte to a lone surrogate U+DC80..U+DCFF.
    return any(any("\udc80" <= ch <= "\udcff" for ch in v) for v in values if not v.isascii())

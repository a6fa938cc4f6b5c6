"""Ids holding a control character (Unicode category Cc) are bad rows of their own reason, in each
of the three input files, wherever the character stands in the id (str.strip() must not hide it)."""

import csv
import io
import re
import sys
import unicodedata

import pytest

from components.ingest import reasons, rows
from components.ingest.csv_rows import BadRow, display_name, printable

CONTROL = [chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))]  # every Cc code point
PLACES = {"start": "{}x1", "middle": "x{}1", "end": "x1{}"}


def test_the_check_matches_unicode_category_cc_and_nothing_else():
    flagged = {chr(c) for c in range(sys.maxunicode + 1) if rows.control_character("item_id", chr(c))}
    assert flagged == {chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cc"}
    assert flagged == set(CONTROL) and len(flagged) == 65
    # Line and paragraph separators, file separators' neighbours of other categories pass.
    for fine in ("\u2028", "\u2029", "\u00a0", "\u200b", "\ufeff", "a b", "😀"):
        assert rows.control_character("item_id", fine) == ""


def _csv_text(header, records):
    """(file text, the line each record starts on): csv.writer's RFC 4180 quoting and CRLF line ends
    (with "\\n" ones it would not quote a lone "\\r"); lines counted as the reader counts them, at
    "\\r\\n", "\\r" and "\\n" (the only line ends of io's newline="")."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    starts = []
    for record in records:
        starts.append(len(re.findall(r"\r\n|\r|\n", out.getvalue())) + 1)
        writer.writerow(record)
    return out.getvalue(), starts


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return str(path)


def _bad_ids():
    """(id, the control character in it) for every Cc character in every place."""
    return [(place.format(char), char) for char in CONTROL for place in PLACES.values()]


@pytest.mark.parametrize("file_name", [rows.USERS_FILE, rows.ITEMS_FILE])
def test_entities_with_a_control_character_in_their_id_are_bad_rows(tmp_path, file_name):
    column = rows.ID_COLUMN[file_name]
    header = [column, "title"] if file_name == rows.ITEMS_FILE else [column, "age"]
    bad = _bad_ids()
    records = [["good-1", "A"]] + [[identifier, "B"] for identifier, _ in bad] + [["good-2", "C"]]
    text, starts = _csv_text(header, records)
    out = list(rows.read_entities(_write(tmp_path, file_name, text), file_name))
    assert [r.id for r in out if isinstance(r, rows.Entity)] == ["good-1", "good-2"]
    rejected = [r for r in out if isinstance(r, BadRow)]
    assert len(rejected) == len(bad) == 65 * 3
    for row, (identifier, char), line in zip(rejected, bad, starts[1:-1]):
        assert (row.file, row.line, row.reason, row.lines) == (file_name, line, reasons.CONTROL_CHARACTER, 1)
        assert row.detail.startswith(f"{column} {identifier!r} holds control character {char!r} (U+{ord(char):04X})")
        assert "\n" not in row.detail and "\r" not in row.detail


def test_interactions_with_a_control_character_in_either_id_are_bad_rows(tmp_path):
    bad = _bad_ids()
    records = [["u1", "i1", "10"]]
    expected = []
    for identifier, char in bad:
        records += [[identifier, "i1", "11"], ["u1", identifier, "12"]]
        expected += [("user_id", identifier, char), ("item_id", identifier, char)]
    records.append(["u2", "i2", "13"])
    text, starts = _csv_text(["user_id", "item_id", "timestamp"], records)
    out = list(rows.read_interactions(_write(tmp_path, rows.INTERACTIONS_FILE, text), seed=0))
    assert [(r.user_id, r.item_id) for r in out if isinstance(r, rows.Interaction)] == [("u1", "i1"), ("u2", "i2")]
    rejected = [r for r in out if isinstance(r, BadRow)]
    assert len(rejected) == 2 * 65 * 3
    for row, (column, identifier, char), line in zip(rejected, expected, starts[1:-1]):
        assert (row.line, row.reason) == (line, reasons.CONTROL_CHARACTER)
        assert row.detail.startswith(f"{column} {identifier!r} holds control character {char!r} (U+{ord(char):04X})")


def test_a_control_character_comes_before_the_other_field_checks(tmp_path):
    # "\t" alone strips to "": a control character, not a missing id; a bad timestamp is checked after.
    text = 'user_id,item_id,timestamp\n"\t",i1,10\nu1,"\x00",later\n'
    out = list(rows.read_interactions(_write(tmp_path, rows.INTERACTIONS_FILE, text), seed=0))
    assert [(r.line, r.reason) for r in out] == [(2, reasons.CONTROL_CHARACTER), (3, reasons.CONTROL_CHARACTER)]
    assert out[1].detail == "item_id '\\x00' holds control character '\\x00' (U+0000) at position 0"
    assert reasons.ALL.index(reasons.CONTROL_CHARACTER) < reasons.ALL.index(reasons.MISSING_ID)


def test_messages_print_undecodable_names_and_control_characters_as_escapes():
    assert display_name("/data/caf\udce9.csv") == "caf\\xe9.csv"
    assert printable("a\nb\x85c\u2028d") == "a\\nb\\x85c\u2028d"
    assert printable("plain, é") == "plain, é"
    display_name("/data/caf\udce9.csv").encode("utf-8")  # a strict UTF-8 terminal prints it


def test_a_utf16_header_is_named_as_such(tmp_path):
    from components.ingest.csv_rows import InputFileError, read_header

    path = tmp_path / "items.csv"
    path.write_bytes("item_id,title\ni1,A\n".encode("utf-16-le"))
    with pytest.raises(InputFileError, match=r"^items\.csv, line 1: the header holds NUL characters \(a UTF-16 file"):
        read_header(str(path), ["item_id", "title"])

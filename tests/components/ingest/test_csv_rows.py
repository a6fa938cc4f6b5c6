"""CSV edge cases: quoting, BOM, CRLF, empty files, missing columns, bad bytes."""

import pytest

from components.ingest import reasons, rows
from components.ingest.csv_rows import BadRow, InputFileError, Record, read_header, read_records


def _write(tmp_path, content, name="items.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def test_quoted_commas_quotes_and_newlines_in_titles(tmp_path):
    path = _write(tmp_path, 'item_id,title\ni1,"Toy Story, The"\ni2,"Say ""Hi"""\ni3,"two\nlines"\ni4,Heat\n')
    records = list(read_records(path, 2))
    assert [r.fields for r in records] == [("i1", "Toy Story, The"), ("i2", 'Say "Hi"'), ("i3", "two\nlines"), ("i4", "Heat")]
    # Line numbers are physical lines: the multi-line record pushes the next one down.
    assert [r.line for r in records] == [2, 3, 4, 6]


def test_byte_order_mark_and_crlf(tmp_path):
    path = _write(tmp_path, b"\xef\xbb\xbfitem_id,title\r\ni1,A\r\ni2,\"B, b\"\r\n")
    assert read_header(path, ["item_id", "title"]) == ["item_id", "title"]
    assert [(r.line, r.fields) for r in read_records(path, 2)] == [(2, ("i1", "A")), (3, ("i2", "B, b"))]


def test_empty_file_and_header_only(tmp_path):
    with pytest.raises(InputFileError, match="empty"):
        read_header(_write(tmp_path, ""), ["item_id"])
    assert list(read_records(_write(tmp_path, "item_id,title\n", "h.csv"), 2)) == []


def test_missing_and_duplicate_columns(tmp_path):
    with pytest.raises(InputFileError, match="missing column 'title'") as error:
        read_header(_write(tmp_path, "item_id,name\ni1,x\n"), ["item_id", "title"])
    assert error.value.line == 1
    with pytest.raises(InputFileError, match="duplicate column"):
        read_header(_write(tmp_path, "item_id,title,title\n", "d.csv"), ["item_id"])


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_header(str(tmp_path / "absent.csv"), ["item_id"])


def test_wrong_field_count_invalid_utf8_and_blank_lines(tmp_path):
    path = _write(tmp_path, b"item_id,title\ni1,A,extra\n\ni2,\xff\xfe\ni3,C\n")
    records = list(read_records(path, 2))
    assert records[0] == BadRow("items.csv", 2, reasons.WRONG_FIELD_COUNT, "3 fields where the header has 2")
    assert isinstance(records[1], BadRow) and records[1].reason == reasons.INVALID_UTF8 and records[1].line == 4
    assert records[2] == Record(5, ("i3", "C"))
    assert len(records) == 3  # the blank line holds no data


def test_unclosed_quote_counts_every_swallowed_line(tmp_path):
    path = _write(tmp_path, 'item_id,title,year\ni1,"open,1995\ni2,B,1996\ni3,C,1997\n')
    (bad,) = list(read_records(path, 3))
    assert bad.reason == reasons.WRONG_FIELD_COUNT and bad.line == 2 and bad.lines == 3


def test_interaction_rows_are_typed_or_rejected_with_a_reason(tmp_path):
    path = _write(
        tmp_path,
        "user_id,item_id,timestamp,rating\n u1 ,i1,100,4.5\n,i1,100,4\nu1,i1,1.5,4\nu1,i1,100,abc\nu1,i1,100,nan\n",
        "interactions.csv",
    )
    out = list(rows.read_interactions(path, seed=42))
    assert (out[0].user_id, out[0].item_id, out[0].timestamp, out[0].rating, out[0].line) == ("u1", "i1", 100, 4.5, 2)
    assert [(r.line, r.reason) for r in out[1:]] == [
        (3, reasons.MISSING_ID), (4, reasons.BAD_TIMESTAMP), (5, reasons.BAD_RATING), (6, reasons.BAD_RATING)
    ]


def test_order_keys_are_the_benchmark_draws_in_file_order(tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.setattr(rows, "_ORDER_KEY_CHUNK", 3)  # several chunks: the stream must not change
    body = "".join(f"u{i},i1,{i}\n" if i != 4 else "bad line\n" for i in range(8))
    path = _write(tmp_path, "user_id,item_id,timestamp\n" + body, "interactions.csv")
    out = list(rows.read_interactions(path, seed=42))
    expected = np.random.RandomState(42).rand(8)
    keys = [r.order_key for r in out if isinstance(r, rows.Interaction)]
    # Every record draws, bad ones included, so a good row's draw does not depend on bad rows.
    assert keys == [expected[i] for i in range(8) if i != 4]


def test_entities_reject_missing_and_repeated_ids(tmp_path):
    path = _write(tmp_path, "user_id,age\nu1,24\n,30\nu1,25\nu2,\n", "users.csv")
    out = list(rows.read_entities(path, rows.USERS_FILE))
    assert out[0] == rows.Entity("u1", {"age": "24"}, 2)
    assert [(r.line, r.reason) for r in out[1:3]] == [(3, reasons.MISSING_ID), (4, reasons.DUPLICATE_ID)]
    assert out[3] == rows.Entity("u2", {"age": ""}, 5)

"""NEW.csv of `recdistill add-items`: read and checked as ingestion reads items.csv (no run needed)."""

import pytest

from components.ingest.csv_rows import InputFileError
from components.ingest.quality import DataQualityError
from tfx_pipeline import new_items

TYPES = {"title": "bytes", "year": "int", "rating": "float", "genres": "bytes_list"}
CATALOG = ["", "i1", "i2"]


def _write(tmp_path, text):
    path = tmp_path / "NEW.csv"
    path.write_bytes(text.encode("utf-8"))
    return str(path)


def test_good_rows_are_encoded_as_the_catalog_and_bad_ones_named(tmp_path):
    import tensorflow as tf

    path = _write(tmp_path, "item_id,genres,title,year,rating\n"
                            'n1,Drama|Noir,"Heat, Again",1995,4\n'
                            "n2,,Plain,,\n"
                            "n3,War,Bad year,19x5,3\n"
                            "n4,War,Bad rating,1990,high\n"
                            "n1,War,Repeat,1990,3\n"
                            "n5,War\n")
    new = new_items.read(path, TYPES, CATALOG, max_bad_share=0.9)
    assert new.ids == ["n1", "n2"] and new.rows == 6
    assert new_items.describe_bad(new.bad) == [
        "NEW.csv, line 4: bad_value: year '19x5' is not an integer (the catalog's year column holds int values)",
        "NEW.csv, line 5: bad_value: rating 'high' is not a number (the catalog's rating column holds float values)",
        "NEW.csv, line 6: duplicate_id: item_id 'n1' repeated",
        "NEW.csv, line 7: wrong_field_count: 2 fields where the header has 5"]
    first = tf.train.Example.FromString(new.records[0]).features.feature
    assert first["item_id"].bytes_list.value == [b"n1"] and first["item_title"].bytes_list.value == [b"Heat, Again"]
    assert first["item_genres"].bytes_list.value == [b"Drama", b"Noir"]
    assert first["item_year"].int64_list.value == [1995]
    assert first["item_rating"].float_list.value == [4.0]
    second = tf.train.Example.FromString(new.records[1]).features.feature
    assert not second["item_year"].int64_list.value and not second["item_genres"].bytes_list.value  # missing


def test_too_many_bad_rows_stop_with_the_ingestion_message(tmp_path):
    path = _write(tmp_path, "item_id,title,year,genres,rating\nn1,A,1990,War,1\n,B,1990,War,1\n")
    with pytest.raises(DataQualityError, match=r"NEW\.csv: 1 of 2 rows \(50\.0%\) are bad.*line 3.*missing_id"):
        new_items.read(path, TYPES, CATALOG, max_bad_share=0.1)


def test_an_id_in_the_catalog_is_an_error_naming_the_line(tmp_path):
    path = _write(tmp_path, "item_id,title,year,genres,rating\nn1,A,1990,War,1\ni2,B,1990,War,1\n")
    with pytest.raises(new_items.IdsInCatalog, match=r"1 item id\(s\) already in the deployed catalog \(line 3: 'i2'"):
        new_items.read(path, TYPES, CATALOG, max_bad_share=0.9)


def test_the_header_must_have_the_runs_item_columns(tmp_path):
    path = _write(tmp_path, "item_id,title,colour\nn1,A,red\n")
    with pytest.raises(InputFileError, match=r"colour not in the run's items.csv; missing column\(s\) genres, rating"):
        new_items.read(path, TYPES, CATALOG, max_bad_share=0.9)


def test_ids_with_a_control_character_are_bad_rows_named_by_file_and_line(tmp_path):
    """Every Cc character (U+0000-U+001F, U+007F-U+009F) in an item id: a bad row of NEW.csv, as in
    ingestion; the good rows are added. A "\\n" id would add a line to item_vocab.txt."""
    import csv
    import io
    import re

    controls = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))]
    out = io.StringIO()
    writer = csv.writer(out)  # CRLF line ends: a lone "\r" is quoted too
    writer.writerow(["item_id", "title", "year", "genres", "rating"])
    writer.writerow(["n1", "A", "1990", "War", "1"])
    lines = []
    for k, char in enumerate(controls):
        lines.append(len(re.findall(r"\r\n|\r|\n", out.getvalue())) + 1)  # line ends as the reader counts them
        writer.writerow([f"c{k}{char}x", "B", "1990", "War", "1"])
    writer.writerow(["n2", "C", "1991", "War", "2"])
    path = tmp_path / "NEW.csv"
    path.write_bytes(out.getvalue().encode("utf-8"))
    new = new_items.read(str(path), TYPES, CATALOG, max_bad_share=0.99)
    assert new.ids == ["n1", "n2"] and new.rows == 2 + len(controls) == 67
    described = new_items.describe_bad(new.bad)
    assert len(described) == len(controls)
    for text, char, k, line in zip(described, controls, range(len(controls)), lines):
        assert text == (f"NEW.csv, line {line}: control_character: item_id {f'c{k}{char}x'!r} holds control "
                        f"character {char!r} (U+{ord(char):04X}) at position {len(f'c{k}')}")
        assert "\n" not in text and "\r" not in text


def test_a_file_name_that_is_not_utf8_is_printed_with_escapes(tmp_path):
    import os

    directory = os.fsencode(str(tmp_path))
    with open(os.path.join(directory, b"caf\xe9.csv"), "wb") as f:
        f.write(b"item_id,title,year,genres,rating\nn1,A,1990,War,1\nn2,Only two\n")
    new = new_items.read(os.fsdecode(os.path.join(directory, b"caf\xe9.csv")), TYPES, CATALOG, max_bad_share=0.9)
    (line,) = new_items.describe_bad(new.bad)
    assert line == "caf\\xe9.csv, line 3: wrong_field_count: 2 fields where the header has 5"
    line.encode("utf-8")  # strict: what `add-items` prints to a UTF-8 terminal

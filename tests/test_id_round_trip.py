"""Property tests: random ids survive every one-id-per-line file and the CSV reader.

Ids are drawn (seeded) from all of Unicode but surrogates, with the characters that break
line-oriented readers drawn often: U+2028, U+2029, U+0085, \\x1c-\\x1e, \\v, \\f, \\r (str.splitlines
splits at every one of them), quotes, commas, spaces, emoji beyond the BMP. The CSV reader gets no
control characters (category Cc): those ids are bad rows (tests/components/ingest/test_control_characters.py).
"""

import csv
import io
import os
import unicodedata

import numpy as np
import pytest

from components.ingest import rows
from components.ingest.csv_rows import BadRow

CASES = 300
# Characters that break line-oriented or CSV readers, drawn half the time.
AWKWARD = ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c", "\r", " ", "\u00a0", "\u3000",
           '"', "'", ",", ";", "\\", "\ufeff", "\u200b", "\U0001F600", "\U0001F9D1\u200d\U0001F373", "é", "\u0301"]


def _random_id(rng: np.random.Generator, allow_control: bool) -> str:
    chars = []
    for _ in range(int(rng.integers(1, 13))):
        if rng.random() < 0.5:
            char = AWKWARD[int(rng.integers(len(AWKWARD)))]
        else:
            code = int(rng.integers(0x20, 0x110000))
            char = chr(code) if not 0xD800 <= code <= 0xDFFF else "s"  # lone surrogates are not UTF-8
        if allow_control or unicodedata.category(char[0]) != "Cc":
            chars.append(char)
    return "".join(chars) or "x"


def _random_ids(seed: int, allow_control: bool) -> list:
    rng = np.random.default_rng(seed)
    return [_random_id(rng, allow_control) for _ in range(CASES)]


def test_the_draw_covers_the_awkward_characters():
    drawn = "".join(_random_ids(0, allow_control=True))
    assert all(char in drawn for char in AWKWARD)
    assert any(ord(char) > 0xFFFF for char in drawn) and "\n" not in drawn
    assert not any(unicodedata.category(c) == "Cc" for c in "".join(_random_ids(1, allow_control=False)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vocabulary_files_round_trip(tmp_path, seed):
    from models import mobile_export
    from models.foundation import signatures
    from models.vocabulary_file import read_vocabulary

    user_ids = [""] + _random_ids(seed, allow_control=True)  # every character but "\n" is written
    item_ids = [""] + _random_ids(seed + 100, allow_control=True)
    mobile_export.write_vocabularies(str(tmp_path), user_ids, item_ids)
    assert read_vocabulary(os.path.join(tmp_path, signatures.USER_VOCAB)) == user_ids
    assert read_vocabulary(os.path.join(tmp_path, signatures.ITEM_VOCAB)) == item_ids
    raw = (tmp_path / signatures.ITEM_VOCAB).read_bytes()
    assert raw == "".join(f"{i}\n" for i in item_ids).encode("utf-8")  # UTF-8, one "\n" after each id


def test_an_id_with_a_newline_is_never_written_to_a_vocabulary(tmp_path):
    from models import mobile_export

    with pytest.raises(ValueError, match=r"item_vocab.txt: id 'nl\\nid' \(index 2\) holds a newline"):
        mobile_export.write_vocabularies(str(tmp_path), ["", "u1"], ["", "i1", "nl\nid"])


def test_a_vocabulary_that_is_not_utf8_is_named(tmp_path):
    from models.vocabulary_file import read_vocabulary

    path = tmp_path / "item_vocab.txt"
    path.write_bytes(b"\ni1\ncaf\xe9\n")
    with pytest.raises(ValueError, match=rf"^{path}: not a vocabulary file \(byte 7 is not UTF-8\)"):
        read_vocabulary(str(path))


@pytest.mark.parametrize("seed", [3, 4])
def test_csv_ids_round_trip_through_the_ingestion_reader(tmp_path, seed):
    """Written with RFC 4180 quoting (the csv module), read back by rows.read_entities and
    rows.read_interactions: the id, stripped of surrounding whitespace as ingestion strips it."""
    ids, seen = [], set()
    for candidate in _random_ids(seed, allow_control=False):
        if candidate.strip() and candidate.strip() not in seen:  # empty or repeated: other bad rows
            seen.add(candidate.strip())
            ids.append(candidate)
    assert len(ids) > CASES * 0.9
    assert any(i != i.strip() for i in ids)  # some ids carry whitespace that ingestion strips
    items, interactions = io.StringIO(), io.StringIO()
    csv.writer(items).writerows([["item_id", "title"]] + [[i, "t"] for i in ids])
    csv.writer(interactions).writerows([["user_id", "item_id", "timestamp"]] + [[i, i, "1"] for i in ids])
    (tmp_path / "items.csv").write_bytes(items.getvalue().encode("utf-8"))
    (tmp_path / "interactions.csv").write_bytes(interactions.getvalue().encode("utf-8"))

    entities = list(rows.read_entities(str(tmp_path / "items.csv"), rows.ITEMS_FILE))
    assert not [e for e in entities if isinstance(e, BadRow)]
    assert [e.id for e in entities] == [i.strip() for i in ids]
    read = list(rows.read_interactions(str(tmp_path / "interactions.csv"), seed=0))
    assert [(r.user_id, r.item_id) for r in read] == [(i.strip(), i.strip()) for i in ids]


@pytest.mark.slow  # a Beam pipeline
def test_ids_round_trip_through_tf_examples_and_transforms_vocabulary_files(tmp_path):
    """Ids reach Transform inside tf.Examples (components/ingest/examples.py); Transform writes its
    vocabulary with Beam's WriteToText (one id and "\\n" each, as tensorflow_transform's
    analyzer_impls does) and TeacherTrainer reads it back with TFTransformOutput.vocabulary_by_name."""
    import apache_beam as beam
    import tensorflow_transform as tft

    from components.ingest import examples
    from models import interaction_data

    ids = [i.strip() for i in _random_ids(5, allow_control=False) if i.strip()]
    for identifier in ids:
        record = examples.catalog_example(identifier, b"")
        assert interaction_data.parse(record)["item_id"] == [identifier]
    assets = tmp_path / "transform_fn" / "assets"
    os.makedirs(assets)
    with beam.Pipeline() as p:
        _ = (p | beam.Create([i.encode("utf-8") for i in ids])
             | beam.io.WriteToText(str(assets / "item_id"), shard_name_template=""))
    vocabulary = tft.TFTransformOutput(str(tmp_path)).vocabulary_by_name("item_id")
    assert sorted(v.decode("utf-8") for v in vocabulary) == sorted(ids)  # as components/teacher/component.py decodes

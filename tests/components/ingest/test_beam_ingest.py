"""The Beam ingestion on tiny hand-written data: join, accounting, splits and the catalog."""

import glob
import json
import os

import apache_beam as beam
import pytest
import tensorflow as tf

from components.ingest import beam_ingest, quality, reasons
from components.ingest.splits import SplitSpec

pytestmark = pytest.mark.slow  # a Beam pipeline per test (4-9 s each)


def _run(data_dir, out_dir, **settings):
    settings = beam_ingest.IngestSettings(**{"split": SplitSpec("temporal", 0.25, 0.0), **settings})
    summary_path = os.path.join(out_dir, "summary.json")
    with beam.Pipeline() as p:
        beam_ingest.ingest(p, data_dir, settings, os.path.join(out_dir, "ex"), os.path.join(out_dir, "cat"), summary_path)
    with open(summary_path) as f:
        return json.load(f)


def _examples(uri, split):
    files = glob.glob(os.path.join(uri, f"Split-{split}", "*.gz"))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return [tf.train.Example.FromString(r.numpy()) for r in records]


def _value(example, name):
    feature = example.features.feature[name]
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value)
    return [v.decode() if isinstance(v, bytes) else v for v in values]


def test_join_accounting_and_splits(tiny_dir, tmp_path):
    summary = _run(tiny_dir, str(tmp_path))
    quality_by_file = summary["data_quality"]
    assert quality_by_file["interactions.csv"]["rows"] == 16
    assert quality_by_file["interactions.csv"]["bad"] == {
        reasons.UNKNOWN_USER: 1, reasons.UNKNOWN_ITEM: 1, reasons.BAD_TIMESTAMP: 1,
        reasons.WRONG_FIELD_COUNT: 1, reasons.DUPLICATE_ROW: 1,
    }
    assert quality_by_file["interactions.csv"]["first_bad"][reasons.DUPLICATE_ROW]["line"] == 17
    assert quality_by_file["users.csv"] == {"rows": 3, "bad": {}, "first_bad": {}}
    # 11 good interactions: u1 4 -> 3 train + 1 test, u2 3 -> 2 + 1, u3 4 -> 3 + 1.
    assert summary["split_counts"] == {"train": 8, "eval": 0, "test": 3}
    assert beam_ingest.NEWEST_SPAN_FROM not in summary  # flat files: no spans
    assert summary["column_types"] == {
        "users": {"age": "int", "gender": "bytes"},
        "items": {"title": "bytes", "year": "int", "genres": "bytes_list"},
    }

    train = _examples(os.path.join(tmp_path, "ex"), "train")
    test = _examples(os.path.join(tmp_path, "ex"), "test")
    assert len(train) == 8 and len(test) == 3
    by_key = {(_value(e, "user_id")[0], _value(e, "item_id")[0]): e for e in train + test}
    toy = by_key[("u1", "i1")]
    assert _value(toy, "item_title") == ["Toy Story, The"]
    assert _value(toy, "item_genres") == ["Animation", "Comedy"]
    assert _value(toy, "item_year") == [1995] and _value(toy, "user_age") == [24]
    assert _value(toy, "user_gender") == ["M"] and _value(toy, "rating") == [4.0]
    # Missing values are present features with no values; quotes survive.
    assert _value(by_key[("u3", "i3")], "user_age") == [] and _value(by_key[("u3", "i3")], "item_year") == []
    assert _value(by_key[("u3", "i3")], "item_title") == ['Say "Hi"']
    # The temporal split puts each user's latest interaction in test.
    assert {(_value(e, "user_id")[0], _value(e, "item_id")[0]) for e in test} == {("u1", "i4"), ("u2", "i1"), ("u3", "i4")}

    catalog = _examples(os.path.join(tmp_path, "cat"), beam_ingest.CATALOG_SPLIT)
    assert sorted(_value(e, "item_id")[0] for e in catalog) == ["i1", "i2", "i3", "i4"]


def test_threshold_on_the_summary(tiny_dir, tmp_path):
    summary = _run(tiny_dir, str(tmp_path))["data_quality"]
    quality.check(summary, max_bad_share=0.5)  # 5 of 16 bad: under 50%
    with pytest.raises(quality.DataQualityError, match=r"interactions.csv: 5 of 16 rows .* first at line 13: user_id 'u9'"):
        quality.check(summary, max_bad_share=0.01)


def test_time_cutoff_split_runs_on_beam(tiny_dir, tmp_path):
    summary = _run(tiny_dir, str(tmp_path), split=SplitSpec("time_cutoff", test_share=0.0, eval_share=0.0, test_from=1085))
    # Timestamps 1010..1110 in steps of 10: 1090..1110 are at or after the cutoff.
    assert summary["split_counts"] == {"train": 8, "eval": 0, "test": 3}


def test_cold_items_are_held_out_of_train_and_named_in_the_summary(tiny_dir, tmp_path):
    summary = _run(tiny_dir, str(tmp_path), split=SplitSpec("temporal", 0.25, 0.0, cold_items=0.25))
    # 4 catalog items: one held out, the same one pick_cold_items draws from the ids alone.
    from components.ingest import splits

    expected = sorted(splits.pick_cold_items(["i1", "i2", "i3", "i4"], 0.25, 42))
    assert summary[beam_ingest.COLD_ITEMS] == expected
    train = _examples(os.path.join(tmp_path, "ex"), "train")
    test = _examples(os.path.join(tmp_path, "ex"), "test")
    assert len(train) + len(test) == 11
    assert not {_value(e, "item_id")[0] for e in train} & set(expected)
    assert {_value(e, "item_id")[0] for e in test} >= set(expected)
    assert beam_ingest.COLD_ITEMS not in _run(tiny_dir, str(tmp_path / "warm"))  # off: the summary as before


def test_ids_with_control_characters_are_counted_in_the_summary(write_input, tmp_path):
    """One id with a control character in each file (a quoted newline, NEL U+0085, a tab, NUL):
    counted under their own reason, and nothing else changes for the good rows."""
    users = 'user_id,age\nu1,24\nu2,30\n"u\nx",40\n'
    items = "item_id,title\ni1,A\ni2,B\ni\x853,C\n"
    interactions = ("user_id,item_id,timestamp\n"
                    "u1,i1,10\nu1,i2,20\nu2,i1,30\nu2,i2,40\n"
                    "u1\t,i1,50\nu2,\"i\x002\",60\n")
    data_dir = write_input(tmp_path / "data", interactions, users=users, items=items)
    summary = _run(data_dir, str(tmp_path / "out"))
    quality_by_file = summary["data_quality"]
    assert quality_by_file["users.csv"]["rows"] == 3 and quality_by_file["users.csv"]["bad"] == {
        reasons.CONTROL_CHARACTER: 1}
    assert quality_by_file["users.csv"]["first_bad"][reasons.CONTROL_CHARACTER] == {
        "line": 4, "detail": "user_id 'u\\nx' holds control character '\\n' (U+000A) at position 1"}
    assert quality_by_file["items.csv"]["bad"] == {reasons.CONTROL_CHARACTER: 1}
    assert "(U+0085)" in quality_by_file["items.csv"]["first_bad"][reasons.CONTROL_CHARACTER]["detail"]
    assert quality_by_file["interactions.csv"]["rows"] == 6
    assert quality_by_file["interactions.csv"]["bad"] == {reasons.CONTROL_CHARACTER: 2}
    assert "(U+0009)" in quality_by_file["interactions.csv"]["first_bad"][reasons.CONTROL_CHARACTER]["detail"]
    assert summary["split_counts"] == {"train": 2, "eval": 0, "test": 2}  # u1 and u2: 1 train + 1 test each

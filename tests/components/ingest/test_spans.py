"""Input in spans (components/ingest/spans.py): which spans a run reads, and the Beam ingestion of
a window: interactions of the window's spans, items and users of every span with updates, the
newest span's latest interactions as test."""

import glob
import json
import os

import apache_beam as beam
import pytest
import tensorflow as tf

from components.ingest import beam_ingest, component, quality, reasons, spans
from components.ingest.splits import SplitSpec

DAY = 86_400


def _write(directory, name, lines):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def _span(root, number, interactions, items=(), users=()):
    directory = os.path.join(root, f"span-{number}")
    _write(directory, "interactions.csv", ["user_id,item_id,timestamp,rating", *interactions])
    _write(directory, "items.csv", ["item_id,title,year", *items])
    _write(directory, "users.csv", ["user_id,age", *users])


@pytest.fixture
def three_spans(tmp_path):
    """Span k covers day 10k..10k+9. Item i3 arrives in span 2 and is retitled in span 3; user u3
    arrives in span 3; span 3 holds one row naming an unknown item and one exact repeat."""
    root = str(tmp_path / "data")
    _span(root, 1, [f"u1,i1,{10 * DAY},4", f"u2,i2,{11 * DAY},3", f"u1,i2,{12 * DAY},5"],
          items=["i1,One,1990", "i2,Two,1991"], users=["u1,30", "u2,40"])
    _span(root, 2, [f"u1,i3,{20 * DAY},4", f"u2,i1,{21 * DAY},2"], items=["i3,Three,1992"])
    _span(root, 3, [f"u3,i3,{30 * DAY + h},4" for h in range(8)]
          + [f"u1,i9,{31 * DAY},1", f"u1,i1,{32 * DAY},3", f"u1,i1,{32 * DAY},3"],
          items=["i3,Three Reissued,1992"], users=["u3,20"])
    return root


def test_the_window_is_the_latest_spans_and_the_catalog_every_span_up_to_the_newest(tmp_path):
    root = str(tmp_path)
    for number in (1, 2, 4, 7):  # a gap: deliveries 3, 5 and 6 never came
        os.makedirs(os.path.join(root, f"span-{number}"))
    os.makedirs(os.path.join(root, "span-x"))  # not a span
    assert spans.find_spans(root) == [1, 2, 4, 7]
    assert spans.resolve(root, spans.SpanSettings(window=2)) == spans.SpanWindow(newest=7, window=(4, 7), catalog=(1, 2, 4, 7), previous=4)
    assert spans.resolve(root, spans.SpanSettings(window=10), newest=4) == spans.SpanWindow(newest=4, window=(1, 2, 4), catalog=(1, 2, 4), previous=2)
    with pytest.raises(spans.SpanError, match="span 5 is not there"):
        spans.resolve(root, spans.SpanSettings(window=2), newest=5)
    os.makedirs(os.path.join(root, "span-07"))
    with pytest.raises(spans.SpanError, match="span-07 and span-7 are both span 7"):
        spans.find_spans(root)


def test_another_pattern_names_the_span_directories(tmp_path):
    for name in ("week-3.csvs", "week-10.csvs", "week-x.csvs", "span-1"):
        os.makedirs(tmp_path / name)
    settings = spans.SpanSettings(window=1, pattern="week-{SPAN}.csvs")
    assert spans.find_spans(str(tmp_path), settings) == [3, 10]
    window = spans.resolve(str(tmp_path), settings)
    assert (window.window, window.previous, window.name(10)) == ((10,), 3, "week-10.csvs")
    for bad in ("week", "a/{SPAN}", "{SPAN}-{SPAN}"):
        with pytest.raises(ValueError, match="spans pattern must be a directory name"):
            spans.SpanSettings(pattern=bad)


def test_flat_files_beside_span_directories_are_refused(tmp_path):
    os.makedirs(tmp_path / "span-1")
    assert spans.is_spanned(str(tmp_path), ["interactions.csv"])
    (tmp_path / "interactions.csv").write_text("user_id,item_id,timestamp\n")
    with pytest.raises(spans.SpanError, match="both span directories and interactions.csv"):
        spans.is_spanned(str(tmp_path), ["interactions.csv", "items.csv"])
    assert not spans.is_spanned(str(tmp_path / "span-1"), ["interactions.csv"])


def test_a_span_with_other_columns_stops_before_any_work(three_spans):
    _write(os.path.join(three_spans, "span-2"), "items.csv", ["item_id,title", "i3,Three"])
    window = spans.resolve(three_spans, spans.SpanSettings(window=3))
    with pytest.raises(quality.DataQualityError, match="span-2/items.csv: columns item_id, title differ"):
        component.check_headers(three_spans, window)


def _examples(uri, split):
    files = glob.glob(os.path.join(uri, f"Split-{split}", "*.gz"))
    return [tf.train.Example.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _value(example, name):
    feature = example.features.feature[name]
    values = list(getattr(feature, feature.WhichOneof("kind")).value)
    return [v.decode() if isinstance(v, bytes) else v for v in values]


@pytest.mark.slow  # a Beam pipeline (about 5 s)
def test_a_window_of_two_spans_is_ingested_with_updates_and_the_newest_span_as_test(three_spans, tmp_path):
    window = spans.resolve(three_spans, spans.SpanSettings(window=2))
    settings = beam_ingest.IngestSettings(split=SplitSpec("newest_span", test_share=0.25, eval_share=0.25))
    out, summary_path = str(tmp_path / "out"), str(tmp_path / "summary.json")
    with beam.Pipeline() as p:
        beam_ingest.ingest(p, three_spans, settings, f"{out}/ex", f"{out}/cat", summary_path, window, f"{out}/pair")
    with open(summary_path) as f:
        summary = json.load(f)
    # The drift check's pair: span 3's 9 valid rows and its exact repeat (statistics keep it), span 2's 2.
    assert sorted(_value(e, "timestamp")[0] for e in _examples(f"{out}/pair", "previous")) == [20 * DAY, 21 * DAY]
    newest = _examples(f"{out}/pair", "newest")
    assert len(newest) == 10 and all(_value(e, "timestamp")[0] >= 30 * DAY for e in newest)

    # The newest span's first valid timestamp: what a warm start trains from (span 3 starts at day 30).
    assert summary[beam_ingest.NEWEST_SPAN_FROM] == 30 * DAY

    quality_by_file = summary["data_quality"]
    # Span 1's interactions are outside the window: not read. Every span's items and users are.
    assert "span-1/interactions.csv" not in quality_by_file
    assert quality_by_file["span-2/interactions.csv"] == {"rows": 2, "bad": {}, "first_bad": {}}
    assert quality_by_file["span-3/interactions.csv"]["rows"] == 11
    assert quality_by_file["span-3/interactions.csv"]["bad"] == {reasons.UNKNOWN_ITEM: 1, reasons.DUPLICATE_ROW: 1}
    assert quality_by_file["span-3/interactions.csv"]["first_bad"][reasons.UNKNOWN_ITEM]["line"] == 10
    assert {name: entry["rows"] for name, entry in quality_by_file.items() if "items" in name} == \
        {"span-1/items.csv": 2, "span-2/items.csv": 1, "span-3/items.csv": 1}

    # The catalog: every item of every span, i3 with its latest title.
    catalog = {_value(e, "item_id")[0]: _value(e, "item_title")[0] for e in _examples(f"{out}/cat", "catalog")}
    assert catalog == {"i1": "One", "i2": "Two", "i3": "Three Reissued"}

    # newest_span: cutoffs at (approximate, Beam's) quantiles of span 3's 9 good timestamps alone:
    # test is span 3's latest quarter, eval the quarter of the rest before it, all of span 2 train.
    split_of = {}
    for split in ("train", "eval", "test"):
        for e in _examples(f"{out}/ex", split):
            split_of.setdefault(split, []).append((_value(e, "user_id")[0], _value(e, "item_id")[0],
                                                   _value(e, "timestamp")[0]))
    assert sum(len(rows) for rows in split_of.values()) == 2 + 9  # span 2, and span 3 less two bad rows
    newest = lambda rows: [r for r in rows if r[2] >= 30 * DAY]  # noqa: E731
    assert 2 <= len(split_of["test"]) <= 3 and newest(split_of["test"]) == split_of["test"]
    assert 1 <= len(split_of["eval"]) <= 2 and newest(split_of["eval"]) == split_of["eval"]
    assert min(r[2] for r in split_of["test"]) > max(r[2] for r in split_of["eval"] + split_of["train"])
    assert min(r[2] for r in split_of["eval"]) > max(r[2] for r in split_of["train"])
    # Span 2 is all train; u1's retitled i3 interaction carries the latest title.
    assert ("u1", "i3", 20 * DAY) in split_of["train"] and ("u2", "i1", 21 * DAY) in split_of["train"]
    assert ("u1", "i1", 32 * DAY) in split_of["test"]
    assert all(_value(e, "item_title") == ["Three Reissued"]
               for s in ("train", "eval", "test") for e in _examples(f"{out}/ex", s) if _value(e, "item_id") == ["i3"])


@pytest.mark.slow  # a Beam pipeline (about 5 s)
def test_a_window_of_one_span_still_compares_with_the_previous_span(three_spans, tmp_path):
    window = spans.resolve(three_spans, spans.SpanSettings(window=1))
    assert window.window == (3,) and window.previous == 2
    settings = beam_ingest.IngestSettings(split=SplitSpec("newest_span", test_share=0.25, eval_share=0.0))
    out = str(tmp_path / "out")
    with beam.Pipeline() as p:
        beam_ingest.ingest(p, three_spans, settings, f"{out}/ex", f"{out}/cat", f"{out}/summary.json", window,
                           f"{out}/pair")
    trained = [e for split in ("train", "eval", "test") for e in _examples(f"{out}/ex", split)]
    assert len(trained) == 9 and all(_value(e, "timestamp")[0] >= 30 * DAY for e in trained)
    assert sorted(_value(e, "timestamp")[0] for e in _examples(f"{out}/pair", "previous")) == [20 * DAY, 21 * DAY]
    with open(f"{out}/summary.json") as f:
        summary = json.load(f)
    assert "span-2/interactions.csv" not in summary["data_quality"]  # read for the pair only
    assert summary[beam_ingest.NEWEST_SPAN_FROM] == 30 * DAY

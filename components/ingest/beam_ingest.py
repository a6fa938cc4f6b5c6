"""The Beam pipeline of ingestion: read, validate, join, deduplicate, split, encode, write.

    users.csv, items.csv ─read─> column types ─> features encoded once per id (side inputs)
    interactions.csv ─read─> join ─> group by user ─> dedupe, split, tf.Example ─> Split-*/
                                     (cold items: a seeded draw of item ids, all to test)
    items ─> tf.Example ─> Split-catalog/ (the catalog artifact)
    bad rows of every stage, rows read per file ─> data-quality summary ─> ingest_summary.json

Spans (components/ingest/spans.py): the interactions.csv of every span of the window are read
and flattened; the items.csv and users.csv of every span up to the newest are read, and of an id's
rows the latest span's is kept. Bad rows name the span's file ("span-3/items.csv").
"""

import json
import os
from typing import Dict, Iterable, List, Optional, Tuple

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components.ingest import examples, quality, reasons, rows, splits, spans
from components.ingest.ingest_settings import IngestSettings  # noqa: F401  (re-exported)
from components.ingest.csv_rows import BadRow

BAD, COUNT = "bad", "count"
COLD_ITEMS = "cold_items"  # the summary's key: the held-out item ids (splits.pick_cold_items)
# The summary's key, data in spans only: the newest span's first valid timestamp (what a warm start
# trains on: models/teacher_warm_start.py, WarmStart.data).
NEWEST_SPAN_FROM = "newest_span_from"
CATALOG_SPLIT = "catalog"
# The spans artifact's splits: every valid interaction of the newest span and of the one before,
# encoded as the examples are (the drift check's statistics compare them: components/drift/).
NEWEST_SPLIT, PREVIOUS_SPLIT = "newest", "previous"
SPAN_SPLITS = (NEWEST_SPLIT, PREVIOUS_SPLIT)
_TFRECORD = "data_tfrecord"


def ingest(
    p: beam.Pipeline,
    input_dir: str,
    settings: IngestSettings,
    examples_uri: str,
    catalog_uri: str,
    summary_path: str,
    window: Optional[spans.SpanWindow] = None,
    spans_uri: Optional[str] = None,
) -> None:
    """Adds ingestion to pipeline `p`; outputs are written when the pipeline runs. `window`: the
    spans to read when input_dir holds spans (None: its three files); then `spans_uri` receives the
    newest and the previous span's interactions (splits NEWEST_SPLIT, PREVIOUS_SPLIT)."""
    files = _InputFiles(input_dir, window)
    users = _read_all(p, "Users", files.entities(rows.USERS_FILE), _read_entities, rows.USERS_FILE)
    items = _read_all(p, "Items", files.entities(rows.ITEMS_FILE), _read_entities, rows.ITEMS_FILE)
    inter = _read_all(p, "Interactions", files.interactions(), _read_interactions, settings.split.seed)

    user_types = users[None] | "UserTypes" >> beam.CombineGlobally(
        _ColumnTypes(rows.feature_columns(files.header(rows.USERS_FILE), rows.USERS_FILE),
                     settings.user_text_columns, settings.list_columns))
    item_types = items[None] | "ItemTypes" >> beam.CombineGlobally(
        _ColumnTypes(rows.feature_columns(files.header(rows.ITEMS_FILE), rows.ITEMS_FILE),
                     settings.item_text_columns, settings.list_columns))
    # Every user's and item's features are encoded once; interactions reuse the bytes.
    user_features = users[None] | "EncodeUsers" >> beam.Map(_encode_entity, "user_", pvalue.AsSingleton(user_types))
    item_features = items[None] | "EncodeItems" >> beam.Map(_encode_entity, "item_", pvalue.AsSingleton(item_types))
    users_by_id, items_by_id = pvalue.AsDict(user_features), pvalue.AsDict(item_features)

    joined = inter[None] | "Join" >> beam.ParDo(_check_references, users_by_id, items_by_id).with_outputs(BAD, main="ok")
    cold = pvalue.AsSingleton(
        items[None]
        | "ItemIds" >> beam.Map(lambda entity: entity.id)
        | "AllItemIds" >> beam.combiners.ToList()
        | "ColdItems" >> beam.Map(lambda ids: splits.pick_cold_items(ids, settings.split.cold_items, settings.split.seed)))
    cutoffs = None
    if settings.split.method == "time_cutoff":
        cutoffs = pvalue.AsSingleton(_time_cutoffs(joined.ok, settings.split))
    elif settings.split.method == "newest_span":
        if window is None:
            raise ValueError("split method newest_span needs input in spans (span-1/, span-2/, ...)")
        newest = files.label(window.newest, rows.INTERACTIONS_FILE)
        cutoffs = pvalue.AsSingleton(_time_cutoffs(
            joined.ok | "NewestSpan" >> beam.Filter(lambda kv: rows.Interaction._make(kv[1]).source == newest),
            settings.split))
    encoded = (
        joined.ok
        | "ByUser" >> beam.GroupByKey()
        | "SplitAndEncode" >> beam.ParDo(_split_and_encode, settings.split, cutoffs, cold, users_by_id, items_by_id)
        .with_outputs(BAD, main="ok")
    )
    parts = encoded.ok | "BySplit" >> beam.Partition(lambda kv, n: splits.SPLITS.index(kv[0]), len(splits.SPLITS))
    for name, part in zip(splits.SPLITS, parts):
        _ = part | f"Values {name}" >> beam.Values() | f"Write {name}" >> _write(examples_uri, name)
    _ = (
        item_features
        | "EncodeCatalog" >> beam.MapTuple(examples.catalog_example)
        | "WriteCatalog" >> _write(catalog_uri, CATALOG_SPLIT)
    )
    if window is not None and spans_uri is not None:
        _write_span_pair(p, files, window, joined.ok, settings.split.seed, users_by_id, items_by_id, spans_uri)
    newest_from = p | "NoSpans" >> beam.Create([None])
    if window is not None:
        newest_label = files.label(window.newest, rows.INTERACTIONS_FILE)
        newest_from = (joined.ok
                       | "OfNewestSpan" >> beam.Filter(lambda kv: rows.Interaction._make(kv[1]).source == newest_label)
                       | "NewestTimes" >> beam.Map(lambda kv: rows.Interaction._make(kv[1]).timestamp)
                       | "NewestFrom" >> beam.CombineGlobally(_earliest))

    summary = (
        [users[BAD], users[COUNT], items[BAD], items[COUNT], inter[BAD], inter[COUNT], joined[BAD], encoded[BAD]]
        | "AllBad" >> beam.Flatten()
        | "Quality" >> beam.CombineGlobally(quality.SummarizeQuality())
    )
    split_counts = (
        encoded.ok | "SplitNames" >> beam.Keys() | beam.combiners.Count.PerElement() | beam.combiners.ToDict()
    )
    _ = (
        p
        | "SummaryTrigger" >> beam.Create([summary_path])
        | "WriteSummary" >> beam.Map(
            _write_summary, pvalue.AsSingleton(summary), pvalue.AsSingleton(split_counts),
            pvalue.AsSingleton(user_types), pvalue.AsSingleton(item_types), cold, pvalue.AsSingleton(newest_from))
    )


def _earliest(timestamps: Iterable[Optional[int]]) -> Optional[int]:
    """The smallest timestamp, None for none (a combiner: partial results come back as inputs)."""
    return min((t for t in timestamps if t is not None), default=None)


def _write_span_pair(p, files, window: spans.SpanWindow, joined_rows, seed: int, users, items, uri: str) -> None:
    """The newest and the previous span's valid interactions as tf.Examples (the window's rows; the
    previous span's read apart when the window holds the newest alone). Repeats are kept: these
    feed statistics only. Without a previous span, its split is written empty."""
    def of_span(label):
        return lambda kv: rows.Interaction._make(kv[1]).source == label

    newest_label = files.label(window.newest, rows.INTERACTIONS_FILE)
    pairs = {NEWEST_SPLIT: joined_rows | "NewestRows" >> beam.Filter(of_span(newest_label))}
    if window.previous is None:
        pairs[PREVIOUS_SPLIT] = p | "NoPreviousSpan" >> beam.Create([])
    elif window.previous in window.window:
        pairs[PREVIOUS_SPLIT] = joined_rows | "PreviousRows" >> beam.Filter(
            of_span(files.label(window.previous, rows.INTERACTIONS_FILE)))
    else:
        path, label, _ = files.of_span(window.previous, rows.INTERACTIONS_FILE)
        previous = _read(p, "PreviousSpan", path, _read_interactions, seed, label)
        pairs[PREVIOUS_SPLIT] = (previous[None] | "JoinPrevious" >> beam.ParDo(
            _check_references, users, items).with_outputs(BAD, main="ok")).ok
    for split, keyed in pairs.items():
        _ = (keyed
             | f"Encode {split}" >> beam.Map(_encode_interaction, users, items)
             | f"Write {split}" >> _write(uri, split))


def _encode_interaction(keyed, users: Dict, items: Dict) -> bytes:
    row = rows.Interaction._make(keyed[1])
    return examples.interaction_example(row, users[row.user_id], items[row.item_id])


class _InputFiles:
    """The files one run reads: (path, label) pairs; the label names the file in bad rows and
    summaries ("" for the flat files: their own names, as before spans)."""

    def __init__(self, input_dir: str, window: Optional[spans.SpanWindow]):
        self._dir, self._window = input_dir, window

    def _in(self, span_list, name: str) -> List[Tuple[str, str, int]]:
        if self._window is None:
            return [(os.path.join(self._dir, name), "", 0)]
        return [self.of_span(s, name) for s in span_list]

    def of_span(self, span: int, name: str) -> Tuple[str, str, int]:
        return os.path.join(self._dir, self._window.name(span), name), self.label(span, name), span

    def label(self, span: int, name: str) -> str:
        return f"{self._window.name(span)}/{name}"

    def interactions(self) -> List[Tuple[str, str, int]]:
        return self._in(self._window.window if self._window else (), rows.INTERACTIONS_FILE)

    def entities(self, name: str) -> List[Tuple[str, str, int]]:
        return self._in(self._window.catalog if self._window else (), name)

    def header(self, name: str) -> str:
        """The file whose header names the columns (the newest span's: ExampleGen checked that
        every span's file has the same columns)."""
        return self.entities(name)[-1][0]


def _read_all(p, label: str, files: List[Tuple[str, str, int]], reader, arg):
    """{None: records, BAD: bad rows, COUNT: rows per file} of one file, or of several spans'
    files: interactions flattened; users or items of an id, the latest span's row."""
    if len(files) == 1 and not files[0][1]:
        return _read(p, label, files[0][0], reader, arg)
    reads = [(span, _read(p, f"{label}{span}", path, reader, arg, file_label))
             for path, file_label, span in files]
    merged = {tag: [read[tag] for _, read in reads] | f"{label}{tag.title()}" >> beam.Flatten()
              for tag in (BAD, COUNT)}
    if reader is _read_interactions:
        merged[None] = [read[None] for _, read in reads] | f"{label}Rows" >> beam.Flatten()
        return merged
    keyed = [read[None] | f"{label}Key{span}" >> beam.Map(lambda entity, s=span: (entity.id, (s, entity)))
             for span, read in reads]
    merged[None] = (keyed
                    | f"{label}AllSpans" >> beam.Flatten()
                    | f"{label}Latest" >> beam.CombinePerKey(_latest_span)
                    | f"{label}Entities" >> beam.Map(lambda kv: kv[1][1]))
    return merged


def _latest_span(rows_by_span: Iterable[Tuple[int, rows.Entity]]) -> Tuple[int, rows.Entity]:
    """Of one id's (span, row) pairs, the latest span's (an id appears once per span)."""
    return max(rows_by_span, key=lambda pair: pair[0])


def _read(p, label: str, path: str, reader, arg, file_label: str = ""):
    return (
        p
        | f"{label}File" >> beam.Create([path])
        | f"Read{label}" >> beam.FlatMap(reader, arg, file_label).with_outputs(BAD, COUNT)
    )


def _read_entities(path: str, file_name: str, label: str = ""):
    return _tag(rows.read_entities(path, file_name, label), label or file_name)


def _read_interactions(path: str, seed: int, label: str = ""):
    return _tag(rows.read_interactions(path, seed, label), label or rows.INTERACTIONS_FILE)


def _tag(records: Iterable, file_name: str):
    total = 0
    for record in records:
        if isinstance(record, BadRow):
            total += record.lines
            yield pvalue.TaggedOutput(BAD, record)
        else:
            total += 1
            yield record
    yield pvalue.TaggedOutput(COUNT, ("rows", file_name, total))


def _check_references(row: rows.Interaction, users: Dict, items: Dict):
    if row.user_id not in users:
        yield pvalue.TaggedOutput(BAD, BadRow(row.source, row.line, reasons.UNKNOWN_USER,
                                              f"user_id {row.user_id!r} is not in users.csv"))
    elif row.item_id not in items:
        yield pvalue.TaggedOutput(BAD, BadRow(row.source, row.line, reasons.UNKNOWN_ITEM,
                                              f"item_id {row.item_id!r} is not in items.csv"))
    else:
        yield row.user_id, tuple(row)  # a plain tuple crosses the shuffle without pickling


def _split_and_encode(keyed, spec: splits.SplitSpec, cutoffs, cold, users: Dict, items: Dict):
    """Drops one user's exact repeats, assigns splits, yields (split, serialized tf.Example)."""
    kept, repeats = splits.drop_duplicates(rows.Interaction._make(t) for t in keyed[1])
    for r in repeats:
        yield pvalue.TaggedOutput(BAD, BadRow(r.source, r.line, reasons.DUPLICATE_ROW,
                                              "exact repeat of an earlier row"))
    if cutoffs is None:
        assigned = splits.split_user(kept, spec, cold)
    else:
        assigned = [(splits.split_by_time(r, *cutoffs, cold), r) for r in kept]
    for split, row in assigned:
        yield split, examples.interaction_example(row, users[row.user_id], items[row.item_id])


def _time_cutoffs(keyed_rows, spec: splits.SplitSpec):
    """(eval_from, test_from) timestamps: given, or quantiles of all timestamps."""
    if spec.test_from is not None:
        eval_from = spec.eval_from if spec.eval_from is not None else spec.test_from
        return keyed_rows.pipeline | "Cutoffs" >> beam.Create([(eval_from, spec.test_from)])
    eval_q, test_q = spec.cutoff_quantiles()

    def pick(quantiles):
        if not quantiles:  # no valid interaction at all: nothing to split
            return 0, 0
        at = lambda q: quantiles[min(round(q * (len(quantiles) - 1)), len(quantiles) - 1)]  # noqa: E731
        return at(eval_q), at(test_q)

    return (
        keyed_rows
        | "Timestamps" >> beam.Map(lambda kv: rows.Interaction._make(kv[1]).timestamp)
        | "Quantiles" >> beam.ApproximateQuantiles.Globally(1001)
        | "Cutoffs" >> beam.Map(pick)
    )


def _encode_entity(entity: rows.Entity, prefix: str, types) -> tuple:
    return entity.id, examples.entity_features(prefix, entity, types)


def _write(uri: str, split: str) -> beam.PTransform:
    return beam.io.WriteToTFRecord(os.path.join(uri, f"Split-{split}", _TFRECORD), file_name_suffix=".gz")


def _write_summary(path: str, data_quality, split_counts, user_types, item_types, cold, newest_from=None) -> None:
    summary = {
        "data_quality": data_quality,
        "split_counts": {s: split_counts.get(s, 0) for s in splits.SPLITS},
        "column_types": {"users": user_types, "items": item_types},
    }
    if cold:  # only when asked for: the summary's bytes stay what they were otherwise
        summary[COLD_ITEMS] = sorted(cold)
    if newest_from is not None:  # data in spans only
        summary[NEWEST_SPAN_FROM] = int(newest_from)
    # Beam's FileSystems: this runs on a Beam worker, and the artifact store may be a bucket.
    # The text is json.dump's of before (no trailing newline), so the file's bytes are unchanged.
    with FileSystems.create(path, mime_type="application/json", compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(json.dumps(summary, indent=2, sort_keys=True).encode("utf-8"))


class _ColumnTypes(beam.CombineFn):
    """Infers the type of every feature column: the widest of its values' types (examples.py)."""

    def __init__(self, columns, text_columns, list_columns):
        self._columns, self._text, self._lists = list(columns), tuple(text_columns), tuple(list_columns)

    def create_accumulator(self):
        return {c: None for c in self._columns}

    def add_input(self, types, entity):
        for column in self._columns:
            if types[column] != examples.BYTES:
                types[column] = examples.widen(types[column], examples.value_type(entity.features[column]))
        return types

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for types in accumulators:
            for column, kind in types.items():
                merged[column] = examples.widen(merged[column], kind)
        return merged

    def extract_output(self, types):
        return examples.finalize_types(types, self._text, self._lists)

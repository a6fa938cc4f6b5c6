"""The Beam pipeline of ingestion: read, validate, join, deduplicate, split, encode, write.

    users.csv, items.csv ─read─> column types ─> features encoded once per id (side inputs)
    interactions.csv ─read─> join ─> group by user ─> dedupe, split, tf.Example ─> Split-*/
                                     (cold items: a seeded draw of item ids, all to test)
    items ─> tf.Example ─> Split-catalog/ (the catalog artifact)
    bad rows of every stage, rows read per file ─> data-quality summary ─> ingest_summary.json
"""

import dataclasses
import json
import os
from typing import Dict, Iterable, Sequence

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components.ingest import examples, quality, reasons, rows, splits
from components.ingest.csv_rows import BadRow

BAD, COUNT = "bad", "count"
COLD_ITEMS = "cold_items"  # the summary's key: the held-out item ids (splits.pick_cold_items)
CATALOG_SPLIT = "catalog"
_TFRECORD = "data_tfrecord"


@dataclasses.dataclass(frozen=True)
class IngestSettings:
    split: splits.SplitSpec = splits.SplitSpec()
    max_bad_share: float = 0.01
    item_text_columns: Sequence[str] = ("title",)
    user_text_columns: Sequence[str] = ()
    list_columns: Sequence[str] = ("genres",)


def ingest(
    p: beam.Pipeline,
    input_dir: str,
    settings: IngestSettings,
    examples_uri: str,
    catalog_uri: str,
    summary_path: str,
) -> None:
    """Adds ingestion to pipeline `p`; outputs are written when the pipeline runs."""
    path = lambda name: os.path.join(input_dir, name)  # noqa: E731
    users = _read(p, "Users", path(rows.USERS_FILE), _read_entities, rows.USERS_FILE)
    items = _read(p, "Items", path(rows.ITEMS_FILE), _read_entities, rows.ITEMS_FILE)
    inter = _read(p, "Interactions", path(rows.INTERACTIONS_FILE), _read_interactions, settings.split.seed)

    user_types = users[None] | "UserTypes" >> beam.CombineGlobally(
        _ColumnTypes(rows.feature_columns(path(rows.USERS_FILE), rows.USERS_FILE),
                     settings.user_text_columns, settings.list_columns))
    item_types = items[None] | "ItemTypes" >> beam.CombineGlobally(
        _ColumnTypes(rows.feature_columns(path(rows.ITEMS_FILE), rows.ITEMS_FILE),
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
            pvalue.AsSingleton(user_types), pvalue.AsSingleton(item_types), cold)
    )


def _read(p, label: str, path: str, reader, arg):
    return (
        p
        | f"{label}File" >> beam.Create([path])
        | f"Read{label}" >> beam.FlatMap(reader, arg).with_outputs(BAD, COUNT)
    )


def _read_entities(path: str, file_name: str):
    return _tag(rows.read_entities(path, file_name), file_name)


def _read_interactions(path: str, seed: int):
    return _tag(rows.read_interactions(path, seed), rows.INTERACTIONS_FILE)


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
        yield pvalue.TaggedOutput(BAD, BadRow(rows.INTERACTIONS_FILE, row.line, reasons.UNKNOWN_USER,
                                              f"user_id {row.user_id!r} is not in users.csv"))
    elif row.item_id not in items:
        yield pvalue.TaggedOutput(BAD, BadRow(rows.INTERACTIONS_FILE, row.line, reasons.UNKNOWN_ITEM,
                                              f"item_id {row.item_id!r} is not in items.csv"))
    else:
        yield row.user_id, tuple(row)  # a plain tuple crosses the shuffle without pickling


def _split_and_encode(keyed, spec: splits.SplitSpec, cutoffs, cold, users: Dict, items: Dict):
    """Drops one user's exact repeats, assigns splits, yields (split, serialized tf.Example)."""
    kept, repeats = splits.drop_duplicates(rows.Interaction._make(t) for t in keyed[1])
    for r in repeats:
        yield pvalue.TaggedOutput(BAD, BadRow(rows.INTERACTIONS_FILE, r.line, reasons.DUPLICATE_ROW,
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


def _write_summary(path: str, data_quality, split_counts, user_types, item_types, cold) -> None:
    summary = {
        "data_quality": data_quality,
        "split_counts": {s: split_counts.get(s, 0) for s in splits.SPLITS},
        "column_types": {"users": user_types, "items": item_types},
    }
    if cold:  # only when asked for: the summary's bytes stay what they were otherwise
        summary[COLD_ITEMS] = sorted(cold)
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

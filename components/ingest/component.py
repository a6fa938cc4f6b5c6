"""InteractionsExampleGen: the pipeline's ExampleGen for interactions, users and items.

Outputs three Examples artifacts: `examples` (splits train, eval, test: one tf.Example per
interaction with the user's and the item's features joined on), `catalog` (split catalog: one
tf.Example per item) and `span_pair` (input in spans only, components/ingest/spans.py: splits newest
and previous, the two latest spans' interactions encoded as `examples`, which the drift check
compares; without spans it holds no split). The data-quality summary is written beside the examples
(ingest_summary.json) and recorded in ML Metadata as custom properties of `examples`.
"""

import json
import os

import apache_beam as beam
from tfx.dsl.component.experimental import annotations, decorators  # what tfx.v1.dsl.components names
from tfx.types import artifact_utils, standard_artifacts

from components.ingest import beam_ingest, quality, rows, spans, splits
from components.ingest.csv_rows import InputFileError
from models import artifacts, settings_codec
from models.foundation import storage

_PAYLOAD_FORMAT = "FORMAT_TF_EXAMPLE"


@decorators.component(use_beam=True)
def InteractionsExampleGen(  # noqa: N802 (TFX names components like classes)
    input_dir: annotations.Parameter[str],
    input_fingerprint: annotations.Parameter[str],
    settings_json: annotations.Parameter[str],  # IngestSettings (models/settings_codec.py)
    examples: annotations.OutputArtifact[standard_artifacts.Examples],
    catalog: annotations.OutputArtifact[standard_artifacts.Examples],
    span_pair: annotations.OutputArtifact[standard_artifacts.Examples],
    beam_pipeline: annotations.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Reads, validates, joins and splits the input directory (docs/data.md, "Input format").

    input_fingerprint is not read here: it is a digest of the input files and of the ingestion
    code, so that TFX's cache reruns this component when either changes and reuses it otherwise.
    """
    del input_fingerprint
    settings = settings_codec.from_json(beam_ingest.IngestSettings, settings_json)
    window = span_window(input_dir, settings)
    check_headers(input_dir, window)
    summary_path = os.path.join(examples.uri, artifacts.INGEST_SUMMARY_FILE)
    with beam_pipeline as p:
        beam_ingest.ingest(p, input_dir, settings, examples.uri, catalog.uri, summary_path, window, span_pair.uri)

    summary = storage.read_json(summary_path)
    quality.check(summary["data_quality"], settings.max_bad_share)
    _describe(examples, splits.SPLITS)
    _describe(catalog, [beam_ingest.CATALOG_SPLIT])
    examples.set_string_custom_property("data_quality", json.dumps(summary["data_quality"], sort_keys=True))
    examples.set_string_custom_property("split_counts", json.dumps(summary["split_counts"], sort_keys=True))
    examples.set_string_custom_property("split_method", settings.split.method)
    _describe(span_pair, beam_ingest.SPAN_SPLITS if window is not None else [])
    if window is not None:  # TFX's span property of Examples, and the window it was trained on
        for artifact in (examples, catalog, span_pair):
            artifact.span = window.newest
        examples.set_string_custom_property("spans", json.dumps(list(window.window)))
        span_pair.set_int_custom_property("previous_span", window.previous or 0)


def span_window(input_dir: str, settings: beam_ingest.IngestSettings):
    """The spans to read (components/ingest/spans.py), or None when input_dir holds the flat files."""
    try:
        if not spans.is_spanned(input_dir, rows.REQUIRED_COLUMNS, settings.spans):
            return None
        return spans.resolve(input_dir, settings.spans, settings.newest_span)
    except spans.SpanError as error:
        raise quality.DataQualityError(str(error)) from None


def check_headers(input_dir: str, window=None) -> None:
    """Stops before any work when a file is missing, empty or lacks a required column; with spans,
    also when a span's users.csv or items.csv has other columns than the newest span's."""
    if window is None:
        for name, required in rows.REQUIRED_COLUMNS.items():
            _header(os.path.join(input_dir, name), required)
        return
    for span in window.window:
        _header(os.path.join(input_dir, window.name(span), rows.INTERACTIONS_FILE),
                rows.REQUIRED_COLUMNS[rows.INTERACTIONS_FILE])
    for name in (rows.USERS_FILE, rows.ITEMS_FILE):
        paths = [os.path.join(input_dir, window.name(span), name) for span in window.catalog]
        columns = [sorted(_header(path, rows.REQUIRED_COLUMNS[name])) for path in paths]
        for path, own in zip(paths, columns):
            if own != columns[-1]:
                raise quality.DataQualityError(
                    f"{path}: columns {', '.join(own)} differ from the newest span's {paths[-1]}: "
                    f"{', '.join(columns[-1])}")


def _header(path: str, required) -> list:
    try:
        return rows.read_header(path, required)
    except InputFileError as error:
        where = f", line {error.line}" if error.line else ""
        raise quality.DataQualityError(f"{path}{where}: {error.reason}") from None


def _describe(artifact, split_names) -> None:
    artifact.split_names = artifact_utils.encode_split_names(list(split_names))
    artifact.set_string_custom_property("payload_format", _PAYLOAD_FORMAT)
    artifact.set_string_custom_property("file_format", "tfrecords_gzip")

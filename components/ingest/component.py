"""InteractionsExampleGen: the pipeline's ExampleGen for interactions, users and items.

Outputs two Examples artifacts: `examples` (splits train, eval, test: one tf.Example per
interaction with the user's and the item's features joined on) and `catalog` (split catalog: one
tf.Example per item). The data-quality summary is written beside the examples
(ingest_summary.json) and recorded in ML Metadata as custom properties of `examples`.
"""

import json
import os

import apache_beam as beam
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts

from components.ingest import beam_ingest, quality, rows, splits
from components.ingest.csv_rows import InputFileError
from models import artifacts, settings_codec
from models.foundation import storage

_PAYLOAD_FORMAT = "FORMAT_TF_EXAMPLE"


@tfx.dsl.components.component(use_beam=True)
def InteractionsExampleGen(  # noqa: N802 (TFX names components like classes)
    input_dir: tfx.dsl.components.Parameter[str],
    input_fingerprint: tfx.dsl.components.Parameter[str],
    settings_json: tfx.dsl.components.Parameter[str],  # IngestSettings (models/settings_codec.py)
    examples: tfx.dsl.components.OutputArtifact[standard_artifacts.Examples],
    catalog: tfx.dsl.components.OutputArtifact[standard_artifacts.Examples],
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Reads, validates, joins and splits the input directory (docs/data.md, "Input format").

    input_fingerprint is not read here: it is a digest of the input files and of the ingestion
    code, so that TFX's cache reruns this component when either changes and reuses it otherwise.
    """
    del input_fingerprint
    settings = settings_codec.from_json(beam_ingest.IngestSettings, settings_json)
    check_headers(input_dir)
    summary_path = os.path.join(examples.uri, artifacts.INGEST_SUMMARY_FILE)
    with beam_pipeline as p:
        beam_ingest.ingest(p, input_dir, settings, examples.uri, catalog.uri, summary_path)

    summary = storage.read_json(summary_path)
    quality.check(summary["data_quality"], settings.max_bad_share)
    _describe(examples, splits.SPLITS)
    _describe(catalog, [beam_ingest.CATALOG_SPLIT])
    examples.set_string_custom_property("data_quality", json.dumps(summary["data_quality"], sort_keys=True))
    examples.set_string_custom_property("split_counts", json.dumps(summary["split_counts"], sort_keys=True))
    examples.set_string_custom_property("split_method", settings.split.method)


def check_headers(input_dir: str) -> None:
    """Stops before any work when a file is missing, empty or lacks a required column."""
    for name, required in rows.REQUIRED_COLUMNS.items():
        try:
            rows.read_header(os.path.join(input_dir, name), required)
        except InputFileError as error:
            where = f", line {error.line}" if error.line else ""
            raise quality.DataQualityError(
                f"{os.path.join(input_dir, name)}{where}: {error.reason}"
            ) from None


def _describe(artifact, split_names) -> None:
    artifact.split_names = artifact_utils.encode_split_names(list(split_names))
    artifact.set_string_custom_property("payload_format", _PAYLOAD_FORMAT)
    artifact.set_string_custom_property("file_format", "tfrecords_gzip")

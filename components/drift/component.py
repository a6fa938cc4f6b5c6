"""DriftCheck: the newest span against the one before (components/drift/comparison.py), as a TFX
component after StatisticsGen of ExampleGen's `span_pair`.

Writes drift.json into its DriftReport artifact ({"newest_span", "previous_span", "distances",
"skipped", "examples", "decision", "reason"}) and records the decision, the reason and both spans
as the artifact's custom properties, where the trainers and the report read them from ML Metadata.
"""

import json
import os

from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from google.protobuf import text_format
from tfx.dsl.component.experimental import annotations, decorators  # what tfx.v1.dsl.components names
from tfx.types import artifact, artifact_utils, standard_artifacts

from components.drift import comparison
from components.ingest.beam_ingest import NEWEST_SPLIT, PREVIOUS_SPLIT
from models import artifacts, settings_codec
from models.foundation import storage
from models.foundation.progress import report_progress

_STATS_FILE = "FeatureStats.pb"  # StatisticsGen's binary statistics in each Split-<name>/
_SCHEMA_FILE = "schema.pbtxt"  # SchemaGen's and ImportSchemaGen's


class DriftReport(artifact.Artifact):
    """The drift check's measures and decision (drift.json)."""

    TYPE_NAME = "recdistill.DriftReport"  # namespace.Name: the form Kubeflow v2 requires of custom types


@decorators.component
def DriftCheck(  # noqa: N802 (TFX names components like classes)
    statistics: annotations.InputArtifact[standard_artifacts.ExampleStatistics],
    schema: annotations.InputArtifact[standard_artifacts.Schema],
    span_pair: annotations.InputArtifact[standard_artifacts.Examples],
    settings_json: annotations.Parameter[str],  # DriftSettings (models/settings_codec.py)
    code_digest: annotations.Parameter[str],
    drift: annotations.OutputArtifact[DriftReport],
) -> None:
    """Measures the drift between span_pair's newest and previous spans and decides warm or scratch.

    code_digest is not read: it makes TFX's cache miss when this code changes."""
    del code_digest
    settings = settings_codec.from_json(comparison.DriftSettings, settings_json)
    newest, previous = span_pair.span, span_pair.get_int_custom_property("previous_span")
    measured = None
    if previous:
        measured = comparison.compare(_statistics(statistics, NEWEST_SPLIT), _statistics(statistics, PREVIOUS_SPLIT),
                                      _schema(schema), settings)
    decided = comparison.decide(measured, settings)
    report = {"newest_span": newest, "previous_span": previous or None, **(measured or {}), **decided}
    storage.write_json(os.path.join(drift.uri, artifacts.DRIFT_FILE), report)
    drift.set_string_custom_property("decision", decided["decision"])
    drift.set_string_custom_property("reason", decided["reason"])
    drift.set_int_custom_property("newest_span", newest)
    drift.set_int_custom_property("previous_span", previous or 0)
    report_progress(f"span {newest}: {decided['decision']} ({decided['reason']})")


def _statistics(statistics, split: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    path = os.path.join(artifact_utils.get_split_uri([statistics], split), _STATS_FILE)
    return statistics_pb2.DatasetFeatureStatisticsList.FromString(storage.read_bytes(path))


def _schema(schema) -> schema_pb2.Schema:
    return text_format.Parse(storage.read_text(os.path.join(schema.uri, _SCHEMA_FILE)), schema_pb2.Schema())


def read_report(drift_artifact_uri: str) -> dict:
    """drift.json of a DriftReport artifact (the report's `drift`)."""
    return json.loads(storage.read_text(os.path.join(drift_artifact_uri, artifacts.DRIFT_FILE)))

"""ValidationGate: stops the run when ExampleValidator found anomalies.

ExampleValidator records anomalies but lets the pipeline go on; in recdistill bad data stops
before anything is trained on it. The error lists every anomaly, one per feature and split.
"""

import os
from typing import List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental import annotations, decorators  # what tfx.v1.dsl.components names
from tfx.types import artifact_utils, standard_artifacts

from models.foundation import storage

ANOMALIES_FILE = "SchemaDiff.pb"  # what ExampleValidator writes in each Split-<name>/


class DataAnomaliesError(ValueError):
    """The examples do not match the schema: the run stops (exit code 2)."""


@decorators.component
def ValidationGate(  # noqa: N802 (TFX names components like classes)
    anomalies: annotations.InputArtifact[standard_artifacts.ExampleAnomalies],
    code_digest: annotations.Parameter[str],
) -> None:
    """Raises DataAnomaliesError with a readable summary if any split has an anomaly.

    code_digest is not read: it makes TFX's cache miss when the gate's code changes (without it a
    changed gate would be answered from the cache with the old verdict)."""
    del code_digest
    problems = []
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies], split), ANOMALIES_FILE)
        problems += describe(split, anomalies_pb2.Anomalies.FromString(storage.read_bytes(path)))
    if problems:
        raise DataAnomaliesError(
            f"ExampleValidator found {len(problems)} anomal{'y' if len(problems) == 1 else 'ies'}: "
            + "; ".join(problems)
        )


def describe(split: str, anomalies: anomalies_pb2.Anomalies) -> List[str]:
    """One line per anomalous feature: split, feature, short and long description."""
    lines = [
        f"split {split}, feature '{feature}': {info.short_description} ({info.description})"
        for feature, info in sorted(anomalies.anomaly_info.items())
    ]
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        lines.append(f"split {split}, dataset: {info.short_description} ({info.description})")
    return lines

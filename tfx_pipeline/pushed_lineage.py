"""The artifacts behind a run's pushed models, read from its ML Metadata (`recdistill add-items`).

The latest successful push of each pusher names the compressed Model it pushed; from there the
lineage recorded in ML Metadata (which execution wrote an artifact, what that execution read)
leads to the KD student and the Transform graph the compressor read, and through Transform to
ExampleGen's examples (ingest_summary.json: the catalog's column types) and its settings. Read
this way rather than by globbing pipeline_root, a run whose latest model was not blessed still
extends the model that is deployed, and a pipeline root on gs:// works the same.

ML Metadata holds absolute paths: those of the directory the run was written in. A run copied or
moved elsewhere (`cp -r runs/a runs/b`) still names runs/a. The directory it was written in is
found from the artifacts (an artifact path A/<relative> whose <relative> exists under the run
directory given: A is where it was written) and every local path under it is re-rooted under the
run directory given: the copy's own artifacts are read (the original may be gone) and its own
serving/ and mobile/ are the push destinations.
"""

import dataclasses
import json
import os
from typing import Dict, List, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from models import artifacts
from tfx_pipeline import mlmd_outputs

_INPUT, _OUTPUT = metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.OUTPUT
_DONE = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


class LineageError(ValueError):
    """The run has no pushed model, or its metadata does not say where the model came from."""


@dataclasses.dataclass(frozen=True)
class PushedLineage:
    student_dir: str  # StudentTrainer's Model artifact: KD student weights, dataset.npz, features.npz
    transform_graph_dir: str
    examples_dir: str  # ExampleGen's examples: ingest_summary.json
    ingest_settings: Dict  # ExampleGen's settings (max_bad_share, text and list columns)
    serving_destination: str  # serving/recdistill/<version> as the pipeline pushed it
    mobile_destination: str  # mobile/<version>
    written_in: Optional[str] = None  # where the run was written, when it was elsewhere (a copied run)


def read(run_dir: str) -> PushedLineage:
    """The lineage of the model the run's pushers last pushed; LineageError when there is none."""
    path = os.path.join(run_dir, artifacts.METADATA_FILE)
    if not os.path.isfile(path):
        raise LineageError(f"{run_dir}: no {artifacts.METADATA_FILE} "
                           "(is it the --output directory of `recdistill run`?)")
    return _rerooted(_Lineage(mlmd_outputs.read_only_store(path), run_dir).read(), run_dir)


def _rerooted(lineage: PushedLineage, run_dir: str) -> PushedLineage:
    """The lineage with paths under the directory the run was written in moved under run_dir."""
    here = os.path.realpath(run_dir)
    recorded = (lineage.student_dir, lineage.transform_graph_dir, lineage.examples_dir,
                lineage.serving_destination, lineage.mobile_destination)
    written_in = next((found for found in (_written_in(path, here) for path in recorded) if found), None)
    if written_in is None or os.path.realpath(written_in) == here:
        return lineage

    def moved(path: str, must_exist: bool) -> str:
        if "://" in path or not _inside(path, written_in):
            return path
        copied = os.path.join(here, os.path.relpath(path, written_in))
        return copied if os.path.exists(copied) or not must_exist else path

    return dataclasses.replace(
        lineage, student_dir=moved(lineage.student_dir, True), transform_graph_dir=moved(lineage.transform_graph_dir, True),
        examples_dir=moved(lineage.examples_dir, True), serving_destination=moved(lineage.serving_destination, False),
        mobile_destination=moved(lineage.mobile_destination, False), written_in=written_in)


def _written_in(path: str, run_dir: str) -> Optional[str]:
    """The ancestor A of an artifact's path P whose relative path P - A (two components at least:
    <component>/<key>/<id> in TFX's layout) is there under run_dir too; None when none is."""
    if "://" in path:
        return None
    ancestor = os.path.dirname(os.path.dirname(os.path.normpath(path)))
    while True:
        if os.path.exists(os.path.join(run_dir, os.path.relpath(path, ancestor))):
            return ancestor
        parent = os.path.dirname(ancestor)
        if parent == ancestor:
            return None
        ancestor = parent


def _inside(path: str, directory: str) -> bool:
    return os.path.normpath(path).startswith(os.path.normpath(directory).rstrip(os.sep) + os.sep)


class _Lineage:
    def __init__(self, store: metadata_store.MetadataStore, run_dir: str):
        self._store, self._run_dir = store, run_dir
        pipelines = [c.name for c in store.get_contexts_by_type("pipeline")]
        if len(pipelines) != 1:
            raise LineageError(f"{run_dir}: expected the metadata of one pipeline, found {len(pipelines)}")
        self._pipeline = pipelines[0]

    def read(self) -> PushedLineage:
        serving_model, serving_to = self._latest_push(artifacts.PUSHERS["serving"])
        mobile_model, mobile_to = self._latest_push(artifacts.PUSHERS["mobile"])
        if serving_model.id != mobile_model.id:
            raise LineageError(f"{self._run_dir}: the latest serving push ({serving_to}) and mobile push ({mobile_to}) "
                               "are of different models: run the pipeline again so that both push one model")
        compressor = self._producer(serving_model)
        student = self._input(compressor, "base_model")
        transform_graph = self._input(compressor, "transform_graph")
        examples = self._input(self._producer(transform_graph), "examples")
        example_gen = self._producer(examples)
        settings = example_gen.custom_properties["settings_json"].string_value
        return PushedLineage(student.uri, transform_graph.uri, examples.uri, json.loads(settings),
                             serving_to, mobile_to)

    def _latest_push(self, node: str):
        """(the Model artifact, the version directory) of the node's latest execution that pushed."""
        context = self._store.get_context_by_type_and_name("node", f"{self._pipeline}.{node}")
        executions = self._store.get_executions_by_context(context.id) if context is not None else []
        for execution in sorted((e for e in executions if e.last_known_state in _DONE), key=lambda e: -e.id):
            (pushed,) = self._artifacts(execution, _OUTPUT, "pushed_model")
            properties = pushed.custom_properties
            if "pushed" in properties and properties["pushed"].int_value == 1:
                (model,) = self._artifacts(execution, _INPUT, "model")
                return model, properties["pushed_destination"].string_value
        raise LineageError(f"{self._run_dir}: no model of this run was pushed by {node} (not blessed, or the run "
                           "stopped before the pushers): add-items extends the pushed models")

    def _producer(self, artifact: metadata_store_pb2.Artifact) -> metadata_store_pb2.Execution:
        """The execution that wrote the artifact (the first one: a cached rerun records it again)."""
        events = [e for e in self._store.get_events_by_artifact_ids([artifact.id]) if e.type == _OUTPUT]
        if not events:
            raise LineageError(f"{self._run_dir}: ML Metadata does not say which component wrote {artifact.uri}")
        return self._store.get_executions_by_id([min(e.execution_id for e in events)])[0]

    def _input(self, execution: metadata_store_pb2.Execution, key: str) -> metadata_store_pb2.Artifact:
        found = self._artifacts(execution, _INPUT, key)
        if len(found) != 1:
            raise LineageError(f"{self._run_dir}: execution {execution.id} has {len(found)} inputs {key!r}, expected 1")
        return found[0]

    def _artifacts(self, execution, kind: int, key: str) -> List[metadata_store_pb2.Artifact]:
        events = self._store.get_events_by_execution_ids([execution.id])
        ids = [e.artifact_id for e in events if e.type == kind and _key(e) == key]
        return list(self._store.get_artifacts_by_id(ids))


def _key(event: metadata_store_pb2.Event) -> Optional[str]:
    keys = [step.key for step in event.path.steps if step.HasField("key")]
    return keys[0] if keys else None

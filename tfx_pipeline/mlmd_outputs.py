"""Reading a finished run's artifacts back from ML Metadata (for the report and later stages)."""

import json
from typing import Any, List, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

_NODE_CONTEXT = "node"  # the context type TFX gives every pipeline node
_DONE = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


def read_only_store(metadata_path: str) -> metadata_store.MetadataStore:
    """A finished run's ML Metadata (its SQLite file), opened read-only: reading a run never changes it."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


class RunMetadata:
    def __init__(self, metadata_path: str):
        self._store = read_only_store(metadata_path)

    def latest_outputs(self, pipeline_name: str, node_id: str, key: str) -> List[metadata_store_pb2.Artifact]:
        """The artifacts under output `key` of the node's latest successful (or cached) execution."""
        context = self._store.get_context_by_type_and_name(_NODE_CONTEXT, f"{pipeline_name}.{node_id}")
        if context is None:
            return []
        done = [e for e in self._store.get_executions_by_context(context.id) if e.last_known_state in _DONE]
        if not done:
            return []
        latest = max(done, key=lambda e: e.id)
        events = self._store.get_events_by_execution_ids([latest.id])
        ids = [
            e.artifact_id
            for e in events
            if e.type == metadata_store_pb2.Event.OUTPUT and any(s.key == key for s in e.path.steps)
        ]
        return list(self._store.get_artifacts_by_id(ids))

    def latest_output(self, pipeline_name: str, node_id: str, key: str) -> Optional[metadata_store_pb2.Artifact]:
        artifacts = self.latest_outputs(pipeline_name, node_id, key)
        return artifacts[0] if artifacts else None


def custom_json(artifact: metadata_store_pb2.Artifact, name: str) -> Any:
    """A custom property that recdistill stored as a JSON string (None when absent)."""
    if name not in artifact.custom_properties:
        return None
    return json.loads(artifact.custom_properties[name].string_value)


def pushed_destination(artifact: metadata_store_pb2.Artifact) -> Optional[str]:
    """Where a pusher's PushedModel says the model went (None when it was not pushed)."""
    properties = artifact.custom_properties
    if "pushed" not in properties or properties["pushed"].int_value != 1:
        return None
    return properties["pushed_destination"].string_value


def read_json_file(directory: str, name: str) -> Any:
    """A JSON file inside an artifact's directory, local or a URI (None when absent)."""
    from models.foundation import storage

    path = storage.join(directory, name)
    if not storage.exists(path):
        return None
    return storage.read_json(path)

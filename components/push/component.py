"""ModelPusher: pushes a blessed compressed student, atomically, as a new integer version.

Two instances in the DAG (tfx_pipeline/pipeline.py): ServingPusher (kind "serving": the TF
Serving SavedModel to <output>/serving/recdistill/<version>/, with models.config and
batching_parameters.txt beside it) and MobilePusher (kind "mobile": the TFLite model, vocabularies
and metadata.json to <output>/mobile/<version>/). Like TFX's Pusher, it pushes nothing unless the
blessing says blessed, and its PushedModel artifact records `pushed`, `pushed_destination` and
`pushed_version`. It runs in every run (never cached): pushing the model the latest version
already holds (or extends: `recdistill add-items`) writes nothing, so a rerun is cheap, and a
deleted destination is pushed again. That decision is taken under the base directory's push lock
(components/push/push.py), so a pusher racing an add-items never pushes over its new items unseen.

The two pushers pair their version numbers (push.Partner): each names the other's base, found from
its own destination by the layout of models/artifacts.py (PUSH_BASES), and
a pusher whose partner already published the other half of this model takes the same number.
"""

import functools
import json
import os

from tfx.dsl.component.experimental import annotations, decorators  # what tfx.v1.dsl.components names
from tfx.types import standard_artifacts

from components.push import push as push_lib
from models import artifacts
from models.foundation import signatures, storage

KINDS = ("serving", "mobile")
# (the directory of a model artifact holding each kind, the files left out when comparing versions)
SOURCES = {"serving": (artifacts.SAVED_MODEL_DIR, ()), "mobile": (artifacts.MOBILE_DIR, (signatures.METADATA,))}
COMMIT_FILES = {"serving": artifacts.SAVED_MODEL_FILE, "mobile": signatures.METADATA}  # each version's last file


@decorators.component
def ModelPusher(  # noqa: N802 (TFX names components like classes)
    model: annotations.InputArtifact[standard_artifacts.Model],
    blessing: annotations.InputArtifact[standard_artifacts.ModelBlessing],
    kind: annotations.Parameter[str],
    destination: annotations.Parameter[str],
    run_token: annotations.Parameter[str],
    pushed_model: annotations.OutputArtifact[standard_artifacts.PushedModel],
) -> None:
    """destination: the model base directory (versions are created under it). run_token is not
    read: it differs in every run, so that a push is never answered from the cache."""
    del run_token
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if blessing.get_int_custom_property("blessed") != 1:
        pushed_model.set_int_custom_property("pushed", 0)
        print(f"recdistill: {kind} push skipped: model not blessed "
              f"({blessing.get_string_custom_property('reason')})")
        return
    partner = _partner(kind, destination, model.uri)
    if kind == "serving":
        source = os.path.join(model.uri, SOURCES[kind][0])
        version, path, new = push_lib.push(source, destination, commit_file=artifacts.SAVED_MODEL_FILE, partner=partner)
        from models import tf_serving_files

        serving_dir = storage.dirname(destination)
        tf_serving_files.write_models_config(serving_dir)
        tf_serving_files.write_batching_parameters(serving_dir)
    else:
        metrics = json.loads(blessing.get_string_custom_property("metrics") or "null")
        stamp = functools.partial(push_lib.stamp_version, metrics=metrics)
        source = os.path.join(model.uri, SOURCES[kind][0])
        # metadata.json, which names the version, is the mobile version's last file on object storage
        version, path, new = push_lib.push(source, destination, prepare=stamp, compare_exclude=[signatures.METADATA],
                                           commit_file=signatures.METADATA, partner=partner)
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_string_custom_property("pushed_destination", path)
    pushed_model.set_int_custom_property("pushed_version", version)
    print(f"recdistill: {kind} model {'pushed to' if new else 'already at'} {path}")


def _partner(kind: str, destination: str, model_uri: str):
    """The other kind's base and source (push.Partner), or None when `destination` is not laid out as PUSH_BASES."""
    parts = artifacts.PUSH_BASES[kind]
    root = destination.rstrip("/")
    for part in reversed(parts):
        if os.path.basename(root) != part:  # a URI's last component too ("/"-separated)
            return None
        root = storage.dirname(root)
    other = next(k for k in KINDS if k != kind)
    source, exclude = SOURCES[other]
    return push_lib.Partner(os.path.join(model_uri, source), storage.join(root, *artifacts.PUSH_BASES[other]),
                            COMMIT_FILES[other], exclude)

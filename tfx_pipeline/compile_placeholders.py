"""The values `recdistill compile` writes when a setting is not given: placeholders a cluster cannot
use as they are. The command names each one it writes (one line each); --strict refuses them.

No TensorFlow or TFX here: a refused compile is answered before either is imported.
"""

from typing import List

# Built by `docker build -f tfx_pipeline/Dockerfile -t IMAGE .`; a cluster pulls it from your registry.
DEFAULT_IMAGE = "recdistill:latest"
DEFAULT_DATA_ROOT = "gs://YOUR_BUCKET/recdistill/data"
DEFAULT_PIPELINE_ROOT = "gs://YOUR_BUCKET/recdistill/pipeline_root"
DEFAULT_PUSH_ROOT = "gs://YOUR_BUCKET/recdistill"

_WHAT = (
    ("image", "--image", DEFAULT_IMAGE, "a local tag no cluster can pull: push tfx_pipeline/Dockerfile's image "
                                        "to your registry and pass --image REGISTRY/recdistill:TAG"),
    ("data_root", "--data-root", DEFAULT_DATA_ROOT, "no such bucket: pass the input directory the cluster reads"),
    ("pipeline_root", "--pipeline-root", DEFAULT_PIPELINE_ROOT, "no such bucket: pass where artifacts go"),
    ("push_root", "--push-root", DEFAULT_PUSH_ROOT, "no such bucket: pass where serving/ and mobile/ are pushed"),
)


def placeholders(given) -> List[str]:
    """One line for each setting left to its placeholder; `given` has the compile command's
    attributes image, data_root, pipeline_root, push_root (None when not given; an empty value is
    not one either)."""
    return [f"{flag} not given: wrote the placeholder {value} ({why})"
            for attribute, flag, value, why in _WHAT if not getattr(given, attribute)]


def flags_missing(given) -> List[str]:
    return [flag for attribute, flag, _, _ in _WHAT if not getattr(given, attribute)]

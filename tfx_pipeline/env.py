"""Process set-up that must happen before TensorFlow is imported.

TFRS and TF-MOT need Keras 2 (tf_keras), which TensorFlow 2.16 only serves as `tf.keras` when
TF_USE_LEGACY_KERAS=1 is set before the first `import tensorflow`. Every package of this project
imports this module first, so the CLI, the tests, TFX executors and Beam workers all agree; users
never have to set it themselves.
"""

import os
import sys

_was_set = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# TensorFlow's C++ start-up chatter (CPU feature notes, oneDNN) drowns the component log lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Beam worker processes inherit this: Google client libraries warn about Python versions on import.
os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")

# gs:// through the tensorflow-io-gcs-filesystem plugin, which (unlike TensorFlow's built-in gs://
# filesystem) can be pointed at a storage emulator. The plugin crashes the process unless its five
# cache settings are set; 0 turns the caches off, so that a polling reader sees new objects.
os.environ.setdefault("TF_USE_MODULAR_FILESYSTEM", "1")
for _name, _value in (("GCS_READ_CACHE_BLOCK_SIZE_MB", "16"), ("GCS_READ_CACHE_MAX_SIZE_MB", "0"),
                      ("GCS_READ_CACHE_MAX_STALENESS", "0"), ("GCS_STAT_CACHE_MAX_AGE", "0"),
                      ("GCS_STAT_CACHE_MAX_ENTRIES", "0")):
    os.environ.setdefault(_name, _value)
os.environ.setdefault("GOOGLE_CLOUD_CPP_STORAGE_REST_CONFIG", "disable-xml")
# One variable points every client at an emulator (tests, `python -m tfx_pipeline.gcs_emulator`):
# Beam and google-cloud-storage read STORAGE_EMULATOR_HOST, the TensorFlow plugin the other.
if os.environ.get("STORAGE_EMULATOR_HOST"):
    _endpoint = os.environ["STORAGE_EMULATOR_HOST"]
    os.environ.setdefault("CLOUD_STORAGE_EMULATOR_ENDPOINT",
                          _endpoint if "://" in _endpoint else f"http://{_endpoint}")
    # An emulator takes no credentials, and Beam would otherwise spend about 25 s per process
    # retrying the lookup of Google's default credentials before connecting anonymously anyway.
    from apache_beam.internal.gcp import auth as _beam_auth

    with _beam_auth._Credentials._credentials_lock:
        _beam_auth._Credentials._credentials, _beam_auth._Credentials._credentials_init = None, True

if "tensorflow" in sys.modules and not _was_set:
    # Too late to switch Keras versions in this process: say so instead of failing obscurely later.
    import warnings

    warnings.warn(
        "tensorflow was imported before recdistill set TF_USE_LEGACY_KERAS=1; "
        "tf.keras may be Keras 3 in this process. Import recdistill's packages first.",
        stacklevel=2,
    )

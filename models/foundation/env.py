"""Process set-up that must happen before TensorFlow is imported.

TFRS and TF-MOT need Keras 2 (tf_keras), which TensorFlow 2.16 only serves as `tf.keras` when
TF_USE_LEGACY_KERAS=1 is set before the first `import tensorflow`. Every package of this project
imports this module first, so the CLI, the tests, TFX executors and Beam workers all agree; users
never have to set it themselves.

Part of the foundation (models/foundation/): it imports nothing of the project. What used to
happen here for a storage emulator (Beam's credentials) is done only where Beam reads or writes
files: models/foundation/beam_credentials.py.
"""

import os
import sys

_was_set = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# TensorFlow's C++ start-up chatter (CPU feature notes, oneDNN) drowns the component log lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Beam worker processes inherit this: Google client libraries warn about Python versions on import.
os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")

# TensorFlow's gs:// filesystem caches object metadata for 5 s by default: a file just written or
# removed would look absent or present to the same process (a push deciding its version number).
os.environ.setdefault("GCS_STAT_CACHE_MAX_AGE", "0")
if "tensorflow" in sys.modules and not _was_set:
    # Too late to switch Keras versions in this process: say so instead of failing obscurely later.
    import warnings

    warnings.warn(
        "tensorflow was imported before recdistill set TF_USE_LEGACY_KERAS=1; "
        "tf.keras may be Keras 3 in this process. Import recdistill's packages first.",
        stacklevel=2,
    )

"""recdistill's TFX pipeline: configuration, the DAG, runners and the command line."""

from models.foundation import env  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

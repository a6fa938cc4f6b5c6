"""Custom TFX components and module files of the recdistill pipeline."""

from models.foundation import env  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

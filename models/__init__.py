"""Models: the BERT teacher, the two-tower student, losses, compression, signatures."""

from models.foundation import env  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

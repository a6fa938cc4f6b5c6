"""Serving: gRPC client, development server, TFLite runner, TF Serving configuration."""

from tfx_pipeline import env  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

"""Serving: the gRPC client, the development server (TF Serving's API), `tflite-predict`, the soak bench's machinery."""

from models.foundation import env  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

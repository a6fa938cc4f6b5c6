"""TFX Trainer module: compresses the distilled student and exports its deployable forms.

Trainer inputs: `examples` = TeacherScorer's scored examples (the distillation objective goes on
during fine-tuning), `base_model` = StudentTrainer's model (the KD student's Keras weights,
settings, dataset index and feature tables), `transform_graph` (serve_tf_examples runs it on
raw user features). custom_config: {"compression": every CompressionConfig setting (models/settings_codec.py)}.
Outputs: components/compression/compress.py.
"""

import json
import os

from tfx_pipeline import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
from models import settings_codec
from tfx_pipeline import storage

# The Model artifact's layout (besides Format-Serving/, the TF Serving SavedModel)
MOBILE_DIR = "mobile"  # model.tflite (int8), user_vocab.txt, item_vocab.txt, metadata.json
FLOAT_TFLITE = "tflite_float.tflite"  # the uncompressed KD student, float32: the "before"
SUMMARY_FILE = "compression.json"  # fine-tuning logs, sparsity, int8 zero share, parity


def run_fn(fn_args) -> None:
    """TFX entry point (tfx.components.Trainer(run_fn=...))."""
    from components.compression import compress
    from models.compression import CompressionConfig

    student_dir = os.path.dirname(fn_args.base_model.rstrip("/"))
    model_dir = os.path.dirname(fn_args.serving_model_dir.rstrip("/"))
    summary = compress.compress_and_export(
        fn_args.train_files, student_dir, fn_args.transform_graph_path,
        settings_codec.from_dict(CompressionConfig, fn_args.custom_config["compression"]),
        fn_args.serving_model_dir, model_dir)
    # model_dir may be gs://; json.dumps(indent=2) keeps the local file's bytes.
    storage.write_text(storage.join(model_dir, SUMMARY_FILE), json.dumps(summary, indent=2))

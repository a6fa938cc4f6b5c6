"""TFX Trainer module: compresses the distilled student and exports its deployable forms.

Trainer inputs: `examples` = TeacherScorer's scored examples (the distillation objective goes on
during fine-tuning), `base_model` = StudentTrainer's model (the KD student's Keras weights,
settings, dataset index and feature tables), `transform_graph` (serve_tf_examples runs it on
raw user features). custom_config: {"compression": every CompressionConfig setting (models/settings_codec.py)}.
Outputs: components/compression/compress.py.
"""

import json
import os

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
from models import settings_codec
from models import artifacts  # the Model artifact's layout
from models.foundation import storage


def run_fn(fn_args) -> None:
    """TFX entry point (tfx.components.Trainer(run_fn=...))."""
    from components.compression import compress  # TensorFlow and TF-MOT only when the Trainer runs
    from models.compression import CompressionConfig

    student_dir = os.path.dirname(fn_args.base_model.rstrip("/"))
    model_dir = os.path.dirname(fn_args.serving_model_dir.rstrip("/"))
    summary = compress.compress_and_export(
        fn_args.train_files, student_dir, fn_args.transform_graph_path,
        settings_codec.from_dict(CompressionConfig, fn_args.custom_config["compression"]),
        fn_args.serving_model_dir, model_dir)
    # model_dir may be gs://; json.dumps(indent=2) keeps the local file's bytes.
    storage.write_text(storage.join(model_dir, artifacts.COMPRESSION_FILE), json.dumps(summary, indent=2))
    # The blessed model is this artifact: the next run's teacher and students start from what it
    # carries (data in spans, models/teacher_warm_start.py, models/student_warm_start.py).
    for name in (artifacts.TEACHER_WEIGHTS_FILE, artifacts.STUDENT_WEIGHTS_FILE, artifacts.DATASET_FILE,
                 artifacts.FEATURES_FILE, artifacts.ITEM_TEXT_FILE, artifacts.ITEM_TEXT_SOURCE_FILE):
        if name in (artifacts.ITEM_TEXT_FILE, artifacts.ITEM_TEXT_SOURCE_FILE) and not storage.exists(
                storage.join(student_dir, name)):  # a teacher exported before the text vectors were kept
            continue
        storage.copy(storage.join(student_dir, name), storage.join(model_dir, name))

"""The student run: scored rows in, the KD student and its no-KD twin out (models/student*.py)."""

import dataclasses
import glob
import os
from typing import Dict, List

import numpy as np

from tfx_pipeline import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402

from components.teacher import training as teacher_training  # noqa: E402
from models import feature_tables, interaction_data, student, student_training  # noqa: E402
from models.retrieval_metrics import split_evaluator  # noqa: E402

SCORED_SPEC = {
    "row": tf.io.FixedLenFeature([], tf.int64),
    "user_index": tf.io.FixedLenFeature([], tf.int64),
    "item_index": tf.io.FixedLenFeature([], tf.int64),
    "candidates": tf.io.VarLenFeature(tf.int64),
    "teacher_scores": tf.io.VarLenFeature(tf.float32),
}


def read_scored(file_patterns: List[str]) -> Dict[str, np.ndarray]:
    """TeacherScorer's rows, in row order; candidates and scores padded with 0 to the longest row."""
    files = sorted(f for pattern in file_patterns for f in glob.glob(pattern))
    chunks = []
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(8192):
        parsed = tf.io.parse_example(batch, SCORED_SPEC)
        chunks.append({k: (tf.sparse.to_dense(v) if isinstance(v, tf.SparseTensor) else v).numpy()
                       for k, v in parsed.items()})
    if not chunks:
        raise ValueError(f"no scored examples in {file_patterns}")
    width = max(c["candidates"].shape[1] for c in chunks)
    pad = lambda a: np.pad(a, [(0, 0), (0, width - a.shape[1])])  # noqa: E731
    rows = {k: np.concatenate([pad(c[k]) if c[k].ndim == 2 else c[k] for c in chunks]) for k in SCORED_SPEC}
    order = np.argsort(rows["row"], kind="stable")
    return {k: v[order] for k, v in rows.items()}


def train_both(train_files: List[str], teacher_dir: str, overrides: Dict, kd_dir: str, no_kd_dir: str,
               log_dir: str) -> Dict:
    """Trains and exports student_kd into kd_dir and student_no_kd into no_kd_dir; returns a summary."""
    config = student.StudentConfig(**overrides)
    dataset = interaction_data.load_dataset(os.path.join(teacher_dir, teacher_training.DATASET_FILE))
    tables = feature_tables.load_from(teacher_dir)
    rows = read_scored(train_files)
    train, valid = dataset.splits["train"], dataset.splits["eval"]
    _, latest = interaction_data.histories(train, dataset.num_users, config.history)
    validation = split_evaluator(dataset, ["train"], "eval") if len(valid.user) else None
    frequency = np.bincount(train.item, minlength=dataset.num_items)
    teacher_items = None
    if config.gamma > 0:
        teacher = tf.saved_model.load(os.path.join(teacher_dir, teacher_training.SAVED_MODEL_DIR))
        teacher_items = teacher.item_embeddings().numpy()

    summary = {"config": dataclasses.asdict(config), "rows": int(len(rows["row"]))}
    for name, settings, out_dir in (("student_kd", config, kd_dir),
                                    ("student_no_kd", config.without_distillation(), no_kd_dir)):
        tf.keras.utils.set_random_seed(settings.seed)  # same initial weights and batches for both
        model = student.StudentModel(dataset.num_users, dataset.num_items, tables, settings, frequency, teacher_items)
        curves = student_training.fit(model, rows, latest, validation, log_dir=os.path.join(log_dir, name))
        student_training.export(model, out_dir)
        summary[name] = {**curves, "params": student.params(model), "alpha": settings.alpha,
                         "beta": settings.beta, "gamma": settings.gamma}
    return summary


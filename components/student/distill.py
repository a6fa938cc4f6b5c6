"""The student run: scored rows in, the KD student and its no-KD twin out (models/student*.py).

Each student trains in two phases: on TeacherScorer's Split-train rows with early stopping on the
dataset's eval split, then (StudentConfig.refit, when there is an eval split) again from the same
start on Split-final (train + eval rows, the final teacher's labels) for the epochs phase one chose.
"""

import dataclasses
import os
from typing import Dict, List, Optional

import numpy as np

from tfx_pipeline import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
from tfx_pipeline import storage

import tensorflow as tf  # noqa: E402

from components.teacher import training as teacher_training  # noqa: E402
from models import distillation, feature_tables, interaction_data, student, student_training  # noqa: E402
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
    # storage.glob: the patterns may be gs:// (Trainer's train_files). Its "*" also matches
    # dot-files, glob.glob's does not: they stay out, as before.
    files = sorted(f for pattern in file_patterns for f in storage.glob(pattern)
                   if not os.path.basename(f).startswith("."))
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


def split_files(file_patterns: List[str], split: str) -> List[str]:
    """The patterns of one scored split among a Trainer's train_files (.../Split-<split>/...)."""
    return [f for f in file_patterns if f"Split-{split}" in f.replace(os.sep, "/").split("/")]


def training_rows(file_patterns: List[str], config: student.StudentConfig, dataset):
    """(rows, latest histories, refit rows or None, refit histories or None) for training.

    With the mse soft loss both splits' teacher scores are rescaled by the one factor that gives
    the training rows' scores a standard deviation of config.soft_scale (the two teachers differ
    only in the data their wide part saw: one scale)."""
    rows = read_scored(split_files(file_patterns, "train"))
    refit = config.refit and len(dataset.splits["eval"].user) and split_files(file_patterns, "final")
    final = read_scored(split_files(file_patterns, "final")) if refit else None
    if config.beta > 0 and config.soft_loss == "mse":
        rows["teacher_scores"], factor = distillation.rescale_teacher(
            rows["teacher_scores"], rows["candidates"], config.soft_scale)
        if final is not None:
            final["teacher_scores"] = final["teacher_scores"].astype(np.float32) * np.float32(factor)
    _, latest = interaction_data.histories(dataset.splits["train"], dataset.num_users, config.history)
    latest_final = teacher_training.latest_histories(dataset, config.history) if final is not None else None
    return rows, latest, final, latest_final


def train_both(train_files: List[str], teacher_dir: str, overrides: Dict, kd_dir: str, no_kd_dir: str,
               log_dir: str) -> Dict:
    """Trains and exports student_kd into kd_dir and student_no_kd into no_kd_dir; returns a summary."""
    config = student.StudentConfig(**overrides)
    dataset = interaction_data.load_dataset(os.path.join(teacher_dir, teacher_training.DATASET_FILE))
    tables = feature_tables.load_from(teacher_dir)
    data = training_rows(train_files, config, dataset)
    rows, final = data[0], data[2]
    valid = dataset.splits["eval"]
    validation = split_evaluator(dataset, ["train"], "eval") if len(valid.user) else None
    teacher_items = None
    if config.gamma > 0:
        teacher = tf.saved_model.load(os.path.join(teacher_dir, teacher_training.SAVED_MODEL_DIR))
        teacher_items = teacher.item_embeddings().numpy()

    summary = {"config": dataclasses.asdict(config), "rows": int(len(rows["row"])),
               "refit_rows": int(len(final["row"])) if final is not None else 0}
    for name, settings, out_dir in (("student_kd", config, kd_dir),
                                    ("student_no_kd", config.without_distillation(), no_kd_dir)):
        summary[name] = train_student(settings, dataset, tables, data, validation, out_dir,
                                      os.path.join(log_dir, name), teacher_items)
    return summary


def train_student(settings: student.StudentConfig, dataset, tables, data, validation, out_dir: str,
                  log_dir: Optional[str] = None, teacher_items=None) -> Dict:
    """One student: phase one with early stopping, the refit when `data` has refit rows, export.

    data: training_rows' (rows, latest, refit rows or None, refit histories or None). Returns its curves."""
    rows, latest, final, latest_final = data
    frequency = np.bincount(dataset.splits["train"].item, minlength=dataset.num_items)

    def build():
        tf.keras.utils.set_random_seed(settings.seed)  # the same initial weights and batches for every student
        return student.StudentModel(dataset.num_users, dataset.num_items, tables, settings, frequency, teacher_items)

    model = build()
    curves = student_training.fit(model, rows, latest, validation, log_dir=log_dir)
    if final is not None:
        model = build()
        refit = student_training.fit(model, final, latest_final, None, epochs=curves["best_epoch"])
        curves["refit"] = {"epochs": curves["best_epoch"], "loss": refit["loss"], "seconds": refit["seconds"]}
    student_training.export(model, out_dir)
    return {**curves, "params": student.params(model), "alpha": settings.alpha, "beta": settings.beta,
            "gamma": settings.gamma}

"""The student run: scored rows in, the KD student and its no-KD twin out (models/student*.py).

Each student trains in two phases: on TeacherScorer's Split-train rows with early stopping on the
dataset's eval split, then (StudentConfig.refit, when there is an eval split) again from the same
start on Split-final (train + eval rows, the final teacher's labels) for the epochs phase one chose.
"""

import dataclasses
import os
from typing import Dict, List, Optional

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
from models.foundation import storage

import tensorflow as tf  # noqa: E402

from components.teacher import training as teacher_training  # noqa: E402
from components.teacher import scoring  # noqa: E402
from models import (artifacts, distillation, distribute, feature_tables, interaction_data, scored_rows,  # noqa: E402
                    student, student_training)
from models.retrieval_metrics import split_evaluator  # noqa: E402

def read_scored(file_patterns: List[str]) -> Dict[str, np.ndarray]:
    """TeacherScorer's rows in memory, in row order (tests; training streams them: training_rows)."""
    return scored_rows.read_all(file_patterns)


def split_files(file_patterns: List[str], split: str) -> List[str]:
    """The patterns of one scored split among a Trainer's train_files (.../Split-<split>/...)."""
    return [f for f in file_patterns if f"Split-{split}" in f.replace(os.sep, "/").split("/")]


def open_split(file_patterns: List[str], split: str) -> scored_rows.ScoredRows:
    """One scored split as a stream, with the scorer's statistics when it wrote them."""
    patterns = split_files(file_patterns, split)
    stats = None
    if patterns:  # .../<artifact>/Split-<split>/* -> <artifact>/scoring_stats.json
        artifact = storage.dirname(storage.dirname(patterns[0]))
        if storage.exists(storage.join(artifact, artifacts.SCORING_STATS_FILE)):
            stats = scoring.read_stats(artifact)["splits"].get(split)
    return scored_rows.open_rows(patterns, stats)


def training_rows(file_patterns: List[str], config: student.StudentConfig, dataset):
    """(rows, latest histories, refit rows or None, refit histories or None) for training; the rows
    are scored_rows.ScoredRows streams.

    With the mse soft loss both splits' teacher scores are rescaled by the one factor that gives
    the training rows' scores a standard deviation of config.soft_scale (the two teachers differ
    only in the data their wide part saw: one scale)."""
    rows = open_split(file_patterns, "train")
    refit = config.refit and len(dataset.splits["eval"].user) and split_files(file_patterns, "final")
    final = open_split(file_patterns, "final") if refit else None
    if config.beta > 0 and config.soft_loss == "mse":
        factor = distillation.rescale_factor(rows.std, config.soft_scale)
        rows = rows.scaled(factor)
        final = final.scaled(factor) if final is not None else None
    latest = interaction_data.latest_items(dataset.splits["train"], dataset.num_users, config.history)
    latest_final = teacher_training.latest_histories(dataset, config.history) if final is not None else None
    return rows, latest, final, latest_final


def train_both(train_files: List[str], teacher_dir: str, config: student.StudentConfig, kd_dir: str, no_kd_dir: str,
               log_dir: str) -> Dict:
    """Trains and exports student_kd into kd_dir and student_no_kd into no_kd_dir; returns a summary."""
    dataset = interaction_data.load_dataset(os.path.join(teacher_dir, artifacts.DATASET_FILE))
    tables = feature_tables.load_from(teacher_dir)
    data = training_rows(train_files, config, dataset)
    rows, final = data[0], data[2]
    valid = dataset.splits["eval"]
    validation = split_evaluator(dataset, ["train"], "eval") if len(valid.user) else None
    teacher_items = None
    if config.gamma > 0:
        teacher = tf.saved_model.load(os.path.join(teacher_dir, artifacts.SAVED_MODEL_DIR))
        teacher_items = teacher.item_embeddings().numpy()

    summary = {"config": dataclasses.asdict(config), "rows": rows.rows,
               "refit_rows": final.rows if final is not None else 0, "candidates": rows.width}
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
        return student.StudentModel(dataset.num_users, dataset.num_items, tables, settings, frequency, teacher_items,
                                    student.known_items(dataset))

    strategy = distribute.strategy_for(settings.distribute)
    name = "student_kd" if settings.beta > 0 or settings.gamma > 0 else "student_no_kd"
    with strategy.scope():  # the variables (mirrored under a strategy) and the training steps
        model = build()
        curves = student_training.fit(model, rows, latest, validation, name=name,
                                      log_dir=log_dir if distribute.is_chief() else None)
        if final is not None:
            model = build()
            refit = student_training.fit(model, final, latest_final, None, epochs=curves["best_epoch"],
                                         name=f"{name} refit")
            curves["refit"] = {"epochs": curves["best_epoch"], "loss": refit["loss"], "seconds": refit["seconds"]}
    if distribute.is_chief():  # every worker holds the same weights; one writes them
        student_training.export(model, out_dir)
    return {**curves, "params": student.params(model), "alpha": settings.alpha, "beta": settings.beta,
            "gamma": settings.gamma}

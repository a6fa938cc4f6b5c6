"""Evaluates the models on the test split with the shared protocol (models/retrieval_metrics.py).

Every catalog item is ranked for each test user; the items the user interacted with in train
and eval (the benchmark's training set) are removed. Each model's entry follows report.json's M:
recall@10, ndcg@10, recall@100, precision@10, params, bytes (as deployed), gzip_bytes,
latency_ms_p50 (one user per call, this machine).
"""

import gzip
import json
import os
import tempfile
import time
from typing import Callable, Dict

import numpy as np

from components.student import trainer_module
from components.teacher import training
from models.interaction_data import load_dataset
from models.popularity import PopularityModel
from models.retrieval_metrics import RetrievalEvaluator, split_evaluator

METRICS = ("recall@10", "ndcg@10", "recall@100", "precision@10")
LATENCY_CALLS = 50
CURVES_FILE = "curves.json"
TRAINING_SPLITS = ("train", "eval")  # the benchmark's training share: removed from every ranking
STUDENT_DIRS = {"student_kd": training.SAVED_MODEL_DIR, "student_no_kd": trainer_module.NO_KD_DIR}


def evaluate_all(teacher_dir: str, student_dir: str) -> Dict[str, Dict]:
    """popularity, teacher, student_no_kd and student_kd on the test split (report.json's M)."""
    dataset = load_dataset(os.path.join(teacher_dir, training.DATASET_FILE))
    evaluator = split_evaluator(dataset, TRAINING_SPLITS, "test")
    results = evaluate_baseline_and_teacher(teacher_dir, dataset, evaluator)
    results.update(evaluate_students(student_dir, dataset, evaluator))
    return results


def evaluate_students(student_dir: str, dataset, evaluator: RetrievalEvaluator) -> Dict[str, Dict]:
    import tensorflow as tf

    summary = _read_json(os.path.join(student_dir, trainer_module.TRAINING_FILE))
    latest = training.latest_histories(dataset, summary["config"]["history"])
    results = {}
    for name, subdir in STUDENT_DIRS.items():
        path = os.path.join(student_dir, subdir)
        model = tf.saved_model.load(path)

        def scores(users, model=model):
            return model.score(tf.constant(users, tf.int64), tf.constant(latest[users])).numpy()

        # bytes: the SavedModel as exported (the Keras weights beside it are for compression).
        results[name] = _entry(evaluator, scores, summary[name]["params"], _sizes(path, exclude="weights"))
    return results


def write_curves(teacher_dir: str, student_dir: str, path: str) -> Dict:
    """Per-epoch training curves of the teacher and both students (for the report's plots)."""
    teacher = training.read_summary(teacher_dir)
    students = _read_json(os.path.join(student_dir, trainer_module.TRAINING_FILE))
    curves = {"teacher": {"loss": teacher["loss"], "val_loss": teacher["val_loss"]}}
    for name in STUDENT_DIRS:
        curves[name] = {k: students[name][k] for k in ("loss", "val_ndcg@10")}
    with open(path, "w") as f:
        json.dump(curves, f, indent=2)
    return curves


def _read_json(path: str) -> Dict:
    with open(path) as f:
        return json.load(f)


def evaluate_baseline_and_teacher(teacher_dir: str, dataset, evaluator: RetrievalEvaluator) -> Dict[str, Dict]:
    import tensorflow as tf

    train, valid = dataset.splits["train"], dataset.splits["eval"]
    popularity = PopularityModel(dataset.num_items).fit(np.concatenate([train.item, valid.item]))
    with tempfile.TemporaryDirectory() as tmp:
        saved = popularity.save(os.path.join(tmp, "popularity"))
        pop_sizes = _sizes(saved)
    results = {"popularity": _entry(evaluator, popularity.score, popularity.params, pop_sizes)}

    model = tf.saved_model.load(os.path.join(teacher_dir, training.SAVED_MODEL_DIR))
    summary = training.read_summary(teacher_dir)
    latest = training.latest_histories(dataset, summary["config"]["history"])

    def teacher_scores(users):
        return model.score(tf.constant(users, tf.int64), tf.constant(latest[users])).numpy()

    results["teacher"] = _entry(evaluator, teacher_scores, summary["params"],
                                _sizes(os.path.join(teacher_dir, training.SAVED_MODEL_DIR)))
    return results


def _entry(evaluator: RetrievalEvaluator, score_fn: Callable, params: int, sizes) -> Dict:
    metrics = evaluator.evaluate(score_fn, ks=(10, 100))
    entry = {k: round(float(metrics[k]), 4) for k in METRICS}
    entry.update(params=int(params), bytes=sizes[0], gzip_bytes=sizes[1], latency_ms_p50=_latency_ms(score_fn))
    entry["users"] = int(metrics["users"])
    return entry


def _latency_ms(score_fn: Callable) -> float:
    user = np.array([1], np.int64)
    score_fn(user)  # the first call traces and warms up
    times = []
    for _ in range(LATENCY_CALLS):
        start = time.perf_counter()
        score_fn(user)
        times.append((time.perf_counter() - start) * 1000)
    return round(float(np.median(times)), 3)


def _sizes(path: str, exclude: str = None):
    """(bytes, gzip_bytes) of a file, or of every file under a directory (but its `exclude` subdirectory)."""
    skip = os.path.join(path, exclude) if exclude else None
    files = [path] if os.path.isfile(path) else [
        os.path.join(d, f) for d, _, names in os.walk(path) for f in names if not (skip and d.startswith(skip))]
    raw = sum(os.path.getsize(f) for f in files)
    zipped = 0
    for name in files:
        with open(name, "rb") as f:
            zipped += len(gzip.compress(f.read(), 6))
    return raw, zipped

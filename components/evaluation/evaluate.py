"""Evaluates the models on the test split with the shared protocol (models/retrieval_metrics.py).

Every catalog item is ranked for each test user; the items the user interacted with in train
and eval (the benchmark's training set) are removed. Each model's entry follows report.json's M
(components/evaluation/protocol.py): recall@10, ndcg@10, recall@100, precision@10, params, bytes
(as deployed), gzip_bytes, latency_ms_p50 (one user per call, this machine). The baselines
(popularity, ease, trending) come from components/evaluation/baselines.py.
"""

import json
import os
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from components.evaluation import baselines as baselines_lib
from components.evaluation import cold as cold_lib
from components.evaluation import test_start_prior
from components.evaluation.protocol import METRICS, TRAINING_SPLITS
from components.evaluation.protocol import entry as _entry, latency_ms as _latency_ms, sizes as _sizes, with_cold
from components.evaluation.protocol import with_beyond, with_per_user
from components.evaluation.beyond import WithBeyondAccuracy
from components.teacher import training
from models import artifacts, feature_tables
from models.foundation import signatures
from models.interaction_data import load_dataset
from models.retrieval_metrics import RetrievalEvaluator, split_evaluator
from models.foundation.tflite_runner import TFLiteRanker
from models.foundation import storage

STUDENT_DIRS = {"student_kd": artifacts.SAVED_MODEL_DIR, "student_no_kd": artifacts.NO_KD_DIR}


def evaluate_all(teacher_dir: str, student_dir: str, compressed_dir: Optional[str] = None,
                 baselines: baselines_lib.BaselineSettings = baselines_lib.BaselineSettings(),
                 ) -> Tuple[Dict[str, Optional[Dict]], Dict, Optional[Dict]]:
    """(models, baselines, cold_items): popularity, ease, trending, teacher, student_no_kd,
    student_kd and, given the compressor's artifact, student_compressed, tflite_float and tflite on
    the test split (report.json's M; a skipped baseline is None), report.json's "baselines" (what
    was picked or skipped, and why) and its "cold_items" (None without a cold-item evaluation).
    student_kd's and tflite's entries hold each test user's ndcg@10 (protocol.PER_USER) for the
    push gate: protocol.take_per_user takes them out before anything is written."""
    dataset = load_dataset(os.path.join(teacher_dir, artifacts.DATASET_FILE))
    ranking = cold_lib.evaluator_for(dataset, split_evaluator(dataset, TRAINING_SPLITS, "test"))
    # every entry also measures its top 10 beyond accuracy (coverage, Gini, novelty, diversity)
    evaluator = WithBeyondAccuracy(ranking, dataset, feature_tables.load_from(student_dir).get("item"))
    results, baseline_info = baselines_lib.evaluate_baselines(dataset, evaluator, baselines)
    results.update(evaluate_teacher(teacher_dir, dataset, evaluator))
    results.update(evaluate_students(student_dir, dataset, evaluator))
    if compressed_dir:
        students = _read_json(os.path.join(student_dir, artifacts.TRAINING_FILE))
        # the compressed forms carry the KD student's prior (components/compression/compress.py)
        difference = test_start_prior.correction(os.path.join(student_dir, STUDENT_DIRS["student_kd"]),
                                                 students["student_kd"].get("recency_prior"), dataset)
        results.update(evaluate_compressed(compressed_dir, dataset, evaluator, students["config"]["history"],
                                           difference))
    cold = cold_lib.split_cold(results)
    if not isinstance(ranking, cold_lib.WithCold):
        return results, baseline_info, None
    cold["random"] = evaluator.cold.evaluate(cold_lib.random_scores(dataset.num_items))
    item_text = storage.load_npy(storage.join(teacher_dir, artifacts.ITEM_TEXT_FILE))
    cold["text_knn"] = evaluator.cold.evaluate(cold_lib.text_knn_scores(dataset, item_text))
    catalog = dataset.num_items - 1
    return results, baseline_info, {"share": round(len(dataset.cold_items) / catalog, 4),
                                    "items": int(len(dataset.cold_items)), "models": cold}


def evaluate_compressed(model_dir: str, dataset, evaluator: RetrievalEvaluator, history: int,
                        difference: Optional[np.ndarray] = None) -> Dict[str, Dict]:
    """The compressed student as TF Serving runs it (its SavedModel) and both TFLite models.

    The TFLite models are ranked over the whole catalog through their own score tensor (the input
    of their top-K op), and timed per query on one thread through their signature. difference: the
    recency prior's test-start correction (components/evaluation/test_start_prior.py), or None."""
    import tensorflow as tf

    summary = _read_json(os.path.join(model_dir, artifacts.COMPRESSION_FILE))
    latest = training.latest_histories(dataset, history)
    serving_dir = os.path.join(model_dir, artifacts.SAVED_MODEL_DIR)
    model = tf.saved_model.load(serving_dir)

    def compressed_scores(users):
        return model.score(tf.constant(users, tf.int64), tf.constant(latest[users])).numpy()

    results = {"student_compressed": _entry(evaluator, test_start_prior.corrected(compressed_scores, difference, latest),
                                            summary["params"], _sizes(serving_dir), timed=compressed_scores)}
    # tflite_float is the uncompressed student: factorization (compression.rank) changed the others' count
    uncompressed = summary.get("params_uncompressed", summary["params"])
    for name, path, params in (("tflite_float", os.path.join(model_dir, artifacts.FLOAT_TFLITE), uncompressed),
                               ("tflite", os.path.join(model_dir, artifacts.MOBILE_DIR, signatures.TFLITE_FILE),
                                summary["params"])):
        results[name] = tflite_entry(path, evaluator, latest, params, per_user=name == "tflite", difference=difference)
    return results


def tflite_entry(path: str, evaluator: RetrievalEvaluator, latest, params: int, per_user: bool = False,
                 difference: Optional[np.ndarray] = None) -> Dict:
    """report.json's M for a TFLite model file (bytes: the file itself); per_user: protocol.entry's;
    difference: the recency prior's test-start correction (components/evaluation/test_start_prior.py)."""
    with storage.local_copy(path) as local:  # the interpreter reads local files only
        scores = test_start_prior.corrected(_tflite_scores(local, latest), difference, latest)
        metrics = evaluator.evaluate(scores, ks=(10, 100), per_user=per_user)
        timed = TFLiteRanker(local, num_threads=1)
        latency = _latency_ms(lambda users: timed.rank(int(users[0]), latest[users[0]]))
    entry = {k: round(float(metrics[k]), 4) for k in METRICS}
    raw, zipped = _sizes(path)
    entry.update(params=int(params), bytes=raw, gzip_bytes=zipped, latency_ms_p50=latency, users=int(metrics["users"]))
    return with_beyond(with_per_user(with_cold(entry, metrics), metrics), metrics)


def _tflite_scores(path: str, latest) -> Callable:
    """score_fn(users [B]) -> [B, num_items]: the TFLite model's scores of every item (its TOPK input)."""
    full = TFLiteRanker(path, full_scores=True)
    return lambda users: np.stack([full.all_scores(int(u), latest[u]) for u in users])


def tflite_ndcg(path: str, dataset, vocabularies: Optional[Tuple[Sequence[str], Sequence[str]]] = None) -> float:
    """ndcg@10 of a TFLite model on `dataset`'s test split (tflite_per_user's mean)."""
    return tflite_per_user(path, dataset, vocabularies)[0]


def tflite_per_user(path: str, dataset, vocabularies: Optional[Tuple[Sequence[str], Sequence[str]]] = None,
                    difference: Optional[np.ndarray] = None) -> Tuple[float, np.ndarray]:
    """(ndcg@10, each test user's ndcg@10 [U]) of a TFLite model on `dataset`'s test split (a baseline's,
    for the blessing); the users in the order of split_evaluator(dataset, TRAINING_SPLITS, "test").

    vocabularies: the model's (user ids, item ids), index i at [i], when they are not the dataset's
    (a model of an earlier span): users and history items are looked up by id (a user it never saw
    is its index 0, items it never saw leave the history), and an item it never saw gets no score
    (-inf: ranked last, so a test interaction with it is a miss). That is the comparison the push
    gate wants: what the old model would have recommended to these users on this data. difference:
    [2, its items] added to its own scores (components/evaluation/test_start_prior.py), or None."""
    history = storage.read_json(storage.join(storage.dirname(path), signatures.METADATA))["history"]
    evaluator = split_evaluator(dataset, TRAINING_SPLITS, "test")
    latest = training.latest_histories(dataset, history)
    with storage.local_copy(path) as local:  # the interpreter reads local files only
        score_fn = test_start_prior.corrected(_tflite_scores(local, latest), difference, latest) \
            if vocabularies is None else _tflite_scores_by_id(local, latest, dataset, *vocabularies, difference)
        scores = evaluator.evaluate(score_fn, ks=(10,), per_user=True)
    return float(scores["ndcg@10"]), np.asarray(scores["per_user"]["ndcg@10"], np.float64)


def _tflite_scores_by_id(path: str, latest: np.ndarray, dataset, user_ids: Sequence[str],
                         item_ids: Sequence[str], difference: Optional[np.ndarray] = None) -> Callable:
    """score_fn(users [B]) -> [B, dataset.num_items] of a model indexed by other vocabularies;
    difference: [2, len(item_ids)] added to its own scores, the cold row for a user it asks as cold."""
    full = TFLiteRanker(path, full_scores=True)
    own_user = {uid: i for i, uid in enumerate(user_ids) if i}
    own_item = {iid: i for i, iid in enumerate(item_ids) if i}
    user_map = np.array([own_user.get(uid, 0) for uid in dataset.user_ids], np.int64)
    item_map = np.array([own_item.get(iid, 0) for iid in dataset.item_ids], np.int64)
    item_map[0] = 0
    known = item_map > 0

    def scores(users):
        rows = np.full([len(users), dataset.num_items], -np.inf, np.float32)
        for row, user in enumerate(users):
            history = [int(i) for i in item_map[latest[user]] if i > 0]  # most recent first, unknown ones dropped
            own = full.all_scores(int(user_map[user]), history)
            if difference is not None:  # models/recency_prior.py's cold(): no id and no history item
                own = own + difference[int(user_map[user] == 0 and not history)]
            rows[row, known] = own[item_map[known]]
        return rows

    return scores


def evaluate_students(student_dir: str, dataset, evaluator: RetrievalEvaluator) -> Dict[str, Dict]:
    import tensorflow as tf

    summary = _read_json(os.path.join(student_dir, artifacts.TRAINING_FILE))
    latest = training.latest_histories(dataset, summary["config"]["history"])
    results = {}
    for name, subdir in STUDENT_DIRS.items():
        path = os.path.join(student_dir, subdir)
        model = tf.saved_model.load(path)

        def scores(users, model=model):
            return model.score(tf.constant(users, tf.int64), tf.constant(latest[users])).numpy()

        # its recency prior as of the test's start (components/evaluation/test_start_prior.py)
        difference = test_start_prior.correction(path, summary[name].get("recency_prior"), dataset)
        # bytes: the SavedModel as exported (the Keras weights beside it are for compression).
        results[name] = _entry(evaluator, test_start_prior.corrected(scores, difference, latest),
                               summary[name]["params"], _sizes(path, exclude="weights"),
                               per_user=name == "student_kd", timed=scores)  # the push gate compares the int8 model with it
    return results


def write_curves(teacher_dir: str, student_dir: str, path: str) -> Dict:
    """Per-epoch training curves of the teacher and both students (for the report's plots)."""
    teacher = training.read_summary(teacher_dir)
    students = _read_json(os.path.join(student_dir, artifacts.TRAINING_FILE))
    curves = {"teacher": {"loss": teacher["loss"], "val_loss": teacher["val_loss"]}}
    for name in STUDENT_DIRS:
        curves[name] = {k: students[name][k] for k in ("loss", "val_ndcg@10")}
    storage.write_text(path, json.dumps(curves, indent=2))  # json.dump's format, as before
    return curves


def _read_json(path: str) -> Dict:
    return storage.read_json(path)


def evaluate_teacher(teacher_dir: str, dataset, evaluator: RetrievalEvaluator) -> Dict[str, Dict]:
    import tensorflow as tf

    model = tf.saved_model.load(os.path.join(teacher_dir, artifacts.SAVED_MODEL_DIR))
    summary = training.read_summary(teacher_dir)
    latest = training.latest_histories(dataset, summary["config"]["history"])

    def teacher_scores(users):
        return model.score(tf.constant(users, tf.int64), tf.constant(latest[users])).numpy()

    return {"teacher": _entry(evaluator, teacher_scores, summary["params"],
                              _sizes(os.path.join(teacher_dir, artifacts.SAVED_MODEL_DIR)))}

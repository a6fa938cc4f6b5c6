"""The compression run: the distilled student in, its compressed deployable forms out.

Reads the KD student (components/student: Keras weights, config, dataset index, feature tables),
factorizes its large matrices when CompressionConfig.rank is set (models/factorization.py), prunes
and quantization-aware trains it (models/compression.py) on TeacherScorer's rows, and
exports, in the manner of TFX's TFLiteRewriter (validate, convert, validate again):
    Format-Serving/    TF Serving SavedModel of the compressed student (models/serving_export.py)
    mobile/            model.tflite (int8), user_vocab.txt, item_vocab.txt, metadata.json
    tflite_float.tflite  the uncompressed KD student as float32 TFLite (the "before")
    compression.json   factorization, fine-tuning logs, sparsity, int8 zero share, TFLite/SavedModel parity,
                       and what each setting tried kept of the KD student on the eval split ("gentler";
                       a run with a served model starts at the setting it shipped: "started_at")
The KD student's recency prior (models/recency_prior.py), when it has one, is added to every one
of these in float, after the int8 part.
"""

import dataclasses
import json
import os
from typing import Dict, List, Optional

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402

from components.student import distill  # noqa: E402
from components.teacher import training as teacher_training  # noqa: E402
from models import (artifacts, compression, compression_config, deployable, factorization, feature_tables,  # noqa: E402
                    interaction_data, mobile_export, recency_prior, serving_export, student, student_training)
from models.foundation import signatures  # noqa: E402
from models.foundation.tflite_runner import TFLiteRanker  # noqa: E402
from models.retrieval_metrics import split_evaluator  # noqa: E402
from models.foundation import storage  # noqa: E402

PARITY_USERS = 200
MIN_PARITY = 0.8  # mean top-10 overlap below which the int8 model is refused
KEPT_SHARE_USERS = 5000  # eval users ranked to check what a compression keeps (CompressionConfig.min_kept)


def load_student(student_dir: str, dataset, tables) -> student.StudentModel:
    """The KD student (Keras) from a StudentTrainer artifact's weights and settings."""
    summary = _read_json(os.path.join(student_dir, artifacts.TRAINING_FILE))
    config = student.StudentConfig(**summary["config"])
    model = student.StudentModel(dataset.num_users, dataset.num_items, tables, config,
                                 known_items=student.known_items(dataset))
    model.score(tf.zeros([1], tf.int64), tf.zeros([1, config.history], tf.int64))  # builds the variables
    path = os.path.join(student_dir, artifacts.SAVED_MODEL_DIR, student_training.WEIGHTS)
    model.load_weights(path).expect_partial()  # the optimizer's slots are not needed
    return model


@dataclasses.dataclass
class Compressed:
    """The compression's models (tf_keras, deployed form) and what produced them."""
    kd: student.StudentModel
    dataset: interaction_data.Dataset
    bins: Dict[str, np.ndarray]
    reference: tf.keras.Model  # the uncompressed student (deployed form)
    pruned: tf.keras.Model  # factorized (when asked) and pruned, float
    quantized: tf.keras.Model  # and quantization-aware trained: the int8 model to be
    prior: Optional[np.ndarray]  # the KD student's recency prior [known, cold] x (V - 1), or None
    log: Dict  # factorization, prune, qat, warm_start


def compress(train_files: List[str], student_dir: str, config: compression.CompressionConfig) -> Compressed:
    """Factorizes (config.rank), prunes and QAT-trains the KD student of a StudentTrainer artifact;
    again, gentler (CompressionConfig.gentler), while the result keeps less than config.min_kept of
    the KD student's ndcg@10 on the eval split."""
    dataset = interaction_data.load_dataset(os.path.join(student_dir, artifacts.DATASET_FILE))
    tables = feature_tables.load_from(student_dir)
    kd = load_student(student_dir, dataset, tables)
    # A KD student that started from the served one's starts near it: pruning and QAT are applied
    # again, for fewer epochs (CompressionConfig.warm).
    student_warm = (_read_json(os.path.join(student_dir, artifacts.TRAINING_FILE)).get("warm_start") or {})
    warm = (student_warm.get("student_kd") or {}).get("started") == "warm"
    settings_used = config.warm() if warm else config
    settings = kd.config
    bins = deployable.feature_bins(kd)
    # The rows the KD student was trained on last: the refit's (train + eval) when it was refit.
    rows, latest_train, final, latest_final = distill.training_rows(train_files, settings, dataset)
    eval_histories = latest_train  # the train split's: what the eval split is ranked from
    if final is not None:
        rows, latest_train = final, latest_final

    tf.keras.utils.set_random_seed(settings.seed)
    # The uncompressed student: the reference term and the "before" (the float TFLite model). A user
    # table trained as two factors (student.user_rank) is stored as their product there, the same
    # scores: that factorization is one of the compression's techniques and is measured as one.
    reference = deployable.build(kd, trained_factors=False)
    known = student.known_items(dataset)
    check = kept_share_check(dataset, bins, eval_histories, reference) if config.min_kept > 0 else None
    counts = np.bincount(dataset.splits["train"].item, minlength=dataset.num_items)[1:]
    attempts, tried = [], []
    steps = settings_used.gentler() if check is not None else [settings_used]
    first = first_step(steps, student_warm)
    for step in steps[first:]:
        if tried:  # each attempt from the same seed as the first
            tf.keras.utils.set_random_seed(settings.seed)
        attempt = _compress_once(kd, dataset, bins, rows, latest_train, settings, step, reference, known, counts)
        kept = check(attempt[1]) if check is not None else None
        tried.append(attempt)
        attempts.append({"rank": step.rank, "target_sparsity": step.target_sparsity,
                         "dense_sparsity": step.dense_sparsity, "kept": kept})
        if kept is None or kept >= config.min_kept:
            break
    # none kept min_kept: the one that kept the most (the push gate has the last word)
    best = max(range(len(tried)), key=lambda i: attempts[i]["kept"] or 0.0)
    pruned, quantized, factorized_log, prune_log, qat_log = tried[best]
    gentler = {"min_kept": config.min_kept, "started_at": first, "attempts": attempts, "used": best,
               "eval_ndcg@10_student_kd": check.reference if check is not None else None}
    # The KD student's recency prior (models/recency_prior.py), added in float after the int8 part.
    prior_path = storage.join(student_dir, artifacts.SAVED_MODEL_DIR, artifacts.RECENCY_PRIOR_FILE)
    prior = storage.load_npy(prior_path)[:, 1:] if storage.exists(prior_path) else None  # [known, cold] x items
    started = {"started": "warm" if warm else "scratch", "prune_epochs": settings_used.prune_epochs,
               "qat_epochs": settings_used.qat_epochs}
    return Compressed(kd, dataset, bins, reference, pruned, quantized, prior,
                      {"factorization": factorized_log, "prune": prune_log, "qat": qat_log, "warm_start": started,
                       "gentler": gentler})


def first_step(steps: List[compression.CompressionConfig], student_warm: Dict) -> int:
    """The index among `steps` to start at: the setting the served model shipped, when there is one
    (the student's training.json warm_start: SERVED, or "from" in artifacts older than it), whether the
    students started from it or from scratch. The settings before it failed on this catalog and
    model; a taste shift does not make them pass. A run without a served model starts at 0, the
    configured setting."""
    served = student_warm.get(teacher_training.SERVED) or student_warm.get("from")
    return shipped_step(steps, _served_gentler(served))


def shipped_step(steps: List[compression.CompressionConfig], served: Optional[Dict]) -> int:
    """The index among `steps` (CompressionConfig.gentler()) of the setting the served model shipped
    (its compression.json's "gentler": the attempt it used); 0 when it has none or none matches (the
    configuration changed since)."""
    try:
        shipped = served["attempts"][served["used"]]
    except (KeyError, IndexError, TypeError):
        return 0

    def same(a, b) -> bool:
        return a == b or (a is not None and b is not None and abs(a - b) < 1e-9)

    for index, step in enumerate(steps):
        if all(same(getattr(step, key), shipped.get(key)) for key in ("rank", "target_sparsity", "dense_sparsity")):
            return index
    return 0


def _served_gentler(served_dir: Optional[str]) -> Optional[Dict]:
    """The served (blessed) compression artifact's "gentler" record, or None."""
    path = storage.join(served_dir, artifacts.COMPRESSION_FILE) if served_dir else None
    return _read_json(path).get("gentler") if path and storage.exists(path) else None


def _compress_once(kd, dataset, bins, rows, latest_train, settings, step, reference, known, counts):
    """(pruned, quantized, factorization log, prune log, QAT log) with one compression setting (`step`,
    with this run's epochs: a warm one's fewer)."""
    # Factorized (when step.rank is set) before pruning: the pruning stage fine-tunes the factors.
    # The most frequent items kept whole: the setting's share or count, or more where the catalog is
    # flat (full_rank_coverage of the training interactions).
    full_rank_items = max(factorization.full_rank_items_of(step.full_rank_items, dataset.num_items - 1),
                          compression_config.items_covering(counts, step.full_rank_coverage))
    factorized = deployable.build(kd, rank=factorization.rank_of(step.rank, kd.config.dim),
                                  full_rank_items=full_rank_items)
    factorized_log = {"rank": step.rank, "full_rank_items": step.full_rank_items,
                      "full_rank_coverage": step.full_rank_coverage,
                      "items_whole": full_rank_items if step.rank is not None else None,
                      "params": deployable.params(factorized), "layers": factorized.factorization}
    pruned, prune_log = compression.prune(factorized, bins, rows, latest_train, settings, step, reference, known)
    quantized, qat_log = compression.quantize_aware(pruned, bins, rows, latest_train, settings, step, reference, known)
    return pruned, quantized, factorized_log, prune_log, qat_log


class KeptShare:
    """model -> its ndcg@10 on the eval split over the KD student's (both deployed form, without the
    recency prior), ranked from the train split's histories with its items removed."""

    def __init__(self, evaluator, bins, histories: np.ndarray, reference: tf.keras.Model):
        self.evaluator, self.bins, self.histories = evaluator, bins, histories
        self.reference = self.ndcg(reference)

    def ndcg(self, model: tf.keras.Model) -> float:
        def scores(users):
            inputs = deployable.inputs_for(self.bins, users, self.histories[users])
            return deployable.full_scores(model(inputs, training=False)).numpy()

        return round(float(self.evaluator.evaluate(scores, ks=(10,))["ndcg@10"]), 4)

    def __call__(self, model: tf.keras.Model) -> Optional[float]:
        return round(self.ndcg(model) / self.reference, 4) if self.reference > 0 else None


def kept_share_check(dataset, bins, histories: np.ndarray, reference: tf.keras.Model) -> Optional[KeptShare]:
    """The check of what a compression keeps, or None without eval interactions to rank."""
    if not len(dataset.splits["eval"].user):
        return None
    evaluator = split_evaluator(dataset, ["train"], "eval").sample(KEPT_SHARE_USERS)
    return KeptShare(evaluator, bins, histories, reference) if len(evaluator.users) else None


def compress_and_export(train_files: List[str], student_dir: str, transform_graph_dir: Optional[str],
                        config: compression.CompressionConfig, serving_dir: str, model_dir: str) -> Dict:
    done = compress(train_files, student_dir, config)
    kd, dataset, bins, quantized, reference, prior = (done.kd, done.dataset, done.bins, done.quantized,
                                                      done.reference, done.prior)
    history = kd.config.history
    served, before = recency_prior.with_prior(quantized, prior), recency_prior.with_prior(reference, prior)
    serving_export.export(served, bins, serving_export.hash_bins_of(kd), dataset.user_ids, dataset.item_ids,
                          history, serving_dir, transform_graph_dir=transform_graph_dir)
    # model_dir is the Model artifact, maybe gs://: the converter's bytes go through storage.
    storage.write_bytes(storage.join(model_dir, artifacts.FLOAT_TFLITE),
                        mobile_export.convert(before, bins, history, int8=False, num_users=dataset.num_users))
    mobile = storage.join(model_dir, artifacts.MOBILE_DIR)
    storage.makedirs(mobile)
    int8 = mobile_export.convert(served, bins, history, int8=True, num_users=dataset.num_users)
    storage.write_bytes(storage.join(mobile, signatures.TFLITE_FILE), int8)
    mobile_export.write_vocabularies(mobile, dataset.user_ids, dataset.item_ids)
    latest = teacher_training.latest_histories(dataset, history)
    parity = top10_overlap(serving_dir, os.path.join(mobile, signatures.TFLITE_FILE), latest)
    if parity < MIN_PARITY:
        raise ValueError(f"the int8 TFLite model's top-10 overlaps the SavedModel's by {parity:.2f} on average "
                         f"(below {MIN_PARITY}): the conversion changed the model")
    zeros = mobile_export.zero_share(int8)
    _write_json(os.path.join(mobile, signatures.METADATA), mobile_metadata(dataset, history, zeros, parity))
    return {"config": dataclasses.asdict(config), "warm_start": done.log["warm_start"], "prune": done.log["prune"],
            "qat": done.log["qat"], "params": done.log["factorization"]["params"],
            "params_uncompressed": deployable.params(reference), "factorization": done.log["factorization"],
            "gentler": done.log["gentler"],
            "int8": zeros, "parity_top10_overlap": round(parity, 4), **_prior_summary(student_dir, prior)}


def _prior_summary(student_dir: str, prior) -> Dict:
    """{"recency_prior": the weights and window of the prior these models add, and what it counted to}, or {}
    without one: what a later run needs to rank this model with the prior as of its test's start
    (components/evaluation/test_start_prior.py's served_correction)."""
    if prior is None:
        return {}
    picked = _read_json(os.path.join(student_dir, artifacts.TRAINING_FILE))["student_kd"].get("recency_prior") or {}
    return {"recency_prior": {key: picked[key] for key in ("weight", "cold_weight", "days", "counted_to")
                              if key in picked}}


def top10_overlap(saved_model_dir: str, tflite_path: str, latest: np.ndarray, users: int = PARITY_USERS) -> float:
    """Mean share of the SavedModel's top-10 that the TFLite model also returns in its top-10."""
    model = tf.saved_model.load(saved_model_dir)
    sample = np.unique(np.linspace(1, len(latest) - 1, min(users, len(latest) - 1)).astype(np.int64))
    scores = model.score(tf.constant(sample), tf.constant(latest[sample])).numpy()
    overlaps = []
    # The interpreter maps a local file: a gs:// model is downloaded for as long as it runs.
    with storage.local_copy(tflite_path) as local:
        ranker = TFLiteRanker(local)
        for row, user in enumerate(sample):
            expected = set(np.argsort(-scores[row], kind="stable")[:10].tolist())
            got = set(ranker.rank(int(user), latest[user])[0][:10].tolist())
            overlaps.append(len(expected & got) / 10)
        del ranker  # before the temporary copy goes
    return float(np.mean(overlaps))


def mobile_metadata(dataset, history: int, zeros: Dict, parity: float) -> Dict:
    """metadata.json of mobile/<version>/ (version and metrics are added when it is pushed)."""
    k = min(signatures.TOP_K, dataset.num_items - 1)
    return {
        "signature": signatures.TFLITE_SIGNATURE, "k": k, "history": history,
        "inputs": {signatures.USER_INDEX: {"dtype": "int32", "shape": [1], "unknown": 0},
                   signatures.HISTORY_INDICES: {"dtype": "int32", "shape": [1, history], "padding": 0,
                                                "order": "most recent first"}},
        "outputs": {signatures.ITEM_INDICES: {"dtype": "int32", "shape": [1, k]},
                    signatures.SCORES: {"dtype": "float32", "shape": [1, k], "order": "best first"}},
        "user_vocab": signatures.USER_VOCAB, "item_vocab": signatures.ITEM_VOCAB,
        "num_users": dataset.num_users, "num_items": dataset.num_items,
        "int8_zero_share": zeros["zero_share"], "parity_top10_overlap": round(parity, 4),
        "version": None, "metrics": None,
    }


def _read_json(path: str) -> Dict:
    return storage.read_json(path)


def _write_json(path: str, value: Dict) -> None:
    # Not storage.write_json (sorted keys, final newline): metadata.json keeps its bytes.
    storage.write_text(path, json.dumps(value, indent=2))

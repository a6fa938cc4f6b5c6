"""The student run: scored rows in, the KD student and its no-KD twin out (models/student*.py).

Each student trains in two phases: on TeacherScorer's Split-train rows with early stopping on the
dataset's eval split, then (StudentConfig.refit, when there is an eval split) again from the same
start on Split-final (train + eval rows, the final teacher's labels) for the epochs phase one chose.
A warm teacher that skipped phase one (teacher.warm_start.phase_one false) had Split-final scored
alone: each student then goes on from the served one on it for warm_epochs, with no validation.
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
from models import (artifacts, distillation, distribute, feature_tables, interaction_data, prior_backtest,  # noqa: E402
                    recency_prior, scored_rows, student, student_training, student_warm_start)
from models.retrieval_metrics import split_evaluator  # noqa: E402

def read_scored(file_patterns: List[str]) -> Dict[str, np.ndarray]:
    """TeacherScorer's rows in memory, in row order (tests; training streams them: training_rows)."""
    return scored_rows.read_all(file_patterns)


def split_files(file_patterns: List[str], split: str) -> List[str]:
    """The patterns of one scored split among a Trainer's train_files (.../Split-<split>/...)."""
    return [f for f in file_patterns if f"Split-{split}" in f.replace(os.sep, "/").split("/")]


def scored(file_patterns: List[str], split: str) -> bool:
    """Whether the scorer scored the split: its scoring_stats.json names it (a warm teacher without
    phase one has Split-train left empty); an artifact without the file, whether patterns name it."""
    patterns = split_files(file_patterns, split)
    if not patterns:
        return False
    artifact = storage.dirname(storage.dirname(patterns[0]))
    if not storage.exists(storage.join(artifact, artifacts.SCORING_STATS_FILE)):
        return True
    return split in scoring.read_stats(artifact)["splits"]


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
    are scored_rows.ScoredRows streams. rows is None when the scorer wrote Split-final alone (a warm
    teacher that skipped phase one): the students skip it too, and train on the refit rows.

    With the mse soft loss both splits' teacher scores are rescaled by the one factor that gives
    the training rows' scores a standard deviation of config.soft_scale (the two teachers differ
    only in the data their wide part saw: one scale)."""
    rows = open_split(file_patterns, "train") if scored(file_patterns, "train") else None
    refit = config.refit and len(dataset.splits["eval"].user) and split_files(file_patterns, "final")
    final = open_split(file_patterns, "final") if refit or rows is None else None
    if config.beta > 0 and config.soft_loss == "mse":
        factor = distillation.rescale_factor((rows or final).std, config.soft_scale)
        rows = rows.scaled(factor) if rows is not None else None
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

    warm = warm_source(teacher_dir)
    start = _starter(warm, dataset, tables) if warm["from"] else None
    rows_from = teacher_training.rows_from(teacher_dir)
    summary = {"config": dataclasses.asdict(config), "rows": rows.rows if rows is not None else 0,
               "refit_rows": final.rows if final is not None else 0, "candidates": (rows or final).width}
    trained = {}
    for name, settings, out_dir in (("student_kd", config, kd_dir),
                                    ("student_no_kd", config.without_distillation(), no_kd_dir)):
        summary[name] = train_student(settings, dataset, tables, data, validation, out_dir,
                                      os.path.join(log_dir, name), teacher_items, start=start, trained=trained,
                                      name=name, span_from=rows_from)
    summary["warm_start"] = {**warm, **{name: summary[name].pop("warm_start") for name in trained
                                        if "warm_start" in summary[name]}}
    for name in trained:  # a student of another architecture, on the newest span's rows: say so
        started = summary["warm_start"].get(name) or {}
        if rows_from is not None and started.get("started") == "scratch":
            started["reason"] += ("; trained on the rows from the newest span on alone, which the teacher's warm "
                                  "start scored (teacher.warm_start.data: window trains it on the whole window)")
    if distribute.is_chief():  # the next run's students start from these (when this one is blessed)
        student_warm_start.save(trained, storage.join(os.path.dirname(kd_dir.rstrip("/")),
                                                      artifacts.STUDENT_WEIGHTS_FILE))
    return summary


def warm_source(teacher_dir: str) -> Dict:
    """{"from": the blessed model's directory or None, "reason"}: the students start where the teacher
    did (its training.json's warm_start: the drift check's decision, the last blessed run), when that
    model carries the students' weights and feature tables."""
    started = teacher_training.read_summary(teacher_dir).get("warm_start") or {}
    blessed = started.get("from")
    served = teacher_training.served_of(started)  # the compression starts at what it shipped
    if not blessed:
        return {"from": None, "reason": started.get("reason", "from scratch"), **served}
    if not all(storage.exists(storage.join(blessed, name))
               for name in (artifacts.STUDENT_WEIGHTS_FILE, artifacts.FEATURES_FILE)):
        return {"from": None, "reason": "from scratch: the last blessed model carries no student weights "
                                        "(trained before the students warm-started)", **served}
    return {"from": blessed, "reason": started["reason"], **served}


def _starter(warm: Dict, dataset, tables):
    """start(model, kind) -> what was kept: restores a built student from the blessed run's weights."""
    earlier_data = interaction_data.load_dataset(storage.join(warm["from"], artifacts.DATASET_FILE))
    earlier = {"users": earlier_data.user_ids, "items": earlier_data.item_ids}
    now = {"users": dataset.user_ids, "items": dataset.item_ids}
    earlier_vocab = feature_tables.load(storage.join(warm["from"], artifacts.FEATURES_FILE))["vocab"]
    saved = storage.load_npz(storage.join(warm["from"], artifacts.STUDENT_WEIGHTS_FILE))

    def start(model, kind: str) -> Dict:
        student_warm_start.build_variables(model)
        return student_warm_start.restore(model, saved, kind, earlier, now, earlier_vocab, tables.get("vocab", {}))

    return start


def train_student(settings: student.StudentConfig, dataset, tables, data, validation, out_dir: str,
                  log_dir: Optional[str] = None, teacher_items=None, start=None, trained: Optional[Dict] = None,
                  name: Optional[str] = None, span_from: Optional[int] = None) -> Dict:
    """One student: phase one with early stopping, the refit when `data` has refit rows, export.

    data: training_rows' (rows, latest, refit rows or None, refit histories or None). start: None (from
    scratch) or _starter's start(model, kind): both phases start from the blessed run's student, phase
    one with settings.warm_phase_one()'s epochs. trained: {name: the final model} is added to it. name:
    its role, student_kd or student_no_kd (by default from its settings: student_kd with beta or gamma).
    Returns its curves (with "warm_start" when `start` was given)."""
    rows, latest, final, latest_final = data
    frequency = np.bincount(dataset.splits["train"].item, minlength=dataset.num_items)
    name = name or ("student_kd" if settings.beta > 0 or settings.gamma > 0 else "student_no_kd")

    def build(config):
        tf.keras.utils.set_random_seed(settings.seed)  # the same initial weights and batches for every student
        return student.StudentModel(dataset.num_users, dataset.num_items, tables, config, frequency, teacher_items,
                                    student.known_items(dataset))

    def started():
        """(model, what the warm start kept or None): from the blessed run's when it fits."""
        if start is None:
            return build(settings), None
        model = build(settings.warm_phase_one())
        try:
            return model, {"started": "warm", **start(model, name)}
        except student_warm_start.ArchitectureChanged as error:
            return build(settings), {"started": "scratch", "reason": f"from scratch: {error}"}

    strategy = distribute.strategy_for(settings.distribute)
    with strategy.scope():  # the variables (mirrored under a strategy) and the training steps
        model, warm = started()
        if rows is None:  # the teacher skipped phase one (components/teacher/training.py): so does the student
            return _went_on(settings, model, warm, data, dataset, validation, out_dir, trained, name, span_from,
                            served=_served(settings, start, build, name, validation))
        curves = student_training.fit(model, rows, latest, validation, name=name,
                                      log_dir=log_dir if distribute.is_chief() else None)
        served = None  # the served student, untrained, for the recency prior's backtest (when it is picked)
        if warm and warm["started"] == "warm" and span_from is not None:
            served = _served(settings, start, build, name, validation)
        prior, curves["recency_prior"] = recency(settings, model, dataset, latest, validation, served, span_from)
        if final is not None:
            model = started()[0] if warm and warm["started"] == "warm" else build(settings)
            refit = student_training.fit(model, final, latest_final, None, epochs=curves["best_epoch"],
                                         name=f"{name} refit")
            curves["refit"] = {"epochs": curves["best_epoch"], "loss": refit["loss"], "seconds": refit["seconds"]}
    return _exported(settings, model, prior, curves, out_dir, trained, name, warm if start is not None else None)


def _exported(settings: student.StudentConfig, model, prior, curves: Dict, out_dir: str, trained: Optional[Dict],
              name: str, warm: Optional[Dict]) -> Dict:
    if distribute.is_chief():  # every worker holds the same weights; one writes them
        student_training.export(model, out_dir, prior)
        if prior is not None:
            storage.save_npy(storage.join(out_dir, artifacts.RECENCY_PRIOR_FILE), prior)
    if trained is not None:
        trained[name] = model
    if warm is not None:
        curves["warm_start"] = warm
    return {**curves, "params": student.params(model), "alpha": settings.alpha, "beta": settings.beta,
            "gamma": settings.gamma}


def _served(settings: student.StudentConfig, start, build, name: str, validation):
    """The served student as the warm start restores it, untrained (the recency prior's picks), or None
    when the prior is not picked or the student started from scratch."""
    if start is None or not _picks_prior(settings, validation):
        return None
    served = build(settings.warm_phase_one())
    try:
        start(served, name)
    except student_warm_start.ArchitectureChanged:
        return None
    return served


def _went_on(settings: student.StudentConfig, model, warm: Optional[Dict], data, dataset, validation, out_dir: str,
             trained: Optional[Dict], name: str, span_from: Optional[int], served=None) -> Dict:
    """A student without phase one: it goes on from the served student on the refit rows for
    warm_epochs (epochs, from scratch: a student of another architecture), with no validation; the
    recency prior's weights are picked with the served student, which saw none of the eval split."""
    _, latest, final, latest_final = data
    warmed = bool(warm) and warm["started"] == "warm"
    epochs = settings.warm_epochs if warmed else settings.epochs
    went = student_training.fit(model, final, latest_final, None, epochs=epochs, name=f"{name} warm")
    prior, picked = recency(settings, served, dataset, latest, validation, served, span_from) if served is not None \
        else recency(dataclasses.replace(settings, recency_prior="none"), model, dataset, latest, None)
    curves = {"loss": [], "val_ndcg@10": [], "best_epoch": 0, "seconds": 0.0, "recency_prior": picked,
              "phase_one": False, "refit": {"epochs": epochs, "loss": went["loss"], "seconds": went["seconds"]}}
    return _exported(settings, model, prior, curves, out_dir, trained, name,
                     {**warm, "phase_one": False, "epochs": epochs} if warm else None)


def recency(settings: student.StudentConfig, model, dataset, latest, validation, served=None,
            span_from: Optional[int] = None):
    """(the weighted prior [2, num_items] (known, cold user) the exported student adds, or None;
    what was picked): each weight picked with the phase-one student on the eval split, the cold
    one with every eval user asked as a cold user (index 0, no history); the prior of every split,
    test included (models/recency_prior.py: PUSH_SPLITS). With `served` (the served student as the warm start restored it)
    and span_from, a weight is picked on its backtest of the newest span instead where that has
    enough users (models/prior_backtest.py). "auto" not resolved by the pipeline counts as none."""
    if not _picks_prior(settings, validation):
        return None, {"mode": recency_prior.resolve(settings.recency_prior, None), "weight": 0.0, "cold_weight": 0.0}
    mode = "picked"
    train = dataset.splits["train"]
    prior = recency_prior.vector(train.item, train.timestamp, dataset.num_items, settings.recency_days)
    weight, curve = recency_prior.pick(
        lambda users: model.score(tf.constant(users, tf.int64), tf.constant(latest[users])).numpy(), validation, prior)
    cold = model.score(tf.zeros([1], tf.int64), tf.zeros([1, latest.shape[1]], latest.dtype)).numpy()
    cold_weight, cold_curve = recency_prior.pick(lambda users: np.repeat(cold, len(users), axis=0), validation, prior)
    summary = {"mode": mode, "weight": weight, "cold_weight": cold_weight, "days": settings.recency_days,
               "val_ndcg@10": curve, "cold_val_ndcg@10": cold_curve,
               "picked_on": {"weight": "eval", "cold_weight": "eval"}}
    if served is not None and span_from is not None:
        backtest = backtest_pick(served, dataset, latest.shape[1], span_from, settings.recency_days)
        summary["backtest"] = backtest
        for key, group in (("weight", "known"), ("cold_weight", "cold")):
            if "weight" in backtest[group]:
                summary[key] = backtest[group]["weight"]
                summary["picked_on"][key] = "backtest"
        weight, cold_weight = summary["weight"], summary["cold_weight"]
    if weight <= 0 and cold_weight <= 0:
        return None, summary
    # Exported: what is popular at the push (the test split too); the test figures count to its start.
    summary["counted_to"] = {"exported": recency_prior.counted_to(dataset, recency_prior.PUSH_SPLITS),
                             "test_figures": recency_prior.counted_to(dataset, recency_prior.TEST_START_SPLITS)}
    return recency_prior.rows(recency_prior.of_splits(dataset, recency_prior.PUSH_SPLITS, settings.recency_days),
                              weight, cold_weight), summary


def _picks_prior(settings: student.StudentConfig, validation) -> bool:
    return recency_prior.resolve(settings.recency_prior, None) == "picked" and validation is not None


def backtest_pick(served, dataset, history: int, span_from: int, days: int) -> Dict:
    """models/prior_backtest.py's picks with the served student (untrained, as restored) on the newest
    span's train and eval rows."""
    backtest = prior_backtest.newest_span(teacher_training.latest_split(dataset), dataset.num_users,
                                          dataset.num_items, span_from, history, days)
    cold = served.score(tf.zeros([1], tf.int64), tf.zeros([1, history], backtest.latest.dtype)).numpy()
    return prior_backtest.pick(
        backtest, lambda users, histories: served.score(tf.constant(users, tf.int64), tf.constant(histories)).numpy(),
        cold)

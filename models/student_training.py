"""Training and export of a student (models/student.py) outside TFX's plumbing.

Early stopping watches ndcg@10 on the validation split (ranked over the whole catalog with the
training items removed, models/retrieval_metrics.py), and the best epoch's weights are kept. The
exported SavedModel (tf.saved_model.load, no Keras needed) has
    score(user_index: int64 [B], history: int64 [B, H]) -> float32 [B, num_items]
and the Keras weights beside it (`weights/`) for compression.
"""

import os
import time
from typing import Dict, Optional

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402

from models import distillation, recency_prior, student as student_lib  # noqa: E402
from models.interaction_data import masked_histories  # noqa: E402
from models.retrieval_metrics import RetrievalEvaluator  # noqa: E402
from models.scored_rows import ScoredRows  # noqa: E402
from models.foundation.progress import report_progress  # noqa: E402

WEIGHTS = "weights/student"


def training_data(rows, latest: np.ndarray, config: student_lib.StudentConfig):
    """Shuffled batches of training rows: a models/scored_rows.ScoredRows stream (the pipeline), or
    in-memory arrays {user_index, item_index [N] (+ candidates, teacher_scores [N, C])} (tests).

    Training rows see the same kind of history the model sees at ranking time (the user's most
    recent items), never their own label. Histories of the items strictly before each row in
    time were tried and were worse on a random split (test ndcg@10 0.34 against 0.43).
    """
    if isinstance(rows, ScoredRows):
        return rows.dataset(latest, config.batch_size, config.seed, teacher=config.beta > 0)
    features = {"user_index": rows["user_index"], "item_index": rows["item_index"],
                "history": masked_histories(rows["user_index"], rows["item_index"], latest)}
    if config.beta > 0:
        features.update(candidates=rows["candidates"], teacher_scores=rows["teacher_scores"].astype(np.float32))
    data = tf.data.Dataset.from_tensor_slices(features)
    return data.shuffle(len(rows["user_index"]), seed=config.seed, reshuffle_each_iteration=True).batch(
        config.batch_size).prefetch(2)


def row_count(rows) -> int:
    return rows.rows if isinstance(rows, ScoredRows) else int(len(rows["user_index"]))


class ValidationRanking(tf.keras.callbacks.Callback):
    """ndcg@10 on the validation split each epoch; early stopping on it, best weights restored."""

    def __init__(self, evaluator: Optional[RetrievalEvaluator], latest: np.ndarray, patience: int):
        super().__init__()
        self.evaluator, self.latest, self.patience = evaluator, latest, patience
        self.curve, self.best, self.best_weights, self.waited = [], -1.0, None, 0

    def on_epoch_end(self, epoch, logs=None):
        if self.evaluator is None:
            return
        value = float(self.evaluator.evaluate(self.score, ks=(10,))["ndcg@10"])
        self.curve.append(round(value, 4))
        if logs is not None:
            logs["val_ndcg@10"] = value  # TensorBoard writes it
        if value > self.best:
            self.best, self.best_weights, self.waited = value, self.model.get_weights(), 0
        else:
            self.waited += 1
            if self.waited >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.model.score(tf.constant(users, tf.int64), tf.constant(self.latest[users])).numpy()


class EpochLines(tf.keras.callbacks.Callback):
    """One progress line per epoch (loss, validation ndcg@10, seconds) on the run's console."""

    def __init__(self, name: str, started: float):
        super().__init__()
        self.name, self.started = name, started

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        validation = f", validation ndcg@10 {logs['val_ndcg@10']:.4f}" if "val_ndcg@10" in logs else ""
        report_progress(f"{self.name} epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f}{validation}, "
                        f"{time.monotonic() - self.started:.0f} s")


def epoch_steps(rows: int, config: student_lib.StudentConfig) -> Optional[int]:
    """Batches per epoch when the rows exceed config.max_epoch_rows (an epoch is then that many rows
    of the repeated stream); None when an epoch is one pass over the rows."""
    if rows <= config.max_epoch_rows:
        return None
    return int(np.ceil(config.max_epoch_rows / config.batch_size))


def fit(model: student_lib.StudentModel, rows, latest_train: np.ndarray, validation: Optional[RetrievalEvaluator],
        log_dir: Optional[str] = None, epochs: Optional[int] = None, name: str = "student") -> Dict:
    """Trains with early stopping on `validation` (or for `epochs` epochs without it, the refit);
    returns {"loss": [...], "val_ndcg@10": [...], "best_epoch": n, "seconds": s}."""
    config = model.config
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
    ranking = ValidationRanking(validation, latest_train, config.patience)
    started = time.monotonic()
    callbacks = [ranking, EpochLines(name, started)] + ([tf.keras.callbacks.TensorBoard(log_dir)] if log_dir else [])
    data, steps = training_data(rows, latest_train, config), epoch_steps(row_count(rows), config)
    history = model.fit(data if steps is None else data.repeat(), epochs=epochs or config.epochs,
                        steps_per_epoch=steps, callbacks=callbacks, verbose=0)
    return {"loss": [round(float(x), 4) for x in history.history["loss"]], "val_ndcg@10": ranking.curve,
            "best_epoch": int(np.argmax(ranking.curve)) + 1 if ranking.curve else len(history.history["loss"]),
            "seconds": round(time.monotonic() - started, 1)}


class _Scorer(tf.Module):
    """The query tower and the catalog's candidate embeddings, computed once at export (plus the
    recency prior [2, num_items] (known, cold user), when given: models/recency_prior.py)."""

    def __init__(self, model: student_lib.StudentModel, history: int, prior: Optional[np.ndarray] = None):
        super().__init__()
        self.query_tower = model.query_tower
        self.candidates = tf.Variable(model.all_items(), trainable=False, name="candidate_embeddings")
        mask = distillation.MASKED * tf.one_hot(0, model.num_items)
        prior_rows = None if prior is None else tf.constant(np.asarray(prior, np.float32))

        def score(user_index, history_items):
            query = self.query_tower({"user_index": user_index, "history": history_items})
            scores = tf.matmul(query, self.candidates, transpose_b=True) + mask
            if prior_rows is not None:
                scores += recency_prior.per_user(prior_rows, user_index, history_items)
            return scores

        self.score = tf.function(score, input_signature=[
            tf.TensorSpec([None], tf.int64, name="user_index"), tf.TensorSpec([None, history], tf.int64, name="history")])


def export(model: student_lib.StudentModel, path: str, prior: Optional[np.ndarray] = None) -> None:
    """The SavedModel (score(user_index, history)) and the Keras weights; prior: [2, num_items] added
    to the scores (models/recency_prior.py's rows: known user, cold user)."""
    tf.saved_model.save(_Scorer(model, model.config.history, prior), path)
    model.save_weights(os.path.join(path, WEIGHTS))

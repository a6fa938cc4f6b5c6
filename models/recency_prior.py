"""The deployed student's recency prior: what is popular now, added to its scores.

    scores(u, i) = student(u, i) + weight(u) * log(1 + n_i)

n_i: item i's interactions in the last `days` days of the run's data (ending at its latest
timestamp; the test split counts, see below). Two weights: one for a user the model knows something of (a known id or a
history), one for a cold user (unknown id, empty history: the model's own ranking is then the
same for everyone). Each is picked on the eval split (StudentConfig.recency_prior "picked": the
grid below, 0 included, the best validation ndcg@10 of the phase-one student; the cold weight with
every eval user asked as a cold one), then the prior of all the run's data (PUSH_SPLITS: train, eval
and test, ending at the latest interaction, what is popular at the push) is exported with them, as
two rows [known, cold] x items: the KD student's
SavedModel, the compressed SavedModel and both TFLite models add it in float after the scoring
layer (PriorBias), outside the int8 part, so quantization does not touch it. A new item (add-items)
gets 0: no interactions yet.

Why the test split counts: the test split is the newest interactions (a split in time), held out for
the push gate. A prior that stops where it starts is that much older when the model is served: on
MovieLens-100K in 4-week spans it stopped 5.6 days before the span's end, and the pushed model
ranked the next span at 0.991-0.997 x trending counted to the span's end; counted to the end, the
same models and weights reach 0.997-1.001 x (docs/spans.md). The candidate's test figures (the push
gate's) take the prior back to the test's start (TEST_START_SPLITS,
components/evaluation/test_start_prior.py): otherwise the test's own interactions would be in them.

Why: on data that arrives in time, what users do next follows what is popular now. MovieLens-100K in
4-week spans, a model trained up to span k ranked on span k + 1: 60% of the next span's users have
no history (new sign-ups, who rate the popular films of the moment), and the last 28 days' most
popular items reach 0.29-0.42 ndcg@10 where EASE reaches 0.17-0.23; EASE plus this prior at weight
1 reaches 0.29-0.42 too (docs/spans.md). The eval split's users have histories, so one weight
picked there left the new sign-ups without the prior: hence the cold user's own weight. The StudentConfig default "auto" picks it for splits in
time (newest_span, time_cutoff) and leaves it out otherwise (a per-user random split has no "now").
"""

import datetime
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402

from models import deployable  # noqa: E402

DAY_SECONDS = 86400
GRID = (0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
TIME_SPLITS = ("newest_span", "time_cutoff")
PUSH_SPLITS = ("train", "eval", "test")  # what the exported prior counts: the run's data, to the push
TEST_START_SPLITS = ("train", "eval")  # what the candidate's test figures count: up to the test's start
LAYER = "recency_prior"
VARIABLE = f"{LAYER}/prior:0"  # its variable among a deployed scorer's (models/catalog_extension.py)


def resolve(mode: str, split_method: Optional[str]) -> str:
    """"auto" -> "picked" for a split in time, "none" otherwise; other modes as they are."""
    if mode != "auto":
        return mode
    return "picked" if split_method in TIME_SPLITS else "none"


def vector(items: np.ndarray, timestamps: np.ndarray, num_items: int, days: int) -> np.ndarray:
    """[num_items] float32 log(1 + interactions in the last `days` days before the latest timestamp)."""
    items, timestamps = np.asarray(items, np.int64), np.asarray(timestamps, np.int64)
    if not items.size:
        return np.zeros(num_items, np.float32)
    recent = timestamps >= timestamps.max() - days * DAY_SECONDS
    return np.log1p(np.bincount(items[recent], minlength=num_items)).astype(np.float32)


def interactions(dataset, splits: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """(items [N], timestamps [N]) int64 of a Dataset's `splits` (those it has), concatenated."""
    parts = [dataset.splits[name] for name in splits if name in dataset.splits]
    return (np.concatenate([np.asarray(p.item, np.int64) for p in parts] + [np.zeros(0, np.int64)]),
            np.concatenate([np.asarray(p.timestamp, np.int64) for p in parts] + [np.zeros(0, np.int64)]))


def of_splits(dataset, splits: Sequence[str], days: int) -> np.ndarray:
    """vector() of the interactions of a Dataset's `splits`, ending at their latest one."""
    return vector(*interactions(dataset, splits), dataset.num_items, days)


def latest(dataset, splits: Sequence[str]) -> Optional[int]:
    """The latest interaction of `splits` (where of_splits' window ends), Unix seconds; None without one."""
    stamps = interactions(dataset, splits)[1]
    return int(stamps.max()) if stamps.size else None


def counted_to(dataset, splits: Sequence[str]) -> Optional[str]:
    """latest() in UTC, ISO 8601; None without an interaction."""
    seconds = latest(dataset, splits)
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def cold(user_index, history) -> tf.Tensor:
    """[B] float32: 1 for a user the model knows nothing of (index 0, no history item), else 0.
    Comparisons and a float sum: builtin TFLite ops, kept in float by the int8 conversion."""
    unknown = tf.cast(tf.equal(tf.cast(user_index, tf.int64), 0), tf.float32)
    items = tf.reduce_sum(tf.cast(tf.greater(tf.cast(history, tf.int64), 0), tf.float32), axis=-1)
    return unknown * tf.cast(tf.equal(items, 0.0), tf.float32)


def rows(prior: np.ndarray, weight: float, cold_weight: float) -> np.ndarray:
    """[2, n] float32: the prior weighted for a known user (row 0) and for a cold one (row 1)."""
    return np.stack([weight * prior, cold_weight * prior]).astype(np.float32)


def per_user(prior_rows, user_index, history) -> tf.Tensor:
    """[B, n]: each user's row of prior_rows [2, n] (models/recency_prior.py's cold())."""
    prior_rows = tf.convert_to_tensor(prior_rows, tf.float32)
    return prior_rows[0][None, :] + cold(user_index, history)[:, None] * (prior_rows[1] - prior_rows[0])[None, :]


def pick(score: Callable[[np.ndarray], np.ndarray], evaluator, prior: np.ndarray,
         grid: Sequence[float] = GRID, per_user: Optional[Dict[float, np.ndarray]] = None
         ) -> Tuple[float, Dict[str, float]]:
    """(the weight with the best validation ndcg@10, {weight: ndcg@10}); 0 unless another is better.
    per_user: a dict that receives each weight's per-user ndcg@10 (in the evaluator's user order)."""
    curve, options = {}, ({} if per_user is None else {"per_user": True})
    for weight in grid:
        value = evaluator.evaluate(lambda users, w=weight: score(users) + w * prior[None, :], ks=(10,), **options)
        curve[str(weight)] = round(float(value["ndcg@10"]), 4)
        if per_user is not None:
            per_user[weight] = np.asarray(value["per_user"]["ndcg@10"], np.float64)
    best = max(grid, key=lambda w: (curve[str(w)], -w))  # ties: the smaller weight
    return float(best), curve


@tf.keras.utils.register_keras_serializable(package="recdistill")
class PriorBias(tf.keras.layers.Layer):
    """[scores [B, V - 1], user_index [B], history [B, H]] -> scores + the user's row of the prior
    [2, V - 1] (known, cold: a constant of the model, a non-trainable weight)."""

    def __init__(self, columns: int, **kwargs):
        super().__init__(**kwargs)
        self.columns = int(columns)

    def build(self, input_shape):
        self.prior = self.add_weight(name="prior", shape=[2, self.columns], initializer="zeros", trainable=False)
        super().build(input_shape)

    def call(self, inputs):
        scores, user_index, history = inputs
        return scores + tf.cast(per_user(self.prior, user_index, history), scores.dtype)

    def get_config(self):
        return {**super().get_config(), "columns": self.columns}


def with_prior(scorer: tf.keras.Model, prior_columns: Optional[np.ndarray]) -> tf.keras.Model:
    """The deployed scorer (inputs user_index, history, ...) with prior_columns [2, V - 1] (rows()'s
    known and cold rows; item j + 1 at column j) added; the scorer itself when None."""
    if prior_columns is None:
        return scorer
    layer = PriorBias(np.shape(prior_columns)[-1], name=LAYER)
    inputs = scorer.input
    wrapped = tf.keras.Model(inputs, layer([scorer(inputs), inputs[deployable.USER_INDEX], inputs[deployable.HISTORY]]),
                             name="student_with_prior")
    layer.prior.assign(np.asarray(prior_columns, np.float32))
    return wrapped

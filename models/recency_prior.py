"""The deployed student's recency prior: what is popular now, added to its scores.

    scores(u, i) = student(u, i) + weight * log(1 + n_i)

n_i: item i's interactions in the last `days` days of the data the model was trained on (ending at
its latest timestamp). The weight is picked on the eval split (StudentConfig.recency_prior
"picked": the grid below, 0 included, the best validation ndcg@10 of the phase-one student),
then the prior of the final student's data (train + eval) is exported with it: the KD student's
SavedModel, the compressed SavedModel and both TFLite models add it in float after the scoring
layer (PriorBias), outside the int8 part, so quantization does not touch it. A new item (add-items)
gets 0: no interactions yet.

Why: on data that arrives in time, what users do next follows what is popular now. MovieLens-100K in
4-week spans, a model trained up to span k ranked on span k + 1: 60% of the next span's users have
no history (new sign-ups, who rate the popular films of the moment), and the last 28 days' most
popular items reach 0.29-0.42 ndcg@10 where EASE reaches 0.17-0.23; EASE plus this prior at weight
1 reaches 0.29-0.42 too (docs/spans.md). The StudentConfig default "auto" picks it for splits in
time (newest_span, time_cutoff) and leaves it out otherwise (a per-user random split has no "now").
"""

from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402

DAY_SECONDS = 86400
GRID = (0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
TIME_SPLITS = ("newest_span", "time_cutoff")
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


def pick(score: Callable[[np.ndarray], np.ndarray], evaluator, prior: np.ndarray,
         grid: Sequence[float] = GRID) -> Tuple[float, Dict[str, float]]:
    """(the weight with the best validation ndcg@10, {weight: ndcg@10}); 0 unless another is better."""
    curve = {}
    for weight in grid:
        value = evaluator.evaluate(lambda users, w=weight: score(users) + w * prior[None, :], ks=(10,))["ndcg@10"]
        curve[str(weight)] = round(float(value), 4)
    best = max(grid, key=lambda w: (curve[str(w)], -w))  # ties: the smaller weight
    return float(best), curve


@tf.keras.utils.register_keras_serializable(package="recdistill")
class PriorBias(tf.keras.layers.Layer):
    """scores [B, V - 1] -> scores + prior (a constant of the model: a non-trainable weight)."""

    def __init__(self, columns: int, **kwargs):
        super().__init__(**kwargs)
        self.columns = int(columns)

    def build(self, input_shape):
        self.prior = self.add_weight(name="prior", shape=[self.columns], initializer="zeros", trainable=False)
        super().build(input_shape)

    def call(self, scores):
        return scores + tf.cast(self.prior, scores.dtype)

    def get_config(self):
        return {**super().get_config(), "columns": self.columns}


def with_prior(scorer: tf.keras.Model, prior_columns: Optional[np.ndarray]) -> tf.keras.Model:
    """The deployed scorer with prior_columns [V - 1] (item j + 1 at j) added; the scorer itself when None."""
    if prior_columns is None:
        return scorer
    layer = PriorBias(len(prior_columns), name=LAYER)
    wrapped = tf.keras.Model(scorer.input, layer(scorer(scorer.input)), name="student_with_prior")
    layer.prior.assign(np.asarray(prior_columns, np.float32))
    return wrapped

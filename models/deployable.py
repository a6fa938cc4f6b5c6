"""The student in the form it is deployed: a functional tf_keras model over index inputs.

    query  = E_user[user_index] + masked_mean(E_history[history]) + sum_f E_f[feature_f]
    scores = Dense(num_items - 1, use_bias=False)(query)   # column j scores item j + 1

(with a rank, E_user, E_history and the scoring kernel are each two low-rank factors:
models/factorization.py)

It is models/student.py's query tower with the candidate tower folded into the scoring layer's
kernel: the catalog is fixed once trained, so every item's embedding is computed once (cold items
keep what their features gave them) and becomes a weight. Index 0 (out-of-vocabulary item) has
no column, so it is never recommended. This is the form TF-MOT works on: standard Embedding and
Dense layers in a functional model (prune_low_magnitude wraps them; quantize_apply needs a
functional model and annotates the Dense). User features arrive already in embedding bins
(`feature_bins`): the hashing of large vocabularies is done when the tables are built, so that
the graph needs no hashing op (TFLite has none).

Inputs: user_index [B] int, history [B, H] int (0 pads), and one input per user feature named
as in models/feature_tables.py ([B] or [B, values], 0 = unknown/padding). Output: [B, V - 1].
"""

from typing import Dict, Optional

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402

from models import factorization, student as student_lib  # noqa: E402

USER_INDEX, HISTORY = "user_index", "history"


@tf.keras.utils.register_keras_serializable(package="recdistill")
class MaskedMean(tf.keras.layers.Layer):
    """[vectors [B, N, d], indices [B, N]] -> [B, d]: mean over the entries whose index is > 0."""

    def call(self, inputs):
        vectors, indices = inputs
        mask = tf.cast(indices > 0, vectors.dtype)[..., None]
        return tf.reduce_sum(vectors * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


@tf.keras.utils.register_keras_serializable(package="recdistill")
class Indices(tf.keras.layers.Layer):
    """Index inputs as int64, a layer of its own between each Input and its Embedding. It keeps ids
    out of TF-MOT's input quantization: quantize_apply puts a float QuantizeLayer after an Input
    that feeds an annotated layer, and ids cannot pass through one (an annotated Embedding failed
    so: models/compression.py wraps the Embeddings itself instead). With `below`, an index at or past
    it reads as 0, the unknown/padding index: the history table has no row for an item added after
    training (add-items extends only the scoring kernel), and an out-of-range gather is an error."""

    def __init__(self, below: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.below = None if below is None else int(below)

    def call(self, indices):
        indices = tf.cast(indices, tf.int64)
        if self.below is None:
            return indices
        return tf.where(indices < self.below, indices, tf.zeros_like(indices))

    def get_config(self):
        return {**super().get_config(), "below": self.below}


def feature_bins(model: student_lib.StudentModel) -> Dict[str, np.ndarray]:
    """{user feature: int64 table [num_users, ...]} in the student's embedding bins (hashed if large)."""
    tower = model.query_tower
    bins = {}
    for name, layer, table in zip(tower.feature_names, tower.feature_embeddings, tower.tables):
        if layer.hashing is not None:
            table = tf.where(table > 0, layer.hashing(table) + 1, 0)
        bins[name] = np.asarray(table, np.int64)
    return bins


def build(model: student_lib.StudentModel, kernel: np.ndarray = None, rank: Optional[int] = None,
          full_rank_items: int = 0, trained_factors: bool = True,
          user_table_rank: Optional[int] = None) -> tf.keras.Model:
    """The deployed form of a trained student, with its weights (scores equal model.score's).

    kernel: [dim, columns] scoring kernel to use instead of the student's own catalog (column j
    scores item j + 1): models/catalog_extension.py appends new items' columns this way.
    rank: the user and history-item tables and the scoring kernel as two factors of this rank
    each, from their truncated SVD (models/factorization.py); the scores are then those of the
    rank-r approximations. A student whose user table was trained as two factors (user_rank)
    keeps them at that rank (or `rank`, when smaller) without a rank given.
    full_rank_items: with a rank, the history table's rows and the kernel's columns of the first
    this many items (the vocabulary lists the most frequent first) are kept whole (mixed
    dimensions); only the rest is factorized.
    trained_factors: False stores a user table trained as two factors as their product (the same
    scores): the uncompressed form, the reference that compression is measured against.
    user_table_rank: the user table's rank as a saved model holds it (factorization.user_rank_in),
    instead of the one `rank` and the student's user_rank give: a structure rebuilt from weights.
    `model.factorization` says what was factorized and how closely."""
    config, tower = model.config, model.query_tower
    bins = feature_bins(model)
    kernel = np.asarray(model.all_items())[1:].T if kernel is None else np.asarray(kernel, np.float32)
    # A user table trained as two factors (StudentConfig.user_rank) stays two: its SVD at that rank is exact.
    trained_rank = config.user_rank_value() if trained_factors else None
    user_rank = user_table_rank if user_table_rank is not None else \
        min((r for r in (rank, trained_rank) if r is not None), default=None)
    users = factorization.Table(student_lib.id_table(tower.id_embedding), "user_id", user_rank)
    # row 0 of the history table is the unknown/padding index, before the items
    history_items = factorization.Table(student_lib.id_table(tower.history_embedding), "history_items", rank,
                                        full_rows=full_rank_items + 1 if full_rank_items else 0)
    scoring = factorization.Kernel(kernel, "scores", rank, full_columns=full_rank_items)
    # functional model
    user = tf.keras.Input([], dtype=tf.int64, name=USER_INDEX)
    history = tf.keras.Input([config.history], dtype=tf.int64, name=HISTORY)
    features = {name: tf.keras.Input(table.shape[1:], dtype=tf.int64, name=name) for name, table in bins.items()}
    # an item the history table has no row for (added to the catalog later) counts as padding
    history_ids = Indices(below=len(history_items.table), name="history_ids")(history)
    terms = [users.lookup(Indices(name="user_ids")(user)),
             MaskedMean(name="history_mean")([history_items.lookup(history_ids), history_ids])]
    feature_embeddings = {}
    for name, layer in zip(tower.feature_names, tower.feature_embeddings):
        embedding = feature_embeddings[name] = tf.keras.layers.Embedding(layer.bins, config.dim, name=f"{name}_embedding")
        vectors = embedding(Indices(name=f"{name}_ids")(features[name]))
        terms.append(vectors if len(bins[name].shape) == 1 else MaskedMean(name=f"{name}_mean")([vectors, features[name]]))
    query = tf.keras.layers.Add(name="query")(terms)
    deployed = tf.keras.Model({USER_INDEX: user, HISTORY: history, **features}, scoring(query), name="student")
    # weights
    factorized = {"user_id": users.set_weights(), "history_items": history_items.set_weights(),
                  "scores": scoring.set_weights()}
    for name, layer in zip(tower.feature_names, tower.feature_embeddings):
        feature_embeddings[name].set_weights(layer.embedding.get_weights())
    # a plain attribute (Keras would track a dict set the usual way and wrap it)
    object.__setattr__(deployed, "factorization", {name: found for name, found in factorized.items() if found})
    return deployed


def inputs_for(bins: Dict[str, tf.Tensor], user_index, history) -> Dict[str, tf.Tensor]:
    """The deployed model's inputs for users [B] and histories [B, H], features looked up in `bins`."""
    user_index = tf.cast(user_index, tf.int64)
    # bins may be stored narrower (models/mobile_export.py compact): the model reads int64 indices
    looked_up = {name: tf.cast(tf.gather(table, user_index), tf.int64) for name, table in bins.items()}
    return {USER_INDEX: user_index, HISTORY: tf.cast(history, tf.int64), **looked_up}


def full_scores(logits: tf.Tensor, masked: float = -1e9) -> tf.Tensor:
    """[B, V - 1] deployed scores -> [B, V] in the index space, index 0 masked (for evaluation)."""
    return tf.concat([tf.fill([tf.shape(logits)[0], 1], tf.cast(masked, logits.dtype)), logits], axis=1)


def params(model: tf.keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights if "kernel" in w.name or "embeddings" in w.name))

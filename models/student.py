"""The student: a small TFRS two-tower retrieval model on tf_keras, trained by distillation.

  query tower:     q = E_user[u] + mean_{j in history} E_item[j] + sum_f E_f[feature_f(u)]
  candidate tower: c = E_item[i] + sum_f E_f[feature_f(i)]     (genres, year, hashed title tokens)
  score(u, i) = q . c
An item without interactions in the training share (a cold item, or one seen only in test) has no
trained id vector: its E_item[i] is left out (`known_items`), so it is ranked by its features alone,
the same way in training, in the whole-catalog ranking and once deployed, and it is left out of the
whole-catalog hard loss's softmax: never a positive, it could only be pushed down there (on
MovieLens-100K with 10% of the items held out, the no-KD student's ndcg@10 among them rose from
0.1800 to 0.2153 by it, the distilled one's from 0.2979 to 0.2991). `item_id_dropout` leaves
out the id vector of that share of the candidates in training, so that the feature path learns to
stand alone (the distillation's soft labels reach it on the items whose ids are left out).
Every term is a standard Keras Embedding (TF-MOT can wrap each one); the user table is trained as two
factors, E_user = codes [users, r] @ up [r, dim] (`user_rank`, a quarter of dim by default:
LowRankEmbedding), since it grows with the users and compresses where the item tables do not. The history shares the
candidate tower's item id table (`share_item_embeddings`): 94K instead of 148K parameters on
MovieLens-100K, and the distilled student loses 0.002 ndcg@10 by it. Features come from constant
tables in the index space (models/feature_tables.py); a multi-valued feature (genres, title
tokens) is the mean of its values' vectors, 0 padding excluded; features with more values than
`max_feature_bins` (zip codes, title words) are hashed into max_feature_bins - 1 bins, bin 0
staying the padding. The history is the
user's H most recent items, most recent first, 0 padding. Additive towers, because MLP towers
(Dense 64 relu -> Dense 32) lost most of the personalisation on MovieLens-100K: test ndcg@10 0.25
(popularity's level) against 0.43 for the same embeddings summed.
"""

from typing import Dict, Mapping

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402  (after env: tf.keras is tf_keras 2)
import tensorflow_recommenders as tfrs  # noqa: E402
from tensorflow.python.autograph.core import config as _autograph  # noqa: E402

# AutoGraph leaves the `keras` package alone (its DoNotConvert list) but not `tf_keras`, the same code
# under another name: every first trace of a tf_keras fit converted ~355 library functions, 12-30 s
# here, for identical weights. Keras 2's code is written to run unconverted, as it did inside TF.
if not any(getattr(rule, "_prefix", None) == "tf_keras" for rule in _autograph.CONVERSION_RULES):
    _autograph.CONVERSION_RULES = (_autograph.DoNotConvert("tf_keras"), *_autograph.CONVERSION_RULES)

from models import distillation  # noqa: E402


# The settings live in a module without TensorFlow: the CLI checks a config before importing it.
from models.student_config import StudentConfig  # noqa: E402,F401  (re-exported: models.student.StudentConfig)


class FeatureEmbedding(tf.keras.layers.Layer):
    """Index features [N] or [N, values] (0 = padding/unknown) -> [N, dim] (mean over values).

    size: the feature's index range; above max_bins the indices are hashed into max_bins bins.
    """

    def __init__(self, size: int, dim: int, max_bins: int, **kwargs):
        super().__init__(**kwargs)
        self.size, self.dim, self.max_bins = int(size), int(dim), int(max_bins)
        self.bins = min(self.size, self.max_bins)
        self.hashing = tf.keras.layers.Hashing(self.bins - 1) if self.size > self.max_bins else None
        self.embedding = tf.keras.layers.Embedding(self.bins, self.dim)

    def call(self, indices):
        indices = tf.cast(indices, tf.int64)
        if self.hashing is not None:  # bin 0 stays padding: hash the rest into 1..bins-1
            indices = tf.where(indices > 0, self.hashing(indices) + 1, 0)
        vectors = self.embedding(indices)
        if indices.shape.rank == 1:
            return vectors
        mask = tf.cast(indices > 0, vectors.dtype)[..., None]
        return tf.reduce_sum(vectors * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "dim": self.dim, "max_bins": self.max_bins}


class LowRankEmbedding(tf.keras.layers.Layer):
    """An id table [count, dim] trained as two factors from the start: `codes` (an Embedding
    [count, rank]) followed by `up` (a Dense [rank, dim] without bias). `table()` is their product."""

    def __init__(self, count: int, dim: int, rank: int, **kwargs):
        super().__init__(**kwargs)
        self.count, self.dim, self.rank = int(count), int(dim), int(rank)
        self.codes = tf.keras.layers.Embedding(self.count, self.rank, name="codes")
        self.up = tf.keras.layers.Dense(self.dim, use_bias=False, name="up")

    def call(self, indices):
        return self.up(self.codes(indices))

    def table(self) -> np.ndarray:
        return np.asarray(self.codes.embeddings) @ np.asarray(self.up.kernel)

    def get_config(self):
        return {**super().get_config(), "count": self.count, "dim": self.dim, "rank": self.rank}


def id_table(layer) -> np.ndarray:
    """[count, dim]: an id embedding's table, a LowRankEmbedding's two factors multiplied."""
    return layer.table() if isinstance(layer, LowRankEmbedding) else layer.get_weights()[0]


class _Tower(tf.keras.Model):
    """Shared by both towers: an id embedding plus the side's feature embeddings."""

    def __init__(self, count: int, tables: Mapping[str, np.ndarray], sizes: Mapping[str, int],
                 config: StudentConfig, name: str, id_rank=None):
        super().__init__(name=name)
        # layers
        self.id_embedding = (LowRankEmbedding(count, config.dim, id_rank, name="id") if id_rank
                             else tf.keras.layers.Embedding(count, config.dim, name="id"))
        self.feature_names = sorted(tables)
        self.feature_embeddings = [FeatureEmbedding(sizes[f], config.dim, config.max_feature_bins, name=f)
                                   for f in self.feature_names]
        # constant feature tables, looked up by index (not weights: they are data)
        self.tables = [tf.constant(tables[f], tf.int64) for f in self.feature_names]

    def features(self, index, overrides=None):
        """Sum of the feature vectors [N, dim] of the rows `index` [N] (overrides: {feature: values})."""
        total = 0.0
        for name, layer, table in zip(self.feature_names, self.feature_embeddings, self.tables):
            values = overrides[name] if overrides and name in overrides else tf.gather(table, index)
            total += layer(values)
        return total


class QueryTower(_Tower):
    """{"user_index": [B], "history": [B, H]} (+ optional user features) -> [B, dim]."""

    def __init__(self, num_users: int, num_items: int, tables, sizes, config: StudentConfig, history_embedding=None):
        super().__init__(num_users, tables, sizes, config, name="query", id_rank=config.user_rank_value())
        self.history_embedding = history_embedding or tf.keras.layers.Embedding(num_items, config.dim, name="history")

    def call(self, inputs, training=False):
        user, history = tf.cast(inputs["user_index"], tf.int64), tf.cast(inputs["history"], tf.int64)
        mask = tf.cast(history > 0, tf.float32)[..., None]
        recent = tf.reduce_sum(self.history_embedding(history) * mask, axis=1)
        recent /= tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        return self.id_embedding(user) + recent + self.features(user, inputs)


class CandidateTower(_Tower):
    """item indices [N] -> [N, dim]; known: [num_items] bool, the items whose id vector is used."""

    def __init__(self, num_items: int, tables, sizes, config: StudentConfig, known=None):
        super().__init__(num_items, tables, sizes, config, name="candidate")
        known = np.ones(num_items, bool) if known is None else np.asarray(known, bool)
        self.known = tf.constant(known.astype(np.float32)[:, None])  # [num_items, 1] 1: use the id
        # The items out of the whole-catalog hard loss (index 0 is masked there anyway): never a
        # positive, an item without interactions would only be pushed down through its features.
        self.unknown = None if known[1:].all() else tf.constant(~known)
        self.id_dropout = config.item_id_dropout

    def call(self, items, training=False):
        items = tf.cast(items, tf.int64)
        keep = tf.gather(self.known, items)
        if training and self.id_dropout > 0:
            keep *= tf.cast(tf.random.uniform(tf.shape(keep)) >= self.id_dropout, keep.dtype)
        return self.id_embedding(items) * keep + self.features(items)


class StudentModel(tfrs.Model):
    """The two towers and the distillation objective.

    Training batches: user_index [B], history [B, H], item_index [B] (the positive), and for
    distillation candidates [B, C] with teacher_scores [B, C].
    item_frequency: [num_items] share of training interactions (the in-batch log-Q correction).
    teacher_items: [num_items, D] teacher item embeddings, for the hint loss (gamma > 0).
    known_items: [num_items] bool, the items with an id vector (`known_items(dataset)`); None: all.
    """

    def __init__(self, num_users: int, num_items: int, tables: Mapping[str, Mapping], config: StudentConfig,
                 item_frequency: np.ndarray = None, teacher_items: np.ndarray = None, known_items: np.ndarray = None):
        super().__init__()
        self.config, self.num_items = config, num_items
        self.hard_loss = config.hard_loss_for(num_items - 1)  # index 0 is padding, not a catalog item
        sizes = tables["size"]
        self.candidate_tower = CandidateTower(num_items, tables["item"], sizes, config, known_items)
        shared = self.candidate_tower.id_embedding if config.share_item_embeddings else None
        self.query_tower = QueryTower(num_users, num_items, tables["user"], sizes, config, shared)
        self.retrieval = tfrs.tasks.Retrieval(
            loss=tf.keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum_over_batch_size"),
            remove_accidental_hits=True)
        frequency = np.ones(num_items) if item_frequency is None else np.asarray(item_frequency, np.float64)
        self.item_probability = tf.constant(np.maximum(frequency / frequency.sum(), 1e-9), tf.float32)
        if config.gamma > 0:
            if teacher_items is None:
                raise ValueError("gamma > 0 (hint loss) needs the teacher's item embeddings")
            self.teacher_items = tf.constant(teacher_items, tf.float32)
            self.hint_projection = tf.keras.layers.Dense(teacher_items.shape[1], use_bias=False, name="hint")

    def all_items(self, training=False):
        """[num_items, dim]: every catalog item through the candidate tower."""
        return self.candidate_tower(tf.range(self.num_items, dtype=tf.int64), training=training)

    def score(self, user_index, history):
        """[B, num_items] logits; index 0 (OOV) masked."""
        query = self.query_tower({"user_index": user_index, "history": history})
        logits = tf.matmul(query, self.all_items(), transpose_b=True)
        return logits + distillation.MASKED * tf.one_hot(0, self.num_items)

    def compute_loss(self, inputs, training=False):
        losses = self.loss_terms(inputs, training)
        c = self.config
        total = c.alpha * losses["hard"] + c.beta * losses.get("soft", 0.0) + c.gamma * losses.get("hint", 0.0)
        # Under a strategy each replica's mean is over its share of the global batch, and the
        # replicas' gradients are summed: scaled, they sum to the global batch's mean (1 replica: as is).
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        return total / replicas if replicas > 1 else total

    def loss_terms(self, inputs, training=False) -> Dict[str, tf.Tensor]:
        # training=training reaches every layer: TF-MOT's pruning wrappers count steps through it.
        query = self.query_tower(inputs, training=training)
        positives = tf.cast(inputs["item_index"], tf.int64)
        items = None
        if self.hard_loss == "full" or self.config.gamma > 0:
            items = self.all_items(training=training)
        if self.hard_loss == "full":
            terms = {"hard": distillation.full_catalog_loss(query, items, positives, self.candidate_tower.unknown)}
        else:  # the candidate tower runs on the batch's items only: no step costs the whole catalog
            terms = {"hard": self.retrieval(
                query, self.candidate_tower(positives, training=training), compute_metrics=False,
                candidate_sampling_probability=tf.gather(self.item_probability, positives),
                candidate_ids=positives)}
        if self.config.beta > 0:
            candidates = tf.cast(inputs["candidates"], tf.int64)
            if self.hard_loss == "full":
                vectors = tf.gather(items, candidates)
            else:  # each distinct item of the batch's candidates once through the tower
                distinct, where = tf.unique(tf.reshape(candidates, [-1]))
                flat = tf.gather(self.candidate_tower(distinct, training=training), where)
                vectors = tf.reshape(flat, tf.concat([tf.shape(candidates), [-1]], axis=0))
            student = tf.einsum("bd,bcd->bc", query, vectors)
            terms["soft"] = distillation.soft(self.config.soft_loss, student, inputs["teacher_scores"], candidates,
                                              self.config.temperature)
        if self.config.gamma > 0:
            terms["hint"] = distillation.hint_loss(self.hint_projection(items[1:]), self.teacher_items[1:])
        return terms


def known_items(dataset) -> np.ndarray:
    """[num_items] bool: the items with interactions in the training share (train + eval), the ones
    whose id vector is trained on positives; index 0 (padding) is not one."""
    items = np.concatenate([dataset.splits[s].item for s in ("train", "eval") if s in dataset.splits])
    from models.interaction_data import items_with_interactions

    return items_with_interactions(items, dataset.num_items)


def params(model: StudentModel) -> int:
    """Parameters of the deployed towers (the hint projection is training-only)."""
    towers = {id(w): w for w in model.query_tower.weights + model.candidate_tower.weights}  # shared once
    return int(sum(np.prod(w.shape) for w in towers.values()))

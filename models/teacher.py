"""The teacher (Keras 3): a BERT encoder over the user's item sequence beside a wide item-item part.

  wide(u)  = (x_u . B): x_u the user's history as a multi-hot row, each item weighted
             0.5 ** (recency rank / half_life) (all 1 without a half-life), over up to `history`
             items; B the EASE item-item weights (models/ease.py), closed form on the training split
  deep(u)  = h_u . v_i + b_i: h_u the output at position 0, a [MASK] token ("the user's next
             items"), of a BERT encoder (keras-hub TransformerEncoder layers, learned position
             embeddings = recency ranks) over the user's latest `sequence` items, most recent
             first; v_i = E_item[i] + W . text(i), the item embedding, the same at the input and at
             the output (tied, as in BERT4Rec); text(i) the pretrained MiniLM sentence embedding of
             the item's text, centred and L2-normalised, so that the pretrained text reaches every
             layer.

Two ways to train the encoder (`objective`):
  "match_wide" (default): the encoder reads the user's whole (latest `sequence`) item set and is
      trained to reproduce the wide part's scores over the whole catalog, standardised per user
      (mean squared error; self-distillation of the item-item model into a BERT, as in Born-Again
      networks). The two then rank together:
          score(u, i) = z(wide(u))[i] + deep_weight * z(deep(u))[i]     (z: per-user standardised)
      deep_weight picked on the validation split. Measured on MovieLens-100K (docs/teacher.md,
      "Toward a teacher that beats EASE"): the encoder alone slightly beats EASE, and the two
      together beat EASE by 3 %: an encoder that learned item-item structure through text-aware
      embeddings and attention generalises differently from the closed form it learned from.
  "cloze": BERT4Rec's masked-item training (models/teacher_training.py), position 0 predicting
      held-out items on top of the wide part's scores;
          score(u, i) = wide_scale * wide(u)[i] + gate * deep(u)[i]
      (kept for comparison: on MovieLens-100K it did not beat EASE, docs/teacher.md).

The wide part's l2 and half-life are picked on the validation split first (closed form, seconds).
Every teacher is trained twice over, as the EASE baseline and the students are: phase one on the
training split (early stopping on validation; `score_train`, the student's soft labels, so that the
student's validation split stays unseen), then the refit: B on train + eval and (`refit`) the
encoder trained on train + eval too (`score`, for ranking test users).
"""

import contextlib
import dataclasses
import logging
from typing import Optional, Tuple

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

from models import distribute

HALF_LIFE_GRID = (None, 100.0, 30.0, 10.0)
DEEP_WEIGHT_GRID = (0.25, 0.5, 0.75, 1.0)
DEFAULT_DEEP_WEIGHT = 0.75  # without a validation split to pick on (what MovieLens-100K picks)
OBJECTIVES = ("match_wide", "cloze")
REFITS = ("warm", "scratch", "none")


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    dim: int = 64
    layers: int = 2
    heads: int = 2
    intermediate: int = 256
    dropout: float = 0.2
    sequence: int = 100  # items the BERT encoder reads (most recent first)
    history: int = 1024  # items the wide part reads
    objective: str = "match_wide"  # or "cloze" (see the module's docstring)
    deep_weight: float = -1.0  # match_wide: the encoder's weight in the ranking; -1: picked on eval
    # the encoder of `score` (test ranking): "scratch" trained again on train + eval for phase one's
    # best number of epochs, "warm" phase one's trained on for refit_epochs more on train + eval,
    # "none" phase one's as it is
    refit: str = "warm"
    refit_epochs: int = 10
    # cloze only: the share of masked items, of cut-off recent items, the cloze loss's weight, the
    # wide part's scale and the encoder's initial gate
    mask_share: float = 0.25
    future_share: float = 0.2
    cloze_weight: float = 0.5
    wide_scale: float = 40.0
    gate: float = 0.1
    l2: Optional[float] = None  # EASE l2; None: picked on the validation split
    half_life: Optional[float] = -1.0  # recency half-life in items; None: no decay; -1: picked on eval
    use_text: bool = True  # ablations: without the pretrained text ...
    use_bert: bool = True  # ... without the BERT encoder (the wide part alone)
    batch_size: int = 64
    epochs: int = 60
    patience: int = 10
    # Neither stops nor picks an epoch before this one: the encoder adds nothing in its first ~30
    # epochs, where validation is the wide part's plus noise, and a lucky early epoch stopped two
    # seeds of three at 0.4876 / 0.4753 on the MS split (docs/experiments.md, "Quality bench").
    min_epochs: int = 40
    learning_rate: float = 1e-3  # 2e-3 and 40 epochs: 0.4926 / 0.4891 on two index orders (1e-3: 0.4907 / 0.4912)
    seed: int = 42
    # Scale (docs/scale.md): an epoch is at most this many users (a fresh random draw each
    # epoch), and the wide part's choice and each epoch's validation rank at most this many eval
    # users (one seeded draw): the teacher's time stops growing with the users. MovieLens-100K's
    # 943 users are below both.
    max_epoch_users: int = 1000
    validation_users: int = 2000
    # the tf.distribute strategy the encoder trains under (models/distribute.py): "default",
    # "mirrored" (the GPUs of one machine), "multi_worker_mirrored" (TF_CONFIG's workers); batch_size
    # is the global batch, split among the replicas
    distribute: str = "default"
    # Keras 3 "mixed_float16" (float16 compute, float32 variables, loss scaling) on a GPU; ignored
    # (float32, logged) without one. Scores stay float32; the export computes in float32.
    mixed_precision: bool = False

    def __post_init__(self):
        for name in ("dim", "layers", "heads", "intermediate", "sequence", "history", "batch_size", "epochs",
                     "patience", "refit_epochs", "max_epoch_users", "validation_users"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"teacher {name} must be a positive integer, got {value!r}")
        if self.dim % self.heads:
            raise ValueError(f"teacher dim ({self.dim}) must be a multiple of heads ({self.heads})")
        for name in ("dropout", "mask_share", "future_share"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"teacher {name} must be in [0, 1), got {getattr(self, name)!r}")
        if isinstance(self.min_epochs, bool) or not isinstance(self.min_epochs, int) or self.min_epochs < 0:
            raise ValueError(f"teacher min_epochs must be a non-negative integer, got {self.min_epochs!r}")
        for name in ("learning_rate", "wide_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"teacher {name} must be positive, got {getattr(self, name)!r}")
        if self.l2 is not None and not self.l2 > 0:
            raise ValueError(f"teacher l2 must be positive (or null: picked on eval), got {self.l2!r}")
        if self.half_life is not None and self.half_life != -1.0 and not self.half_life > 0:
            raise ValueError(f"teacher half_life must be positive, null (no decay) or -1 (picked), got {self.half_life!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"teacher objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.deep_weight != -1.0 and not self.deep_weight >= 0:
            raise ValueError(f"teacher deep_weight must be >= 0 or -1 (picked on eval), got {self.deep_weight!r}")
        if self.refit not in REFITS:
            raise ValueError(f"teacher refit must be one of {', '.join(REFITS)}, got {self.refit!r}")
        if self.sequence > self.history:
            raise ValueError(f"teacher sequence ({self.sequence}) must not exceed history ({self.history})")
        if self.distribute not in distribute.STRATEGIES:
            raise ValueError(f"teacher distribute must be one of {', '.join(distribute.STRATEGIES)}, "
                             f"got {self.distribute!r}")
        if not isinstance(self.mixed_precision, bool):
            raise ValueError(f"teacher mixed_precision must be true or false, got {self.mixed_precision!r}")


def recency_weights(length: int, half_life: Optional[float]) -> np.ndarray:
    """[length] weight of the item at each recency rank (0 = most recent)."""
    if half_life is None:
        return np.ones(length, np.float32)
    return (0.5 ** (np.arange(length) / half_life)).astype(np.float32)


def weighted_rows(history: np.ndarray, num_items: int, half_life: Optional[float]) -> np.ndarray:
    """history [B, H] item indices (recency-first, 0 pads) -> [B, num_items] weighted multi-hot."""
    rows = np.zeros([len(history), num_items], np.float32)
    weights = np.broadcast_to(recency_weights(history.shape[1], half_life), history.shape)
    np.put_along_axis(rows, history, np.where(history > 0, weights, 0.0), axis=1)
    rows[:, 0] = 0.0
    return rows


def normalize_text(embeddings: np.ndarray) -> np.ndarray:
    """[n, d] sentence embeddings, row 0 the OOV/padding row -> centred, unit-norm; row 0 zero."""
    rows = embeddings[1:].astype(np.float64)
    centred = rows - rows.mean(axis=0) if len(rows) else rows
    unit = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-6)
    return np.concatenate([np.zeros([1, embeddings.shape[1]]), unit]).astype(np.float32)


def standardize(logits):
    """[B, num_items] -> each row minus its mean, over its standard deviation, over items 1.. (index 0
    is OOV: left out of both, and 0 after). A row without spread (no history) becomes all 0."""
    import tensorflow as tf

    real = logits[:, 1:]
    mean = tf.reduce_mean(real, axis=1, keepdims=True)
    spread = tf.math.reduce_std(real, axis=1, keepdims=True)
    standard = (real - mean) / tf.maximum(spread, 1e-9)
    return tf.concat([tf.zeros_like(logits[:, :1]), standard], axis=1)


@contextlib.contextmanager
def precision_policy(config: TeacherConfig):
    """Within: Keras 3's global dtype policy for the teacher's layers, "mixed_float16" when
    config.mixed_precision and a GPU is here, unchanged (float32) otherwise; the previous policy is
    restored on the way out (the rest of the process, tf_keras included, is unaffected: tf_keras has
    its own). Yields the policy's name.

    Without a GPU, float16 would run on the CPU, slower and less precise: the setting is ignored there
    (a warning is logged) and the teacher trains exactly as in float32.
    """
    import keras

    if not config.mixed_precision or not _has_gpu():
        if config.mixed_precision:
            logging.getLogger(__name__).warning(
                "teacher mixed_precision ignored: no GPU on this machine; the teacher trains in float32")
        yield "float32"
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield "mixed_float16"
    finally:
        keras.config.set_dtype_policy(previous)


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))  # starts no TensorFlow runtime (models/distribute.py)


def to_float32(model) -> None:
    """Makes every layer of a teacher built under "mixed_float16" compute in float32 (its variables
    are float32 already): what the export does, so that the SavedModel is the same float32 graph
    however the teacher was trained. A no-op on a float32 teacher."""
    if model.compute_dtype == "float32":
        return
    for layer in [model, *model._flatten_layers(include_self=False)]:
        layer.dtype_policy = "float32"


def build_teacher(item_text_emb: np.ndarray, wide: np.ndarray, half_life: Optional[float],
                  config: TeacherConfig, known_items: Optional[np.ndarray] = None):
    """item_text_emb: [num_items, text_dim] (row 0: OOV); wide: B [num_items, num_items], the EASE
    weights of the split this model is trained on (phase one: train; the refit: train + eval).
    known_items: [num_items] bool, the items with interactions in that split (None: all). The
    others (cold items, items seen only later) have no id vector, v_i = W . text(i) alone, and
    take no part in match_wide's loss: their wide scores are all zero, and matching that constant
    would teach their free id vectors to cancel what their text says.

    The variables are created under the strategy of config.distribute (the model's
    `distribute_strategy`, which models/teacher_training.py trains under) and the layers with
    `precision_policy(config)`.
    """
    with distribute.strategy_for(config.distribute).scope(), precision_policy(config):
        return _build(item_text_emb, wide, half_life, config, known_items)


def _build(item_text_emb: np.ndarray, wide: np.ndarray, half_life: Optional[float], config: TeacherConfig,
           known_items: Optional[np.ndarray]):
    import keras
    import keras_hub
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    num_items = len(item_text_emb)
    text = normalize_text(item_text_emb)
    text = np.concatenate([text, np.zeros([1, text.shape[1]], np.float32)])  # the [MASK] token: no text
    # 1: the item's id vector is used; padding (0) and the [MASK] token (num_items) keep theirs
    known = np.ones(num_items + 1, np.float32)
    if known_items is not None:
        known[:num_items] = np.asarray(known_items, bool)
        known[0] = 1.0

    class SequenceTeacher(keras.Model):
        def __init__(self):
            super().__init__()
            self.num_items, self.mask_token = num_items, num_items
            # layers
            self.item_id = keras.layers.Embedding(num_items + 1, config.dim, name="item_id")
            self.text_proj = keras.layers.Dense(config.dim, use_bias=False, name="text_projection")
            self.position = keras_hub.layers.PositionEmbedding(config.sequence + 1, name="recency_rank")
            self.norm = keras.layers.LayerNormalization(epsilon=1e-12)
            self.drop = keras.layers.Dropout(config.dropout)
            self.encoders = [keras_hub.layers.TransformerEncoder(
                config.intermediate, config.heads, dropout=config.dropout, activation="gelu",
                layer_norm_epsilon=1e-12, name=f"transformer_{n}") for n in range(config.layers)]
            # weights: output bias, the wide part's scale, the encoder's gate (cloze) or weight (match_wide)
            self.out_bias = self.add_weight(shape=(num_items,), initializer="zeros", name="out_bias")
            self.wide_scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(config.wide_scale),
                                              name="wide_scale", trainable=config.objective == "cloze")
            self.gate = self.add_weight(shape=(), initializer=keras.initializers.Constant(config.gate), name="gate",
                                        trainable=config.use_bert and config.objective == "cloze")
            self.deep_weight = keras.Variable(max(config.deep_weight, 0.0) if config.use_bert else 0.0,
                                              trainable=False, name="deep_weight", dtype="float32")
            # constants: the pretrained text table and the wide part's B
            self.text = keras.Variable(text, trainable=False, name="item_text")
            self.known = keras.Variable(known, trainable=False, name="known_items")
            self.wide = keras.Variable(wide.astype(np.float32), trainable=False, name="wide")
            self.weights_by_rank = keras.Variable(recency_weights(config.history, half_life), trainable=False,
                                                  name="recency_weights")

        def item_vectors(self, items):
            vectors = self.item_id(items) * tf.cast(tf.gather(self.known, items), self.item_id.compute_dtype)[..., None]
            if config.use_text:
                vectors = vectors + self.text_proj(tf.gather(self.text, items))
            return vectors

        def encode(self, sequence, training=False):
            """sequence [B, S + 1] (position 0 the [MASK] query) -> [B, S + 1, dim]."""
            x = self.item_vectors(sequence)
            x = self.drop(self.norm(x + self.position(x)), training=training)
            for encoder in self.encoders:
                x = encoder(x, padding_mask=sequence > 0, training=training)
            return x

        def deep_logits(self, hidden):
            """hidden [N, dim] -> [N, num_items] float32 (the output layer is float32 under mixed
            precision too: the softmax and the scores need its range); index 0 never ranks."""
            items = self.item_vectors(tf.range(num_items))
            return tf.matmul(tf.cast(hidden, tf.float32), tf.cast(items, tf.float32), transpose_b=True) + self.out_bias

        def wide_logits(self, rows):
            return self.wide_scale * tf.matmul(rows, self.wide)

        def deep_query(self, history):
            """history [B, H] -> the encoder's output at the [MASK] query over the latest `sequence` items."""
            query = tf.fill([tf.shape(history)[0], 1], tf.constant(self.mask_token, tf.int64))
            return self.encode(tf.concat([query, history[:, :config.sequence]], axis=1))[:, 0]

        def history_rows(self, history):
            """history [B, H] -> recency-weighted multi-hot [B, num_items] (a scatter, no [B, H, I])."""
            history = tf.cast(history, tf.int64)
            weights = tf.where(history > 0, tf.broadcast_to(self.weights_by_rank[:tf.shape(history)[1]],
                                                            tf.shape(history)), 0.0)
            batch = tf.broadcast_to(tf.range(tf.shape(history, out_type=tf.int64)[0])[:, None], tf.shape(history))
            index = tf.stack([tf.reshape(batch, [-1]), tf.reshape(history, [-1])], axis=1)
            rows = tf.scatter_nd(index, tf.reshape(weights, [-1]), [tf.shape(history)[0], num_items])
            return rows * (1.0 - tf.one_hot(0, num_items))

        def rank_parts(self, history):
            """history [B, H] (recency-first) -> (wide, deep) logits [B, num_items] (deep: 0 without BERT)."""
            history = tf.cast(history, tf.int64)
            wide = self.wide_logits(self.history_rows(history))
            if not config.use_bert:
                return wide, tf.zeros_like(wide)
            return wide, self.deep_logits(self.deep_query(history))

        def combine(self, wide, deep, deep_weight):
            """The ranking of the two parts (the module's docstring); index 0 is -1e9."""
            if config.objective == "match_wide":
                logits = standardize(wide) + deep_weight * standardize(deep)
            else:
                logits = wide + self.gate * deep
            return logits - 1e9 * tf.one_hot(0, num_items)

        def rank(self, history):
            """history [B, H] (recency-first) -> [B, num_items] logits; index 0 is -1e9."""
            return self.combine(*self.rank_parts(history), self.deep_weight)

    model = SequenceTeacher()
    # Build every layer (the encoder too when it is ablated: export tracks built layers only).
    model.encode(tf.zeros([1, 2], tf.int64))
    model.rank(tf.zeros([1, config.history], tf.int64))
    model.built = True
    return model


def pick_wide(train_users, train_items, latest_train: np.ndarray, num_users: int, num_items: int, evaluator,
              config: TeacherConfig) -> Tuple[float, Optional[float], dict]:
    """The wide part's (l2, half_life), each picked by ndcg@10 on the validation split."""
    from models import ease

    if config.l2 is None:
        l2, l2_grid = ease.pick_l2(train_users, train_items, num_users, num_items, evaluator)
    else:
        l2, l2_grid = config.l2, {}
    weights = ease.EaseModel(num_items, l2).fit(train_users, train_items, num_users).weights
    grid = HALF_LIFE_GRID if config.half_life == -1.0 else (config.half_life,)
    found = {}
    users = np.asarray(evaluator.users, np.int64)  # rows of the evaluated users only: [R, num_items]
    position = np.zeros(num_users, np.int64)
    position[users] = np.arange(len(users))
    for half_life in grid:
        rows = weighted_rows(latest_train[users], num_items, half_life)
        found[str(half_life)] = round(float(evaluator.evaluate(lambda u: rows[position[u]] @ weights,
                                                               ks=(10,))["ndcg@10"]), 4)
    best = max(grid, key=lambda h: (found[str(h)], h is None))
    return l2, best, {"l2_grid": l2_grid, "half_life_grid": found}

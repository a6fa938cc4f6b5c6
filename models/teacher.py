"""The teacher (Keras 3): a BERT encoder over the user's item sequence beside a wide item-item part.

  score(u, i) = wide_scale * (x_u . B)[i] + gate * (h_u . v_i + b_i)
  x_u  the user's history as a multi-hot row, each item weighted 0.5 ** (recency rank / half_life)
       (all 1 without a half-life), over up to `history` items
  B    EASE item-item weights (models/ease.py), closed form on the training interactions
  h_u  the output at position 0, a [MASK] token ("the user's next items"), of a BERT encoder
       (keras-hub TransformerEncoder layers, learned position embeddings = recency ranks) over the
       user's latest `sequence` items, most recent first
  v_i  E_item[i] + W . text(i): the item embedding, the same at the input and at the output (tied,
       as in BERT4Rec); text(i) is the pretrained MiniLM sentence embedding of the item's text,
       centred and L2-normalised, so the pretrained text reaches every layer.
The BERT part is trained as BERT is (BERT4Rec): a share of the sequence is replaced by [MASK] and
each masked item is predicted at its position (cloze); position 0 predicts the held-out items
(the masked ones and, with `future_share`, the user's most recent items, cut off entirely), with the
wide part's scores of the remaining items added, so that the encoder learns what the item-item part
misses. `gate` starts small and is learned: an encoder that does not help is turned down, not
allowed to spoil the wide part's ranking (early stopping on the validation split guards the rest).

The wide part's l2 and half-life are picked on the validation split first (closed form, seconds);
after training, B is refit on train + eval for ranking test users (`score`), as the EASE baseline
is; `score_train` keeps B of the training split (the teacher's soft labels for the student, so
that the student's validation split stays unseen).
"""

import dataclasses
from typing import Optional, Tuple

import numpy as np

from tfx_pipeline import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

HALF_LIFE_GRID = (None, 100.0, 30.0, 10.0)


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    dim: int = 64
    layers: int = 2
    heads: int = 2
    intermediate: int = 256
    dropout: float = 0.2
    sequence: int = 50  # items the BERT encoder reads (most recent first)
    history: int = 1024  # items the wide part reads
    mask_share: float = 0.25
    future_share: float = 0.2  # up to this share of the most recent items is cut off and predicted
    cloze_weight: float = 0.5
    wide_scale: float = 40.0
    gate: float = 0.1
    l2: Optional[float] = None  # EASE l2; None: picked on the validation split
    half_life: Optional[float] = -1.0  # recency half-life in items; None: no decay; -1: picked on eval
    use_text: bool = True  # ablations: without the pretrained text ...
    use_bert: bool = True  # ... without the BERT encoder (the wide part alone)
    batch_size: int = 128
    epochs: int = 20
    patience: int = 3
    learning_rate: float = 1e-3
    seed: int = 42

    def __post_init__(self):
        for name in ("dim", "layers", "heads", "intermediate", "sequence", "history", "batch_size", "epochs",
                     "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"teacher {name} must be a positive integer, got {value!r}")
        if self.dim % self.heads:
            raise ValueError(f"teacher dim ({self.dim}) must be a multiple of heads ({self.heads})")
        for name in ("dropout", "mask_share", "future_share"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"teacher {name} must be in [0, 1), got {getattr(self, name)!r}")
        for name in ("learning_rate", "wide_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"teacher {name} must be positive, got {getattr(self, name)!r}")
        if self.l2 is not None and not self.l2 > 0:
            raise ValueError(f"teacher l2 must be positive (or null: picked on eval), got {self.l2!r}")
        if self.half_life is not None and self.half_life != -1.0 and not self.half_life > 0:
            raise ValueError(f"teacher half_life must be positive, null (no decay) or -1 (picked), got {self.half_life!r}")
        if self.sequence > self.history:
            raise ValueError(f"teacher sequence ({self.sequence}) must not exceed history ({self.history})")


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


def build_teacher(item_text_emb: np.ndarray, wide_train: np.ndarray, half_life: Optional[float],
                  config: TeacherConfig):
    """item_text_emb: [num_items, text_dim] (row 0: OOV); wide_train: B [num_items, num_items]."""
    import keras
    import keras_hub
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    num_items = len(item_text_emb)
    text = normalize_text(item_text_emb)
    text = np.concatenate([text, np.zeros([1, text.shape[1]], np.float32)])  # the [MASK] token: no text

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
            # weights: output bias, the wide part's scale, the encoder's gate
            self.out_bias = self.add_weight(shape=(num_items,), initializer="zeros", name="out_bias")
            self.wide_scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(config.wide_scale),
                                              name="wide_scale")
            self.gate = self.add_weight(shape=(), initializer=keras.initializers.Constant(config.gate), name="gate",
                                        trainable=config.use_bert)
            # constants: the pretrained text table and the two wide matrices (train; train + eval)
            self.text = keras.Variable(text, trainable=False, name="item_text")
            self.wide_train = keras.Variable(wide_train.astype(np.float32), trainable=False, name="wide_train")
            self.wide_final = keras.Variable(wide_train.astype(np.float32), trainable=False, name="wide_final")
            self.weights_by_rank = keras.Variable(recency_weights(config.history, half_life), trainable=False,
                                                  name="recency_weights")

        def item_vectors(self, items):
            vectors = self.item_id(items)
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
            """hidden [N, dim] -> [N, num_items]; index 0 never ranks."""
            items = self.item_vectors(tf.range(num_items))
            return tf.matmul(hidden, items, transpose_b=True) + self.out_bias

        def wide_logits(self, rows, wide):
            return self.wide_scale * tf.matmul(rows, wide)

        def history_rows(self, history):
            """history [B, H] -> recency-weighted multi-hot [B, num_items] (a scatter, no [B, H, I])."""
            history = tf.cast(history, tf.int64)
            weights = tf.where(history > 0, tf.broadcast_to(self.weights_by_rank[:tf.shape(history)[1]],
                                                            tf.shape(history)), 0.0)
            batch = tf.broadcast_to(tf.range(tf.shape(history, out_type=tf.int64)[0])[:, None], tf.shape(history))
            index = tf.stack([tf.reshape(batch, [-1]), tf.reshape(history, [-1])], axis=1)
            rows = tf.scatter_nd(index, tf.reshape(weights, [-1]), [tf.shape(history)[0], num_items])
            return rows * (1.0 - tf.one_hot(0, num_items))

        def rank(self, history, wide):
            """history [B, H] (recency-first) -> [B, num_items] logits; index 0 is -1e9."""
            history = tf.cast(history, tf.int64)
            logits = self.wide_logits(self.history_rows(history), wide)
            if config.use_bert:
                recent = history[:, :config.sequence]
                query = tf.fill([tf.shape(history)[0], 1], tf.constant(self.mask_token, tf.int64))
                hidden = self.encode(tf.concat([query, recent], axis=1))[:, 0]
                logits = logits + self.gate * self.deep_logits(hidden)
            return logits - 1e9 * tf.one_hot(0, num_items)

    model = SequenceTeacher()
    # Build every layer (the encoder too when it is ablated: export tracks built layers only).
    model.encode(tf.zeros([1, 2], tf.int64))
    model.rank(tf.zeros([1, config.history], tf.int64), model.wide_train)
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
    for half_life in grid:
        rows = weighted_rows(latest_train, num_items, half_life)
        found[str(half_life)] = round(float(evaluator.evaluate(lambda u: rows[u] @ weights, ks=(10,))["ndcg@10"]), 4)
    best = max(grid, key=lambda h: (found[str(h)], h is None))
    return l2, best, {"l2_grid": l2_grid, "half_life_grid": found}

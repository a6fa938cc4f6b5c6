"""The teacher's Keras 3 model, SequenceTeacher.

A module-level class built from explicit arguments (the arrays it holds and the settings it needs):
models/teacher.py `build_teacher` computes those from a TeacherConfig, under the strategy's and the
precision policy's scopes, and builds every layer. How the wide and the deep part combine into a
ranking, and which of the two scalar weights (wide_scale, gate) train, are the objective's
(models/teacher_objectives.py): the model asks the objective it was given.

Imports Keras 3 as it loads (the class derives from keras.Model): models/teacher.py imports it only
in build_teacher, so that reading a TeacherConfig loads no Keras.
"""

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import keras  # Keras 3 (the teacher's Keras; tf_keras is the rest of the project's)


class SequenceTeacher(keras.Model):
    """The wide part and the BERT encoder of models/teacher.py's docstring, and their ranking.

    text: [num_items + 1, text_dim] the normalised text table, its last row the [MASK] token's (zeros);
    known: [num_items + 1] 1 where an item's id vector is used; wide: B [num_items, num_items];
    recency: [history] the wide part's weight per recency rank; objective: MatchWide or Cloze
    (models/teacher_objectives.py). The variables are created in __init__ and `build_layers` (the
    layers' own at their first call), always in the same order: with the same seed, the same model.
    """

    def __init__(self, text: np.ndarray, known: np.ndarray, wide: np.ndarray, recency: np.ndarray, *, dim: int,
                 layers: int, heads: int, intermediate: int, dropout: float, sequence: int, use_text: bool,
                 use_bert: bool, objective):
        import keras_hub

        super().__init__()
        num_items = len(wide)
        self.num_items, self.mask_token = num_items, num_items
        self.sequence, self.use_text, self.use_bert, self.objective = sequence, use_text, use_bert, objective
        # layers
        self.item_id = keras.layers.Embedding(num_items + 1, dim, name="item_id")
        self.text_proj = keras.layers.Dense(dim, use_bias=False, name="text_projection")
        self.position = keras_hub.layers.PositionEmbedding(sequence + 1, name="recency_rank")
        self.norm = keras.layers.LayerNormalization(epsilon=1e-12)
        self.drop = keras.layers.Dropout(dropout)
        self.encoders = [keras_hub.layers.TransformerEncoder(
            intermediate, heads, dropout=dropout, activation="gelu", layer_norm_epsilon=1e-12,
            name=f"transformer_{n}") for n in range(layers)]
        # weights: output bias, the wide part's scale and the encoder's gate (each trained or not as the
        # objective says), the encoder's weight in match_wide's ranking (picked, not trained)
        (wide_scale, train_wide_scale), (gate, train_gate) = objective.scalar_weights(use_bert)
        self.out_bias = self.add_weight(shape=(num_items,), initializer="zeros", name="out_bias")
        self.wide_scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(wide_scale),
                                          name="wide_scale", trainable=train_wide_scale)
        self.gate = self.add_weight(shape=(), initializer=keras.initializers.Constant(gate), name="gate",
                                    trainable=train_gate)
        self.deep_weight = keras.Variable(objective.initial_deep_weight(use_bert), trainable=False,
                                          name="deep_weight", dtype="float32")
        # constants: the pretrained text table and the wide part's B
        self.text = keras.Variable(text, trainable=False, name="item_text")
        self.known = keras.Variable(known, trainable=False, name="known_items")
        self.wide = keras.Variable(wide.astype(np.float32), trainable=False, name="wide")
        self.weights_by_rank = keras.Variable(recency, trainable=False, name="recency_weights")

    def build_layers(self) -> None:
        """Builds every layer (the encoder too when it is ablated: export tracks built layers only)."""
        import tensorflow as tf

        self.encode(tf.zeros([1, 2], tf.int64))
        self.rank(tf.zeros([1, self.weights_by_rank.shape[0]], tf.int64))
        self.built = True

    def compute_in_float32(self) -> None:
        """Every layer of a model built under "mixed_float16" computes in float32 (its variables are
        float32 already); a no-op on a float32 model.

        The walk is recursive, over Keras' private `_flatten_layers`: a layer's dtype_policy does not
        reach its sublayers, and keras-hub's TransformerEncoder holds its attention, dense, norm and
        dropout layers (and the attention its own) where this class does not name them; Keras 3 has no
        public recursive walk (`Model.layers` is one level)."""
        if self.compute_dtype == "float32":
            return
        for layer in [self, *self._flatten_layers(include_self=False)]:
            layer.dtype_policy = "float32"

    def item_vectors(self, items):
        import tensorflow as tf

        vectors = self.item_id(items) * tf.cast(tf.gather(self.known, items), self.item_id.compute_dtype)[..., None]
        if self.use_text:
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
        import tensorflow as tf

        items = self.item_vectors(tf.range(self.num_items))
        return tf.matmul(tf.cast(hidden, tf.float32), tf.cast(items, tf.float32), transpose_b=True) + self.out_bias

    def wide_logits(self, rows):
        import tensorflow as tf

        return self.wide_scale * tf.matmul(rows, self.wide)

    def deep_query(self, history):
        """history [B, H] -> the encoder's output at the [MASK] query over the latest `sequence` items."""
        import tensorflow as tf

        query = tf.fill([tf.shape(history)[0], 1], tf.constant(self.mask_token, tf.int64))
        return self.encode(tf.concat([query, history[:, :self.sequence]], axis=1))[:, 0]

    def history_rows(self, history):
        """history [B, H] -> recency-weighted multi-hot [B, num_items] (a scatter, no [B, H, I])."""
        import tensorflow as tf

        history = tf.cast(history, tf.int64)
        weights = tf.where(history > 0, tf.broadcast_to(self.weights_by_rank[:tf.shape(history)[1]],
                                                        tf.shape(history)), 0.0)
        batch = tf.broadcast_to(tf.range(tf.shape(history, out_type=tf.int64)[0])[:, None], tf.shape(history))
        index = tf.stack([tf.reshape(batch, [-1]), tf.reshape(history, [-1])], axis=1)
        rows = tf.scatter_nd(index, tf.reshape(weights, [-1]), [tf.shape(history)[0], self.num_items])
        return rows * (1.0 - tf.one_hot(0, self.num_items))

    def rank_parts(self, history):
        """history [B, H] (recency-first) -> (wide, deep) logits [B, num_items] (deep: 0 without BERT)."""
        import tensorflow as tf

        history = tf.cast(history, tf.int64)
        wide = self.wide_logits(self.history_rows(history))
        if not self.use_bert:
            return wide, tf.zeros_like(wide)
        return wide, self.deep_logits(self.deep_query(history))

    def combine(self, wide, deep, deep_weight):
        """The objective's ranking of the two parts (models/teacher_objectives.py); index 0 is -1e9."""
        import tensorflow as tf

        return self.objective.combine(self, wide, deep, deep_weight) - 1e9 * tf.one_hot(0, self.num_items)

    def rank(self, history):
        """history [B, H] (recency-first) -> [B, num_items] logits; index 0 is -1e9."""
        return self.combine(*self.rank_parts(history), self.deep_weight)

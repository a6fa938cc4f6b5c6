"""Transform's preprocessing_fn: the feature graph shared by training and serving.

Vocabulary indices start at 1 everywhere: index 0 is out-of-vocabulary and padding, and line i
(from 0) of a vocabulary file holds the value of index i + 1. Outputs, for raw feature F (raw
names: components/ingest/examples.py):
  user_id, item_id         -> F (raw string, [batch]) and F with _id replaced by _index ([batch])
  timestamp, rating        -> passed through ([batch])
  text columns             -> F_text (lower-cased, punctuation removed, [batch] string) and
                              F_tokens ([batch, max_tokens], word indices, 0 pads)
  list columns (genres)    -> F_indices ([batch, max_values], 0 pads)
  other string columns     -> F_index ([batch])
  numeric columns          -> F_bucket ([batch]; quantile buckets 1..n of train, 0 = missing)
"""

from typing import Any, Dict, Mapping

import tensorflow as tf
import tensorflow_transform as tft

ID_FEATURES = ("user_id", "item_id")
PASSTHROUGH = ("timestamp", "rating")
DEFAULTS = {
    "item_text_columns": ["title"],
    "user_text_columns": [],
    "list_columns": ["genres"],
    "max_tokens": 16,
    "max_list_values": 8,
    "numeric_buckets": 10,
}


def preprocessing_fn(inputs: Mapping[str, Any], custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    config = {**DEFAULTS, **(custom_config or {})}
    text = {f"item_{c}" for c in config["item_text_columns"]} | {f"user_{c}" for c in config["user_text_columns"]}
    lists = {f"{side}_{c}" for side in ("user", "item") for c in config["list_columns"]}
    outputs = {}
    for name, tensor in sorted(inputs.items()):
        if name in ID_FEATURES:
            raw, _ = dense_1d(tensor, "")
            outputs[name] = raw
            outputs[name.replace("_id", "_index")] = vocab_index(raw, vocab_name=name)
        elif name in PASSTHROUGH:
            outputs[name], _ = dense_1d(tensor, 0)
        elif name in text:
            raw, _ = dense_1d(tensor, "")
            normalized = normalize_text(raw)
            outputs[f"{name}_text"] = normalized
            words = tf.strings.split(normalized).to_sparse()
            outputs[f"{name}_tokens"] = padded_indices(words, config["max_tokens"], vocab_name=name)
        elif name in lists:
            outputs[f"{name}_indices"] = padded_indices(as_sparse(tensor), config["max_list_values"], vocab_name=name)
        elif tensor.dtype == tf.string:
            raw, _ = dense_1d(tensor, "")
            outputs[f"{name}_index"] = vocab_index(raw, vocab_name=name)
        else:
            outputs[f"{name}_bucket"] = bucket(tensor, config["numeric_buckets"])
    return outputs


def normalize_text(text: tf.Tensor) -> tf.Tensor:
    """Lower case; every run of characters other than letters and digits becomes one space."""
    lowered = tf.strings.lower(text, encoding="utf-8")
    spaced = tf.strings.regex_replace(lowered, r"[^\p{L}\p{N}]+", " ")
    return tf.strings.strip(spaced)


def vocab_index(values: tf.Tensor, vocab_name: str) -> tf.Tensor:
    """Index of each value in the train vocabulary (most frequent first) plus 1; 0 = unknown."""
    vocab = tft.vocabulary(values, vocab_filename=vocab_name)
    return tft.apply_vocabulary(values, vocab, default_value=-1) + 1


def padded_indices(tokens: tf.SparseTensor, width: int, vocab_name: str) -> tf.Tensor:
    """[batch, width] vocabulary indices (plus 1) of the first `width` values, 0 padding."""
    vocab = tft.vocabulary(tokens, vocab_filename=vocab_name)
    indices = tft.apply_vocabulary(tokens, vocab, default_value=-1)
    shifted = tf.SparseTensor(indices.indices, indices.values + 1, indices.dense_shape)
    batch = tokens.dense_shape[0]
    clipped = tf.sparse.slice(shifted, [0, 0], tf.stack([batch, tf.constant(width, tf.int64)]))
    dense = tf.sparse.to_dense(tf.sparse.reset_shape(clipped, tf.stack([batch, tf.constant(width, tf.int64)])))
    return tf.reshape(dense, [-1, width])


def bucket(values: Any, num_buckets: int) -> tf.Tensor:
    """Quantile bucket (1..num_buckets) of a numeric feature, computed on train; 0 if missing."""
    dense, present = dense_1d(values, 0)
    dense = tf.cast(dense, tf.float32)
    present_values = tf.boolean_mask(dense, present)
    boundaries = tft.quantiles(present_values, num_buckets, epsilon=0.01)
    buckets = tft.apply_buckets(dense, boundaries) + 1
    return tf.where(present, buckets, tf.zeros_like(buckets))


def dense_1d(values: Any, default) -> tuple:
    """A single-valued feature as ([batch] values, [batch] bool presence)."""
    if isinstance(values, (tf.SparseTensor, tf.RaggedTensor)):
        sparse = as_sparse(values)
        batch = sparse.dense_shape[0]
        one = tf.SparseTensor(sparse.indices, sparse.values, tf.stack([batch, tf.constant(1, tf.int64)]))
        present = tf.sparse.to_dense(
            tf.SparseTensor(one.indices, tf.ones_like(one.values, tf.bool), one.dense_shape), False)
        return tf.reshape(tf.sparse.to_dense(one, default), [-1]), tf.reshape(present, [-1])
    flat = tf.reshape(values, [-1])
    return flat, tf.ones_like(flat, tf.bool)


def as_sparse(values: Any) -> tf.SparseTensor:
    return values.to_sparse() if isinstance(values, tf.RaggedTensor) else values

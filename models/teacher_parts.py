"""The teacher's array arithmetic, shared by its model, its objectives and its training: the wide
part's recency-weighted rows, the per-user standardisation of scores and the items' text table.
Imports no Keras (TensorFlow only inside `standardize`)."""

from typing import Optional

import numpy as np


def recency_weights(length: int, half_life: Optional[float]) -> np.ndarray:
    """[length] weight of the item at each recency rank (0 = most recent); half_life None: no decay."""
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


def standardize(logits):
    """[B, num_items] -> each row minus its mean, over its standard deviation, over items 1.. (index 0
    is OOV: left out of both, and 0 after). A row without spread (no history) becomes all 0."""
    import tensorflow as tf

    real = logits[:, 1:]
    mean = tf.reduce_mean(real, axis=1, keepdims=True)
    spread = tf.math.reduce_std(real, axis=1, keepdims=True)
    standard = (real - mean) / tf.maximum(spread, 1e-9)
    return tf.concat([tf.zeros_like(logits[:, :1]), standard], axis=1)


def normalize_text(embeddings: np.ndarray) -> np.ndarray:
    """[n, d] sentence embeddings, row 0 the OOV/padding row -> centred, unit-norm; row 0 zero."""
    rows = embeddings[1:].astype(np.float64)
    centred = rows - rows.mean(axis=0) if len(rows) else rows
    unit = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-6)
    return np.concatenate([np.zeros([1, embeddings.shape[1]]), unit]).astype(np.float32)

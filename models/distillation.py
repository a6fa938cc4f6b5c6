"""The distillation objective: total = alpha * hard + beta * soft + gamma * hint (tf_keras / TF).

  hard  the retrieval loss on the observed interactions: a softmax over the whole catalog
        (`full_catalog_loss`), or TFRS's in-batch Retrieval task with the log-Q correction for
        popular items being sampled more often as negatives (models/student.py, hard_negatives).
  soft  over the candidates the teacher scored (positive, sampled and hard negatives), either
        "mse": the mean squared difference between the student's logits and the teacher's
        (logit matching, Ba & Caruana 2014; the teacher's logits rescaled beforehand,
        `rescale_teacher`), or
        "kl": KL(p_teacher || p_student) between the two score distributions, both softened by
        temperature T, times T^2 so that its gradients keep their scale as T changes (Hinton et
        al., 2015).
        Measured on MovieLens-100K (docs/student-and-compression.md, "The student"): matching
        logits keeps the teacher's ranking (student 1.01 x the teacher it learned from); KL at one
        temperature either flattens a sharp teacher or overfits its top items.
  hint  the mean squared distance between the student's item embeddings, through a learned
        projection, and the teacher's (FitNets-style hints; optional).
Shapes are given per function; padding candidates are index 0 (never a real item) and masked.
"""

import numpy as np
import tensorflow as tf

MASKED = -1e9


def full_catalog_loss(query: tf.Tensor, all_items: tf.Tensor, positives: tf.Tensor, left_out=None) -> tf.Tensor:
    """query: [B, d]; all_items: [V, d] (row 0: OOV, never a target); positives: [B] -> scalar mean CE.
    left_out: [V] bool, items out of the softmax besides row 0 (None: none)."""
    logits = tf.matmul(query, all_items, transpose_b=True)
    logits += MASKED * tf.one_hot(0, tf.shape(all_items)[0])
    if left_out is not None:
        logits = tf.where(left_out, MASKED, logits)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positives, logits=logits))


def soft_loss(student_logits: tf.Tensor, teacher_logits: tf.Tensor, candidates: tf.Tensor,
              temperature: float) -> tf.Tensor:
    """student_logits, teacher_logits: [B, C] scores of the candidates [B, C] (0 = padding).

    Returns T^2 * mean over rows of KL(softmax(teacher / T) || softmax(student / T)).
    """
    valid = tf.not_equal(candidates, 0)
    t = tf.where(valid, teacher_logits / temperature, MASKED)
    s = tf.where(valid, student_logits / temperature, MASKED)
    p_teacher = tf.nn.softmax(t)
    kl = tf.reduce_sum(p_teacher * (tf.nn.log_softmax(t) - tf.nn.log_softmax(s)), axis=-1)
    return temperature ** 2 * tf.reduce_mean(kl)


def mse_loss(student_logits: tf.Tensor, teacher_logits: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
    """student_logits, teacher_logits: [B, C] scores of the candidates [B, C] (0 = padding).

    Returns the mean over real candidates of (student - teacher)^2.
    """
    valid = tf.cast(tf.not_equal(candidates, 0), student_logits.dtype)
    squared = tf.square(student_logits - tf.cast(teacher_logits, student_logits.dtype)) * valid
    return tf.reduce_sum(squared) / tf.maximum(tf.reduce_sum(valid), 1.0)


def soft(kind: str, student_logits, teacher_logits, candidates, temperature: float) -> tf.Tensor:
    """The soft term of the objective: kind "mse" or "kl" (see the module's docstring)."""
    if kind == "mse":
        return mse_loss(student_logits, teacher_logits, candidates)
    return soft_loss(student_logits, teacher_logits, candidates, temperature)


def rescale_factor(spread: float, target_std: float) -> float:
    """The factor that gives teacher logits with standard deviation `spread` (over all real
    candidates) the standard deviation target_std: logit matching then does not depend on the
    teacher's logit scale (an ensemble's, a wide part's times 40), and one beta fits any teacher."""
    return target_std / spread if spread > 0 else 1.0


def rescale_teacher(teacher_scores, candidates, target_std: float):
    """numpy [N, C] teacher logits times rescale_factor over the real candidates (0 = padding).
    Returns (scores, factor)."""
    real = np.asarray(teacher_scores, np.float64)[np.asarray(candidates) != 0]
    factor = rescale_factor(float(real.std()) if real.size else 0.0, target_std)
    return (np.asarray(teacher_scores, np.float32) * np.float32(factor)), factor


def hint_loss(projected: tf.Tensor, teacher: tf.Tensor) -> tf.Tensor:
    """projected: [N, D] student embeddings mapped to the teacher's width; teacher: [N, D] -> scalar MSE."""
    return tf.reduce_mean(tf.square(projected - teacher))

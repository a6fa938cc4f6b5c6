"""The distillation objective: total = alpha * hard + beta * soft + gamma * hint (tf_keras / TF).

  hard  the retrieval loss on the observed interactions: a softmax over the whole catalog
        (`full_catalog_loss`), or TFRS's in-batch Retrieval task with the log-Q correction for
        popular items being sampled more often as negatives (models/student.py, hard_negatives).
  soft  KL(p_teacher || p_student) between the two score distributions over the candidates the
        teacher scored (positive, sampled and hard negatives), both softened by temperature T,
        times T^2 so that its gradients keep their scale as T changes (Hinton et al., 2015).
  hint  the mean squared distance between the student's item embeddings, through a learned
        projection, and the teacher's (FitNets-style hints; optional).
Shapes are given per function; padding candidates are index 0 (never a real item) and masked.
"""

import tensorflow as tf

MASKED = -1e9


def full_catalog_loss(query: tf.Tensor, all_items: tf.Tensor, positives: tf.Tensor) -> tf.Tensor:
    """query: [B, d]; all_items: [V, d] (row 0: OOV, never a target); positives: [B] -> scalar mean CE."""
    logits = tf.matmul(query, all_items, transpose_b=True)
    logits += MASKED * tf.one_hot(0, tf.shape(all_items)[0])
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


def hint_loss(projected: tf.Tensor, teacher: tf.Tensor) -> tf.Tensor:
    """projected: [N, D] student embeddings mapped to the teacher's width; teacher: [N, D] -> scalar MSE."""
    return tf.reduce_mean(tf.square(projected - teacher))

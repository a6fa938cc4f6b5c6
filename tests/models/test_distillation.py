"""Each term of the distillation objective against numpy on toy tensors."""

import numpy as np
import pytest
import tensorflow as tf

from models import distillation


def _log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def test_full_catalog_loss_by_numpy():
    rng = np.random.default_rng(0)
    query, items = rng.normal(size=(3, 4)), rng.normal(size=(6, 4))
    positives = np.array([1, 5, 2])
    logits = query @ items.T
    logits[:, 0] = -np.inf  # the OOV row is never a candidate
    expected = -np.mean(_log_softmax(logits)[np.arange(3), positives])
    got = distillation.full_catalog_loss(tf.constant(query, tf.float32), tf.constant(items, tf.float32),
                                         tf.constant(positives))
    assert np.isclose(float(got), expected, rtol=1e-5)
    # items left out (no interactions): out of every row's softmax; the loss changes by exactly that
    left_out = np.array([False, False, False, True, True, False])
    logits[:, left_out] = -np.inf
    expected = -np.mean(_log_softmax(logits)[np.arange(3), positives])
    got = distillation.full_catalog_loss(tf.constant(query, tf.float32), tf.constant(items, tf.float32),
                                         tf.constant(positives), tf.constant(left_out))
    assert np.isclose(float(got), expected, rtol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_soft_loss_is_t_squared_kl_by_numpy(temperature):
    rng = np.random.default_rng(1)
    student, teacher = rng.normal(size=(4, 5)) * 3, rng.normal(size=(4, 5)) * 3
    candidates = np.arange(1, 21).reshape(4, 5)
    p = np.exp(_log_softmax(teacher / temperature))
    kl = (p * (_log_softmax(teacher / temperature) - _log_softmax(student / temperature))).sum(axis=1)
    expected = temperature ** 2 * kl.mean()
    got = distillation.soft_loss(tf.constant(student, tf.float32), tf.constant(teacher, tf.float32),
                                 tf.constant(candidates), temperature)
    assert np.isclose(float(got), expected, rtol=1e-5)


def test_soft_loss_ignores_padding_and_is_zero_when_student_matches():
    teacher = np.array([[2.0, 1.0, 0.5, 9.0]])
    candidates = np.array([[4, 7, 9, 0]])  # the last one is padding: its score must not count
    student = teacher + 3.0  # a constant shift is the same distribution
    student[0, 3] = -40.0
    got = distillation.soft_loss(tf.constant(student, tf.float32), tf.constant(teacher, tf.float32),
                                 tf.constant(candidates), 2.0)
    assert abs(float(got)) < 1e-6
    p = np.exp(_log_softmax(teacher[:, :3] / 2.0))
    shifted = teacher[:, :3].copy()
    shifted[0, 0] = 0.0
    expected = 4.0 * (p * (_log_softmax(teacher[:, :3] / 2.0) - _log_softmax(shifted / 2.0))).sum()
    student[0, :3] = shifted
    got = distillation.soft_loss(tf.constant(student, tf.float32), tf.constant(teacher, tf.float32),
                                 tf.constant(candidates), 2.0)
    assert np.isclose(float(got), expected, rtol=1e-5) and expected > 0


def test_temperature_softens_the_teacher():
    """Higher T spreads the teacher's mass: the soft loss of a uniform student falls with T (before T^2)."""
    teacher = tf.constant([[5.0, 0.0, 0.0, 0.0]])
    student = tf.zeros([1, 4])
    candidates = tf.constant([[1, 2, 3, 4]])
    kl = [float(distillation.soft_loss(student, teacher, candidates, t)) / t ** 2 for t in (1.0, 2.0, 8.0)]
    assert kl[0] > kl[1] > kl[2] > 0


def test_hint_loss_by_numpy():
    a, b = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
    assert np.isclose(float(distillation.hint_loss(tf.constant(a), tf.constant(b))), np.mean((a - b) ** 2))


def test_mse_loss_by_numpy_over_real_candidates_only():
    rng = np.random.default_rng(3)
    student, teacher = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    candidates = np.array([[4, 2, 7, 0, 0], [1, 3, 5, 6, 8], [9, 0, 0, 0, 0]])
    real = candidates != 0
    expected = np.sum(((student - teacher) ** 2)[real]) / real.sum()
    got = distillation.mse_loss(tf.constant(student, tf.float32), tf.constant(teacher, tf.float32),
                                tf.constant(candidates))
    assert np.isclose(float(got), expected, rtol=1e-5)
    # the padding's scores do not matter
    teacher2 = np.where(real, teacher, 1e3)
    assert np.isclose(float(distillation.mse_loss(tf.constant(student, tf.float32), tf.constant(teacher2, tf.float32),
                                                  tf.constant(candidates))), expected, rtol=1e-5)
    # the dispatcher picks the term by name
    assert np.isclose(float(distillation.soft("mse", student, teacher, candidates, 3.0)), expected, rtol=1e-5)
    kl = distillation.soft_loss(tf.constant(student), tf.constant(teacher), tf.constant(candidates), 3.0)
    assert np.isclose(float(distillation.soft("kl", student, teacher, candidates, 3.0)), float(kl), rtol=1e-5)


def test_rescale_teacher_gives_the_target_spread_over_real_candidates():
    rng = np.random.default_rng(4)
    scores = rng.normal(5.0, 40.0, size=(50, 6))
    candidates = rng.integers(0, 4, size=(50, 6))  # about a quarter padding
    scaled, factor = distillation.rescale_teacher(scores, candidates, 0.16)
    real = candidates != 0
    assert np.isclose(scaled[real].std(), 0.16, rtol=1e-4)
    assert np.isclose(factor, 0.16 / scores[real].std())
    assert np.allclose(scaled, scores * factor, rtol=1e-5)  # one factor: the ranking is unchanged
    flat, one = distillation.rescale_teacher(np.ones((2, 3)), np.ones((2, 3), np.int64), 0.16)
    assert one == 1.0 and np.allclose(flat, 1.0)  # no spread: nothing to rescale

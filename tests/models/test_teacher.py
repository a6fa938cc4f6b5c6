"""The teacher on a tiny random BERT: it learns, and its SavedModel answers like the Keras model."""

import numpy as np
import tensorflow as tf

from models import interaction_data, teacher, text_encoder
from models.interaction_data import Split


def test_mean_pool_by_hand():
    tokens = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = np.array([[True, True, False]])
    assert text_encoder.mean_pool(tokens, mask).tolist() == [[2.0, 3.0]]


def test_tiny_encoder_shapes_and_padding_invariance():
    encoder = text_encoder.tiny_random(["toy", "story", "heat"], sequence_length=8)
    out = encoder.encode(["toy story", "heat", ""])
    assert out.shape == (3, 32) and out.dtype == np.float32
    # Mean pooling ignores padding: the same text alone or in a batch embeds the same.
    assert np.allclose(encoder.encode(["heat"])[0], out[1], atol=1e-5)


def _train(toy, epochs):
    encoder = text_encoder.tiny_random(sorted({w for t in toy.item_texts + toy.user_texts for w in t.split()}))
    config = teacher.TeacherConfig(dim=8, history=5, epochs=epochs, patience=epochs, batch_size=32, learning_rate=1e-2)
    train, valid = toy.splits["train"], toy.splits["eval"]
    _, latest = interaction_data.histories(train, toy.num_users, config.history)
    model = teacher.build_teacher(encoder.encode(toy.user_texts), encoder.encode(toy.item_texts), config)
    history = teacher.train_teacher(model, train, valid, latest, config)
    return model, history, latest, config


def test_normalized_text_is_centred_unit_norm_times_scale():
    raw = np.array([[9.0, 9.0], [1.0, 3.0], [3.0, 3.0], [5.0, 6.0]])
    out = teacher.normalize_text(raw, 0.1)
    centred = raw[1:] - raw[1:].mean(axis=0)
    expected = centred / np.linalg.norm(centred, axis=1, keepdims=True) * 0.1
    assert np.allclose(out[0], 0) and np.allclose(out[1:], expected, atol=1e-6)


def test_training_inputs_carry_each_rows_own_item_as_the_target():
    latest = np.array([[0, 0, 0], [4, 2, 7]])
    data = teacher.training_inputs(np.array([1, 1]), np.array([2, 5]), latest, batch_size=2, seed=0, shuffle=False)
    inputs, labels = next(iter(data))
    assert labels.numpy().tolist() == [2, 5] and inputs["target"].numpy().tolist() == [2, 5]
    assert inputs["history"].numpy().tolist() == [[4, 2, 7], [4, 2, 7]]


def test_the_models_history_mask_excludes_the_target(toy):
    """A training row (with its target) scores as if its own item were not in the history."""
    model, _, latest, _ = _train(toy, epochs=1)
    users = np.array([1, 2])
    history = latest[users]
    target = history[:, 0]
    with_target = np.asarray(model({"user": users, "history": history, "target": target}))
    zeroed = np.asarray(model({"user": users, "history": np.where(history == target[:, None], 0, history)}))
    unmasked = np.asarray(model({"user": users, "history": history}))
    assert np.allclose(with_target, zeroed, atol=1e-5) and not np.allclose(with_target, unmasked, atol=1e-5)


def test_teacher_learns_the_clusters(toy):
    model, history, latest, _ = _train(toy, epochs=15)
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    users = np.arange(1, toy.num_users)
    scores = np.asarray(model({"user": users, "history": latest[users]}))
    top = np.argsort(-scores, axis=1)[:, :5]
    # Items of the user's own cluster (index mod 3) dominate the top 5; chance is one third.
    assert np.mean(top % 3 == (users % 3)[:, None]) > 0.8
    assert np.all(scores[:, 0] < -1e8)  # index 0 (unknown) is never recommended


def test_saved_model_round_trip(toy, tmp_path):
    model, _, latest, config = _train(toy, epochs=1)
    teacher.export_teacher(model, str(tmp_path / "sm"), config.history)
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    users = np.array([1, 2, 5], np.int64)
    expected = np.asarray(model({"user": users, "history": latest[users]}))
    got = loaded.score(tf.constant(users), tf.constant(latest[users])).numpy()
    assert np.allclose(got, expected, atol=1e-4)
    assert loaded.item_embeddings().numpy().shape == (toy.num_items, config.dim)


def test_training_without_a_validation_split(toy):
    empty = Split(*(np.zeros([0], np.int64) for _ in range(3)))
    toy.splits["eval"] = empty
    _, history, _, _ = _train(toy, epochs=2)
    assert len(history["loss"]) == 2 and history["val_loss"] == []

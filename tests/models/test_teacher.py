"""The teacher on a tiny random BERT: its parts by hand, it learns, and its SavedModel answers like Keras."""

import numpy as np
import pytest
import tensorflow as tf

from models import ease, interaction_data, teacher, teacher_training, text_encoder
from models.retrieval_metrics import split_evaluator

TINY = dict(dim=8, layers=2, heads=2, intermediate=16, sequence=4, history=6, batch_size=16, learning_rate=1e-2,
            wide_scale=5.0)


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


def test_normalized_text_is_centred_unit_norm():
    raw = np.array([[9.0, 9.0], [1.0, 3.0], [3.0, 3.0], [5.0, 6.0]])
    out = teacher.normalize_text(raw)
    centred = raw[1:] - raw[1:].mean(axis=0)
    assert np.allclose(out[0], 0) and np.allclose(out[1:], centred / np.linalg.norm(centred, axis=1, keepdims=True))


def test_weighted_rows_by_hand():
    history = np.array([[3, 1, 0], [2, 0, 0]])
    rows = teacher.weighted_rows(history, 5, half_life=1.0)
    assert rows.tolist() == [[0, 0.5, 0, 1, 0], [0, 0, 1, 0, 0]]
    assert teacher.weighted_rows(history, 5, None).tolist() == [[0, 1, 0, 1, 0], [0, 0, 1, 0, 0]]


@pytest.mark.parametrize("bad, message", [
    ({"dim": 0}, "dim must be a positive integer"), ({"dim": 9, "heads": 2}, "multiple of heads"),
    ({"mask_share": 1.0}, "mask_share must be in"), ({"l2": -1.0}, "l2 must be positive"),
    ({"sequence": 20, "history": 10}, "must not exceed history"), ({"half_life": 0.0}, "half_life")])
def test_bad_settings_are_one_line_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        teacher.TeacherConfig(**bad)


def test_corrupted_batch_holds_out_what_it_predicts():
    config = teacher.TeacherConfig(**TINY, mask_share=0.5, future_share=0.5)
    latest = np.array([[0] * 6, [5, 4, 3, 2, 1, 0]])
    rng = np.random.default_rng(0)
    for _ in range(20):
        inputs, targets, cloze, rows = teacher_training.corrupted_batch(latest, np.array([1]), config, 7, rng, None)
        assert inputs[0, 0] == 7  # position 0 is the [MASK] query
        held_out = set(np.flatnonzero(targets[0]).tolist())
        in_sequence = set(inputs[0, 1:].tolist()) - {0, 7}  # the encoder reads 4 of the 5 at most
        visible = set(np.flatnonzero(rows[0]).tolist())  # the wide part reads the whole history
        # The query predicts exactly the items neither part sees; masked positions their own item.
        assert held_out | visible == {1, 2, 3, 4, 5} and not held_out & visible and in_sequence <= visible
        assert all(inputs[0, p] == 7 for p in np.flatnonzero(cloze[0]))


def _fit(toy, epochs, **overrides):
    encoder = text_encoder.tiny_random(sorted({w for t in toy.item_texts for w in t.split()}))
    config = teacher.TeacherConfig(**{**TINY, "epochs": epochs, "patience": epochs, **overrides})
    train = toy.splits["train"]
    _, latest = interaction_data.histories(train, toy.num_users, config.history)
    weights = ease.EaseModel(toy.num_items, 10.0).fit(train.user, train.item, toy.num_users).weights
    model = teacher.build_teacher(encoder.encode(toy.item_texts), weights, None, config)
    history = teacher_training.fit(model, latest, split_evaluator(toy, ["train"], "eval"), config, None,
                                   log=lambda line: None)
    return model, history, latest, config


def test_the_wide_part_alone_is_ease(toy):
    model, history, latest, _ = _fit(toy, 1, use_bert=False)
    assert history["epochs"] == 0
    train = toy.splits["train"]
    users = np.arange(1, toy.num_users)
    expected = 5.0 * ease.EaseModel(toy.num_items, 10.0).fit(train.user, train.item, toy.num_users).score(users)
    got = np.asarray(model.rank(latest[users], model.wide_train))
    assert np.allclose(got[:, 1:], expected[:, 1:], atol=1e-4) and np.all(got[:, 0] < -1e8)


def test_teacher_learns_the_clusters(toy):
    model, history, latest, _ = _fit(toy, 15, wide_scale=0.01, gate=1.0)
    assert history["loss"][-1] < 0.9 * history["loss"][0]
    assert max(history["val_ndcg@10"]) > history["val_ndcg@10"][0]  # better than untrained, on eval
    users = np.arange(1, toy.num_users)
    scores = np.asarray(model.rank(latest[users], model.wide_train))
    top = np.argsort(-scores, axis=1)[:, :5]
    # Items of the user's own cluster (index mod 3) dominate the top 5; chance is one third.
    assert np.mean(top % 3 == (users % 3)[:, None]) > 0.65
    assert np.all(scores[:, 0] < -1e8)  # index 0 (unknown) is never recommended


def test_saved_model_round_trip(toy, tmp_path):
    model, _, latest, config = _fit(toy, 1)
    model.wide_final.assign(np.asarray(model.wide_train) * 2.0)  # tell the two endpoints apart
    teacher_training.export(model, str(tmp_path / "sm"), config.history)
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    users = np.array([1, 2, 5], np.int64)
    for endpoint, wide in ((loaded.score, model.wide_final), (loaded.score_train, model.wide_train)):
        got = endpoint(tf.constant(users), tf.constant(latest[users])).numpy()
        assert np.allclose(got, np.asarray(model.rank(latest[users], wide)), atol=1e-4)
    assert loaded.item_embeddings().numpy().shape == (toy.num_items, config.dim)

"""The teacher on a tiny random BERT: its parts by hand, it learns, and its SavedModel answers like Keras."""

import dataclasses

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
    ({"sequence": 20, "history": 10}, "must not exceed history"), ({"half_life": 0.0}, "half_life"),
    ({"objective": "mlm"}, "objective must be one of"), ({"deep_weight": -0.5}, "deep_weight"),
    ({"refit": "yes"}, "refit must be one of"), ({"refit_epochs": 0}, "refit_epochs"),
    ({"min_epochs": -1}, "min_epochs")])
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


def _fit(toy, epochs, validate=True, **overrides):
    encoder = text_encoder.tiny_random(sorted({w for t in toy.item_texts for w in t.split()}))
    config = teacher.TeacherConfig(**{**TINY, "epochs": epochs, "patience": epochs, **overrides})
    train = toy.splits["train"]
    _, latest = interaction_data.histories(train, toy.num_users, config.history)
    weights = ease.EaseModel(toy.num_items, 10.0).fit(train.user, train.item, toy.num_users).weights
    model = teacher.build_teacher(encoder.encode(toy.item_texts), weights, None, config)
    evaluator = split_evaluator(toy, ["train"], "eval") if validate else None
    history = teacher_training.fit(model, latest, evaluator, config, None, log=lambda line: None)
    return model, history, latest, config, encoder


def _z(rows):
    """numpy twin of teacher.standardize."""
    real = rows[:, 1:]
    return np.concatenate([np.zeros([len(rows), 1]), (real - real.mean(1, keepdims=True)) / real.std(1, keepdims=True)],
                          axis=1)


def test_standardize_against_numpy():
    rows = np.random.default_rng(0).normal(size=[4, 9]).astype(np.float32)
    rows[2] = 3.0  # no spread: all 0, not NaN
    got = np.asarray(teacher.standardize(tf.constant(rows)))
    with np.errstate(invalid="ignore"):
        expected = _z(rows.astype(np.float64))
    expected[2] = 0.0
    assert np.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("objective", ["cloze", "match_wide"])
def test_the_wide_part_alone_is_ease(toy, objective):
    model, history, latest, _, _ = _fit(toy, 1, use_bert=False, objective=objective)
    assert history["epochs"] == 0
    train = toy.splits["train"]
    users = np.arange(1, toy.num_users)
    expected = 5.0 * ease.EaseModel(toy.num_items, 10.0).fit(train.user, train.item, toy.num_users).score(users)
    if objective == "match_wide":  # ranks by the standardised scores
        expected = _z(expected.astype(np.float64))
    got = np.asarray(model.rank(latest[users]))
    assert np.allclose(got[:, 1:], expected[:, 1:], atol=1e-4) and np.all(got[:, 0] < -1e8)


def test_cloze_teacher_learns_the_clusters(toy):
    model, history, latest, _, _ = _fit(toy, 15, objective="cloze", wide_scale=0.01, gate=1.0)
    assert history["loss"][-1] < 0.9 * history["loss"][0]
    assert max(history["val_ndcg@10"]) > history["val_ndcg@10"][0]  # better than untrained, on eval
    users = np.arange(1, toy.num_users)
    scores = np.asarray(model.rank(latest[users]))
    top = np.argsort(-scores, axis=1)[:, :5]
    # Items of the user's own cluster (index mod 3) dominate the top 5; chance is one third.
    assert np.mean(top % 3 == (users % 3)[:, None]) > 0.65
    assert np.all(scores[:, 0] < -1e8)  # index 0 (unknown) is never recommended


def test_match_wide_encoder_learns_the_wide_scores(toy):
    users = np.arange(1, toy.num_users)
    train = toy.splits["train"]
    # What it is trained to reproduce: the wide part's standardised scores (numpy, from EASE itself).
    target = _z(ease.EaseModel(toy.num_items, 10.0).fit(train.user, train.item, toy.num_users).score(users))

    def correlation(model, latest):
        deep = np.asarray(model.rank_parts(latest[users])[1])
        return np.corrcoef(deep[:, 1:].ravel(), target[:, 1:].ravel())[0, 1]

    untrained, _, latest, _, _ = _fit(toy, 1, validate=False, learning_rate=1e-9)
    model, history, latest, _, _ = _fit(toy, 40, validate=False, dropout=0.0)  # no early stopping
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert correlation(model, latest) > 0.8 > abs(correlation(untrained, latest)) + 0.3
    # Without a validation split the deep weight is the configured default.
    assert history["deep_weight"] == teacher.DEFAULT_DEEP_WEIGHT == float(np.asarray(model.deep_weight))


def test_match_wide_picks_the_deep_weight_on_validation(toy):
    model, history, latest, _, _ = _fit(toy, 4, min_epochs=0)
    assert history["deep_weight"] in teacher.DEEP_WEIGHT_GRID
    assert history["best_epoch"] == int(np.argmax(history["val_ndcg@10"]))
    users = np.arange(1, toy.num_users)
    wide, deep = (np.asarray(part).astype(np.float64) for part in model.rank_parts(latest[users]))
    expected = _z(wide) + history["deep_weight"] * _z(deep)
    assert np.allclose(np.asarray(model.rank(latest[users]))[:, 1:], expected[:, 1:], atol=1e-4)


def _final(toy, model, config, encoder, epochs):
    """The refit twin on train + eval (as components/teacher/training.py builds it)."""
    from components.teacher import training

    known = training.latest_split(toy)
    weights = ease.EaseModel(toy.num_items, 30.0).fit(known.user, known.item, toy.num_users).weights
    final = teacher.build_teacher(encoder.encode(toy.item_texts), weights, None, config)
    summary = teacher_training.refit(final, model, training.latest_histories(toy, config.history), config, None,
                                     epochs=epochs, log=lambda line: None)
    return final, summary


def test_refit_modes(toy):
    model, history, latest, config, encoder = _fit(toy, 3)
    assert history["best_epoch"] == 3  # min_epochs (40) not reached: the last epoch, whatever eval said
    users = np.arange(1, toy.num_users)

    def deep(m):
        return np.asarray(m.rank_parts(latest[users])[1])

    finals = {}
    for mode, trained in (("none", 0), ("warm", 2), ("scratch", 2)):
        finals[mode], summary = _final(toy, model, dataclasses.replace(config, refit=mode, refit_epochs=2), encoder,
                                       epochs=2)
        assert summary["epochs"] == trained == len(summary["loss"]), mode
        assert float(np.asarray(finals[mode].deep_weight)) == history["deep_weight"]
    # none: phase one's encoder beside the refit B; warm goes on from it; scratch starts afresh.
    assert np.allclose(deep(finals["none"]), deep(model))
    assert not np.allclose(deep(finals["warm"]), deep(model))
    assert not np.allclose(deep(finals["scratch"]), deep(model))
    assert not np.allclose(deep(finals["scratch"]), deep(finals["warm"]))


def test_saved_model_round_trip(toy, tmp_path):
    model, _, latest, config, encoder = _fit(toy, 1)
    final, _ = _final(toy, model, config, encoder, epochs=1)
    teacher_training.export(model, final, str(tmp_path / "sm"), config.history)
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    users = np.array([1, 2, 5], np.int64)
    for endpoint, keras_model in ((loaded.score, final), (loaded.score_train, model)):
        got = endpoint(tf.constant(users), tf.constant(latest[users])).numpy()
        assert np.allclose(got, np.asarray(keras_model.rank(latest[users])), atol=1e-4)
    assert not np.allclose(loaded.score(tf.constant(users), tf.constant(latest[users])).numpy(),
                           loaded.score_train(tf.constant(users), tf.constant(latest[users])).numpy())
    assert loaded.item_embeddings().numpy().shape == (toy.num_items, config.dim)

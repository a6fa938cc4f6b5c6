"""The student on tiny data: tower shapes, features, learning with and without KD, export round trip."""

import dataclasses
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from models import student, student_training
from models.interaction_data import histories

# user_rank None: these tests read the plain user table (tests/models/test_compression.py trains a factored one)
TINY = student.StudentConfig(dim=8, history=4, max_feature_bins=8, batch_size=32, learning_rate=2e-2, user_rank=None,
                             epochs=12, patience=12, temperature=2.0)


def tables_for(dataset):
    """Feature tables like feature_tables.build's: a user 'cluster' feature, item genres (multi-valued)."""
    users = np.arange(dataset.num_users)
    items = np.arange(dataset.num_items)
    genres = np.stack([items % 3 + 1, np.where(items % 2 == 0, 4, 0)], axis=1)
    genres[0] = 0
    return {"user": {"user_cluster_index": np.where(users > 0, users % 3 + 1, 0)},
            "item": {"item_genres_indices": genres, "item_title_tokens": np.where(items[:, None] > 0, items[:, None] + 20, 0)},
            "size": {"user_cluster_index": 4, "item_genres_indices": 5, "item_title_tokens": 51}}


def rows_for(dataset, negatives=3, seed=0):
    """Scored rows as TeacherScorer writes them, with a teacher that knows the clusters."""
    train = dataset.splits["train"]
    rng = np.random.default_rng(seed)
    candidates = np.concatenate([train.item[:, None], rng.integers(1, dataset.num_items, (len(train.item), negatives))], 1)
    same = (candidates % 3) == (train.user % 3)[:, None]
    return {"user_index": train.user, "item_index": train.item, "candidates": candidates,
            "teacher_scores": np.where(same, 4.0, -4.0).astype(np.float32)}


def _model(toy, config=TINY, **kwargs):
    tf.keras.utils.set_random_seed(config.seed)
    return student.StudentModel(toy.num_users, toy.num_items, tables_for(toy), config, **kwargs)


def test_tower_shapes_and_masked_oov(toy):
    model = _model(toy)
    users = tf.constant([1, 2, 3], tf.int64)
    history = tf.constant([[4, 7, 0, 0], [0, 0, 0, 0], [1, 2, 3, 5]], tf.int64)
    assert model.query_tower({"user_index": users, "history": history}).shape == (3, TINY.dim)
    assert model.candidate_tower(tf.constant([0, 5, 9], tf.int64)).shape == (3, TINY.dim)
    scores = model.score(users, history).numpy()
    assert scores.shape == (3, toy.num_items) and np.all(scores[:, 0] < -1e8)


def test_feature_embedding_means_over_values_and_hashes_into_range():
    layer = student.FeatureEmbedding(size=5, dim=2, max_bins=8)
    out = layer(tf.constant([[1, 3, 0], [0, 0, 0]])).numpy()
    table = layer.embedding.get_weights()[0]
    assert np.allclose(out[0], (table[1] + table[3]) / 2) and np.allclose(out[1], 0)  # padding is excluded
    hashed = student.FeatureEmbedding(size=1000, dim=2, max_bins=8)
    assert hashed.embedding.input_dim == 8
    values = tf.constant(np.arange(0, 1000, dtype=np.int64))
    bins = tf.where(values > 0, hashed.hashing(values) + 1, 0).numpy()
    assert bins[0] == 0 and bins[1:].min() >= 1 and bins.max() <= 7 and len(set(bins[1:].tolist())) == 7


def test_feature_overrides_replace_the_table_lookup(toy):
    model = _model(toy)
    users, history = tf.constant([1], tf.int64), tf.zeros([1, 4], tf.int64)
    base = model.query_tower({"user_index": users, "history": history}).numpy()
    same = model.query_tower({"user_index": users, "history": history, "user_cluster_index": tf.constant([2])}).numpy()
    other = model.query_tower({"user_index": users, "history": history, "user_cluster_index": tf.constant([3])}).numpy()
    assert np.allclose(base, same) and not np.allclose(base, other)  # user 1 is in cluster 1 % 3 + 1 = 2


def test_no_kd_twin_has_beta_and_gamma_zero_and_nothing_else_changed():
    config = dataclasses.replace(TINY, beta=0.7, gamma=0.2, temperature=3.0)
    twin = config.without_distillation()
    assert twin.beta == 0 and twin.gamma == 0
    assert dataclasses.replace(twin, beta=0.7, gamma=0.2) == config


def _cluster_precision(model, toy, latest):
    users = np.arange(1, toy.num_users)
    scores = model.score(tf.constant(users), tf.constant(latest[users])).numpy()
    top = np.argsort(-scores, axis=1)[:, :5]
    return np.mean(top % 3 == (users % 3)[:, None])


@pytest.mark.parametrize("beta, soft_loss", [(0.0, "mse"), (1.0, "mse"), (1.0, "kl")])
def test_student_learns_the_clusters_with_and_without_kd(toy, beta, soft_loss):
    config = dataclasses.replace(TINY, beta=beta, soft_loss=soft_loss)
    model = _model(toy, config)
    _, latest = histories(toy.splits["train"], toy.num_users, config.history)
    before = _cluster_precision(model, toy, latest)
    curves = student_training.fit(model, rows_for(toy), latest, validation=None)
    assert curves["loss"][-1] < 0.8 * curves["loss"][0]
    assert _cluster_precision(model, toy, latest) > max(0.8, before + 0.3)  # chance is one third


def test_soft_term_is_in_the_loss_only_with_beta(toy):
    inputs = {k: tf.constant(v[:8]) for k, v in rows_for(toy).items()}
    inputs["history"] = tf.zeros([8, TINY.history], tf.int64)
    kd = _model(toy).loss_terms(inputs)
    no_kd = _model(toy, TINY.without_distillation()).loss_terms(inputs)
    assert set(kd) == {"hard", "soft"} and set(no_kd) == {"hard"}
    assert np.isclose(float(kd["hard"]), float(no_kd["hard"]))  # same seed, same weights


def test_mse_soft_term_is_the_candidates_squared_error_by_numpy(toy):
    rows = rows_for(toy)
    inputs = {k: tf.constant(v[:8]) for k, v in rows.items()}
    inputs["history"] = tf.constant(np.tile(np.arange(1, TINY.history + 1), (8, 1)), tf.int64)
    model = _model(toy, dataclasses.replace(TINY, soft_loss="mse"))
    got = float(model.loss_terms(inputs)["soft"])
    scores = model.score(inputs["user_index"], inputs["history"]).numpy()
    student_scores = np.take_along_axis(scores, rows["candidates"][:8], axis=1)
    expected = np.mean((student_scores - rows["teacher_scores"][:8]) ** 2)  # rows_for has no padding
    assert np.isclose(got, expected, rtol=1e-4)


@pytest.mark.parametrize("field, value", [("soft_loss", "l2"), ("soft_scale", 0.0), ("soft_scale", -1.0)])
def test_bad_soft_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TINY, **{field: value})


def test_refit_trains_the_given_epochs_without_validation(toy):
    """The refit phase: no validation split to stop on, exactly the epochs phase one chose."""
    model = _model(toy, dataclasses.replace(TINY, epochs=40, patience=1))
    _, latest = histories(toy.splits["train"], toy.num_users, TINY.history)
    curves = student_training.fit(model, rows_for(toy), latest, validation=None, epochs=3)
    assert len(curves["loss"]) == 3 and curves["val_ndcg@10"] == []


def test_in_batch_hard_loss_and_hint_loss_run(toy):
    config = dataclasses.replace(TINY, hard_negatives="in_batch", gamma=0.5, epochs=2)
    teacher_items = np.random.default_rng(0).normal(size=(toy.num_items, 6)).astype(np.float32)
    with pytest.raises(ValueError, match="teacher"):
        _model(toy, config)
    model = _model(toy, config, item_frequency=np.bincount(toy.splits["train"].item, minlength=toy.num_items),
                   teacher_items=teacher_items)
    _, latest = histories(toy.splits["train"], toy.num_users, config.history)
    curves = student_training.fit(model, rows_for(toy), latest, validation=None)
    assert np.all(np.isfinite(curves["loss"]))
    assert student.params(model) < sum(int(np.prod(w.shape)) for w in model.weights)  # hint projection excluded


def test_auto_hard_loss_is_full_up_to_the_catalog_size_and_in_batch_above():
    config = dataclasses.replace(TINY, full_softmax_items=100)
    assert [config.hard_loss_for(n) for n in (99, 100, 101)] == ["full", "full", "in_batch"]
    # catalog items, not indices: a model of 100 items has 101 indices (0 pads) and keeps the full softmax
    assert student.StudentModel(5, 101, {"user": {}, "item": {}, "size": {}}, config).hard_loss == "full"
    assert student.StudentModel(5, 102, {"user": {}, "item": {}, "size": {}}, config).hard_loss == "in_batch"
    assert dataclasses.replace(config, hard_negatives="full").hard_loss_for(10 ** 6) == "full"
    with pytest.raises(ValueError, match="hard_negatives"):
        dataclasses.replace(TINY, hard_negatives="sampled")


def test_in_batch_terms_use_the_candidate_tower_on_the_batch_items_only(toy):
    """The soft term over the candidate tower run on [B, C] items equals the one over the whole catalog."""
    config = dataclasses.replace(TINY, hard_negatives="in_batch")
    model = _model(toy, config)
    rows = rows_for(toy)
    _, latest = histories(toy.splits["train"], toy.num_users, config.history)
    batch = next(iter(student_training.training_data(rows, latest, config)))
    terms = model.loss_terms(batch)
    query = model.query_tower(batch).numpy()
    items = model.all_items().numpy()
    student_logits = np.einsum("bd,bcd->bc", query, items[batch["candidates"].numpy()])
    expected = np.mean(np.square(student_logits - batch["teacher_scores"].numpy()))
    assert terms["soft"].numpy() == pytest.approx(expected, rel=1e-4)
    # the hard term: softmax over the batch's positives, log-Q corrected, accidental hits removed
    positives = batch["item_index"].numpy()
    logits = query @ items[positives].T - np.log(model.item_probability.numpy()[positives])[None, :]
    same = positives[:, None] == positives[None, :]
    logits = np.where(same & ~np.eye(len(positives), dtype=bool), logits - 1e9, logits)  # TFRS's MIN_FLOAT hits
    softmax = logits - logits.max(axis=1, keepdims=True)
    expected_hard = -np.mean(np.diag(softmax) - np.log(np.exp(softmax).sum(axis=1)))
    assert terms["hard"].numpy() == pytest.approx(expected_hard, rel=1e-3)


def test_an_epoch_is_capped_at_max_epoch_rows_of_the_repeated_stream(toy):
    rows = rows_for(toy)
    n = len(rows["user_index"])
    config = dataclasses.replace(TINY, max_epoch_rows=64, batch_size=32, epochs=3, patience=3)
    assert student_training.epoch_steps(n, config) == 2 and student_training.epoch_steps(64, config) is None
    model = _model(toy, config)
    _, latest = histories(toy.splits["train"], toy.num_users, config.history)
    batches = []
    counter = tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    with mock.patch.object(student_training, "EpochLines", lambda name, started: counter):
        curves = student_training.fit(model, rows, latest, validation=None, epochs=3)
    assert len(curves["loss"]) == 3 and len(batches) == 6 and n > 64  # 3 epochs of 2 batches, not of n / 32


def test_saved_model_round_trip(toy, tmp_path):
    model = _model(toy)
    _, latest = histories(toy.splits["train"], toy.num_users, TINY.history)
    student_training.fit(model, rows_for(toy), latest, validation=None)
    student_training.export(model, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    users = np.array([1, 2, 7], np.int64)
    expected = model.score(tf.constant(users), tf.constant(latest[users])).numpy()
    got = loaded.score(tf.constant(users), tf.constant(latest[users])).numpy()
    assert np.allclose(got, expected, atol=1e-5)
    restored = _model(toy)
    restored.score(tf.constant(users), tf.constant(latest[users]))  # build
    restored.load_weights(str(tmp_path / "sm" / student_training.WEIGHTS))
    assert np.allclose(restored.score(tf.constant(users), tf.constant(latest[users])).numpy(), expected, atol=1e-5)

    # with a recency prior: a known user's row for users 1, 2, 7; the cold row for user 0 without history
    prior = np.stack([np.arange(toy.num_items), 2.0 * np.arange(toy.num_items)[::-1]]).astype(np.float32)
    student_training.export(model, str(tmp_path / "with_prior"), prior)
    with_prior = tf.saved_model.load(str(tmp_path / "with_prior"))
    queries, histories_of = np.array([0, 1, 2, 7], np.int64), latest[[0, 1, 2, 7]].copy()
    histories_of[0] = 0
    plain = loaded.score(tf.constant(queries), tf.constant(histories_of)).numpy()
    added = with_prior.score(tf.constant(queries), tf.constant(histories_of)).numpy() - plain
    np.testing.assert_allclose(added[:, 1:], prior[[1, 0, 0, 0]][:, 1:], atol=1e-3)


class _ScriptedEvaluator:
    """Returns the given validation ndcg values in turn and notes the weights each was measured on."""

    def __init__(self, model, values):
        self.model, self.values, self.weights = model, list(values), []

    def evaluate(self, score_fn, ks):
        score_fn(np.array([1, 2]))  # the callback's scorer runs on the current weights
        self.weights.append([w.copy() for w in self.model.get_weights()])
        return {"ndcg@10": self.values.pop(0)}


def test_early_stopping_on_validation_ndcg_keeps_the_best_epoch(toy):
    config = dataclasses.replace(TINY, epochs=10, patience=2)
    model = _model(toy, config)
    _, latest = histories(toy.splits["train"], toy.num_users, config.history)
    evaluator = _ScriptedEvaluator(model, [0.1, 0.3, 0.2, 0.25, 0.9, 0.9])
    curves = student_training.fit(model, rows_for(toy), latest, validation=evaluator)
    assert curves["val_ndcg@10"] == [0.1, 0.3, 0.2, 0.25] and curves["best_epoch"] == 2  # stopped after 2 worse
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), evaluator.weights[1]))


def test_an_item_without_training_interactions_is_its_features_alone(toy):
    known = student.known_items(toy)
    expected = np.bincount(np.concatenate([toy.splits["train"].item, toy.splits["eval"].item]),
                           minlength=toy.num_items) > 0
    expected[0] = False
    assert np.array_equal(known, expected)
    known = known.copy()
    known[[2, 5]] = False  # as if items 2 and 5 were held out
    model = _model(toy, known_items=known)
    items = tf.constant([2, 3, 5], tf.int64)
    vectors = model.candidate_tower(items).numpy()  # builds the weights
    ids = model.candidate_tower.id_embedding.get_weights()[0]
    features = model.candidate_tower.features(items).numpy()
    assert np.allclose(vectors[[0, 2]], features[[0, 2]])  # no id vector
    assert np.allclose(vectors[1], features[1] + ids[3])
    assert np.allclose(model.all_items().numpy()[[2, 5]], features[[0, 2]])  # the ranking and the export's kernel


def test_item_id_dropout_leaves_out_ids_in_training_only(toy):
    model = _model(toy, dataclasses.replace(TINY, item_id_dropout=0.5))
    items = tf.constant(np.tile(np.arange(1, toy.num_items), 20), tf.int64)
    tower = model.candidate_tower
    trained = tower(items, training=True).numpy()
    ids = tf.gather(tower.id_embedding.get_weights()[0], items).numpy()
    features = tower.features(items).numpy()
    dropped = np.all(np.isclose(trained, features, atol=1e-6), axis=1)
    kept = np.all(np.isclose(trained, features + ids, atol=1e-6), axis=1)
    assert np.all(dropped | kept) and 0.4 < dropped.mean() < 0.6
    assert np.allclose(tower(items, training=False).numpy(), features + ids)  # ranking: every known id
    with pytest.raises(ValueError, match="item_id_dropout"):
        student.StudentConfig(item_id_dropout=1.0)

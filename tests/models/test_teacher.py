"""The teacher on a tiny random BERT: its parts by hand, it learns, and its SavedModel answers like Keras."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from models import (ease, interaction_data, teacher, teacher_objectives, teacher_parts, teacher_training,
                    text_encoder)
from models.retrieval_metrics import split_evaluator
from models.teacher_objectives import Cloze, MatchWide

TINY = dict(dim=8, layers=2, heads=2, intermediate=16, sequence=4, history=6, batch_size=16, learning_rate=1e-2,
            cloze=Cloze(wide_scale=5.0))


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
    out = teacher_parts.normalize_text(raw)
    centred = raw[1:] - raw[1:].mean(axis=0)
    assert np.allclose(out[0], 0) and np.allclose(out[1:], centred / np.linalg.norm(centred, axis=1, keepdims=True))


def test_weighted_rows_by_hand():
    history = np.array([[3, 1, 0], [2, 0, 0]])
    rows = teacher_parts.weighted_rows(history, 5, half_life=1.0)
    assert rows.tolist() == [[0, 0.5, 0, 1, 0], [0, 0, 1, 0, 0]]
    assert teacher_parts.weighted_rows(history, 5, None).tolist() == [[0, 1, 0, 1, 0], [0, 0, 1, 0, 0]]


@pytest.mark.parametrize("settings, bad, message", [
    (teacher.TeacherConfig, {"dim": 0}, "dim must be a positive integer"),
    (teacher.TeacherConfig, {"dim": 9, "heads": 2}, "multiple of heads"),
    (teacher.TeacherConfig, {"l2": -1.0}, "l2 must be positive"),
    (teacher.TeacherConfig, {"sequence": 20, "history": 10}, "must not exceed history"),
    (teacher.TeacherConfig, {"half_life": 0.0}, r"^teacher half_life must be a positive number of items, picked or"),
    (teacher.TeacherConfig, {"half_life": "soon"}, "half_life must be a positive number of items, picked or none"),
    (teacher.TeacherConfig, {"half_life": -1.0}, r"^teacher half_life -1 \(picked on eval\) is now half_life: picked$"),
    (teacher.TeacherConfig, {"half_life": None}, r"^teacher half_life null \(no decay\) is now half_life: none$"),
    (teacher.TeacherConfig, {"objective": "mlm"}, "objective must be one of"),
    (teacher.TeacherConfig, {"cloze": {"mask_share": 0.5}}, "teacher cloze must be a mapping of its settings"),
    (teacher.TeacherConfig, {"refit": "yes"}, "refit must be one of"),
    (teacher.TeacherConfig, {"refit_epochs": 0}, "refit_epochs"),
    (teacher.TeacherConfig, {"min_epochs": -1}, "min_epochs"),
    (teacher.TeacherConfig, {"max_epoch_users": 0}, "max_epoch_users"),
    (teacher.TeacherConfig, {"validation_users": 0}, "validation_users"),
    (teacher.TeacherConfig, {"distribute": "tpu"},
     "teacher distribute must be one of default, mirrored, multi_worker_mirrored, got 'tpu'"),
    (teacher.TeacherConfig, {"mixed_precision": "yes"}, "teacher mixed_precision must be true or false, got 'yes'"),
    (MatchWide, {"deep_weight": -0.5}, r"^teacher match_wide\.deep_weight must be a number >= 0 or null"),
    (Cloze, {"mask_share": 1.0}, r"^teacher cloze\.mask_share must be in \[0, 1\), got 1\.0$"),
    (Cloze, {"future_share": -0.1}, r"^teacher cloze\.future_share must be in \[0, 1\)"),
    (Cloze, {"wide_scale": 0.0}, r"^teacher cloze\.wide_scale must be positive")])
def test_bad_settings_are_one_line_errors(settings, bad, message):
    with pytest.raises(ValueError, match=message):
        settings(**bad)


def test_half_life_is_a_number_or_picked_or_none():
    assert teacher.TeacherConfig().half_life is teacher.HalfLife.PICKED
    assert teacher.TeacherConfig(half_life="none").half_life is teacher.HalfLife.NONE  # as YAML writes it
    assert teacher.TeacherConfig(half_life=30).half_life == 30
    assert [teacher.TeacherConfig(half_life=h).unpicked_half_life() for h in ("picked", "none", 30.0)] == \
        [None, None, 30.0]


def test_the_objective_named_is_the_one_chosen():
    config = teacher.TeacherConfig(objective="cloze", cloze=Cloze(gate=0.5), match_wide=MatchWide(deep_weight=1.0))
    assert config.chosen_objective == Cloze(gate=0.5)
    assert teacher.TeacherConfig(match_wide=MatchWide(deep_weight=1.0)).chosen_objective == MatchWide(1.0)


def test_corrupted_batch_holds_out_what_it_predicts():
    objective = Cloze(mask_share=0.5, future_share=0.5)
    latest = np.array([[0] * 6, [5, 4, 3, 2, 1, 0]])
    rng = np.random.default_rng(0)
    for _ in range(20):
        (inputs, targets, cloze, rows), (users, masked) = objective.batch(latest, np.array([1]), 4, 7, rng, None)
        assert users == 1 and masked == max(int((cloze > 0).sum()), 1)
        assert inputs[0, 0] == 7  # position 0 is the [MASK] query
        held_out = set(np.flatnonzero(targets[0]).tolist())
        in_sequence = set(inputs[0, 1:].tolist()) - {0, 7}  # the encoder reads 4 of the 5 at most
        visible = set(np.flatnonzero(rows[0]).tolist())  # the wide part reads the whole history
        # The query predicts exactly the items neither part sees; masked positions their own item.
        assert held_out | visible == {1, 2, 3, 4, 5} and not held_out & visible and in_sequence <= visible
        assert all(inputs[0, p] == 7 for p in np.flatnonzero(cloze[0]))


def _fit(toy, epochs, validate=True, quiet=True, known_items=None, **overrides):
    encoder = text_encoder.tiny_random(sorted({w for t in toy.item_texts for w in t.split()}))
    config = teacher.TeacherConfig(**{**TINY, "epochs": epochs, "patience": epochs, **overrides})
    train = toy.splits["train"]
    _, latest = interaction_data.histories(train, toy.num_users, config.history)
    weights = ease.EaseModel(toy.num_items, 10.0).fit(train.user, train.item, toy.num_users).weights
    model = teacher.build_teacher(encoder.encode(toy.item_texts), weights, None, config, known_items)
    evaluator = split_evaluator(toy, ["train"], "eval") if validate else None
    history = teacher_training.fit(model, latest, evaluator, config, None,
                                   **({"log": lambda line: None} if quiet else {}))
    return model, history, latest, config, encoder


@pytest.mark.slow  # trains, then two more epochs (~8 s)
def test_an_epoch_draws_max_epoch_users_users_afresh_each_epoch(toy):
    """Above max_epoch_users, each epoch trains on a new random draw of that many users (each once);
    and an item marked as without interactions gets no id vector and no gradient."""
    from unittest import mock

    unknown = int(toy.splits["train"].item[0])
    known = np.ones(toy.num_items, bool)
    known[unknown] = False

    drawn = []
    original = MatchWide.batch

    def record(self, latest, users, *args):
        if drawn:
            drawn[-1].extend(users.tolist())
        return original(self, latest, users, *args)

    with mock.patch.object(MatchWide, "batch", record):
        model, _, latest, config, encoder = _fit(toy, 1, validate=False, known_items=known, max_epoch_users=10)
        epoch = teacher_training.train_steps(model, config, None)
        rng = np.random.default_rng(0)
        drawn.clear()
        for _ in range(2):
            drawn.append([])
            epoch(latest, rng)
    with_history = set(np.flatnonzero(latest[:, 0] > 0).tolist())
    assert len(with_history) > 10
    for users in drawn:
        assert len(users) == len(set(users)) == 10 and set(users) <= with_history
    assert set(drawn[0]) != set(drawn[1])
    # the unknown item: v_i = W . text(i) alone, and neither its id vector nor its bias moved
    text_part = model.text_proj(tf.gather(model.text, [unknown])).numpy()[0]
    assert np.allclose(model.item_vectors(tf.constant([unknown])).numpy()[0], text_part)
    weights = ease.EaseModel(toy.num_items, 10.0).fit(toy.splits["train"].user, toy.splits["train"].item,
                                                      toy.num_users).weights
    initial = teacher.build_teacher(encoder.encode(toy.item_texts), weights, None, config, known)  # same seed
    trained = int(toy.splits["train"].item[toy.splits["train"].item != unknown][0])
    assert np.array_equal(model.item_id.get_weights()[0][unknown], initial.item_id.get_weights()[0][unknown])
    assert not np.array_equal(model.item_id.get_weights()[0][trained], initial.item_id.get_weights()[0][trained])
    assert float(np.asarray(model.out_bias)[unknown]) == 0.0


def _z(rows):
    """numpy twin of teacher.standardize."""
    real = rows[:, 1:]
    return np.concatenate([np.zeros([len(rows), 1]), (real - real.mean(1, keepdims=True)) / real.std(1, keepdims=True)],
                          axis=1)


def test_standardize_against_numpy():
    rows = np.random.default_rng(0).normal(size=[4, 9]).astype(np.float32)
    rows[2] = 3.0  # no spread: all 0, not NaN
    got = np.asarray(teacher_parts.standardize(tf.constant(rows)))
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
    scale = 5.0 if objective == "cloze" else MatchWide.WIDE_SCALE
    expected = scale * ease.EaseModel(toy.num_items, 10.0).fit(train.user, train.item, toy.num_users).score(users)
    if objective == "match_wide":  # ranks by the standardised scores
        expected = _z(expected.astype(np.float64))
    got = np.asarray(model.rank(latest[users]))
    assert np.allclose(got[:, 1:], expected[:, 1:], atol=1e-4) and np.all(got[:, 0] < -1e8)


@pytest.mark.parametrize("objective", [MatchWide(deep_weight=0.5), Cloze(wide_scale=3.0, gate=0.25)])
def test_each_objective_ranks_as_numpy_says(objective):
    """An untrained tiny teacher: its wide part against numpy (recency weights by hand), and each
    objective's ranking of the two parts; only cloze trains the two scalar weights."""
    rng = np.random.default_rng(1)
    num_items, half_life = 9, 2.0
    wide = rng.normal(size=[num_items, num_items]).astype(np.float32)
    name = "match_wide" if isinstance(objective, MatchWide) else "cloze"
    config = teacher.TeacherConfig(**{**TINY, "objective": name, name: objective})
    model = teacher.build_teacher(rng.normal(size=[num_items, 5]).astype(np.float32), wide, half_life, config)
    latest = np.array([[3, 1, 4, 0, 0, 0], [8, 2, 7, 5, 6, 1]], np.int64)
    rows = np.zeros([len(latest), num_items])
    for b, r in zip(*np.nonzero(latest)):
        rows[b, latest[b, r]] = 0.5 ** (r / half_life)
    scale = objective.wide_scale if name == "cloze" else MatchWide.WIDE_SCALE
    wide_scores = scale * rows @ wide.astype(np.float64)
    got_wide, got_deep = (np.asarray(part, np.float64) for part in model.rank_parts(latest))
    assert np.allclose(got_wide, wide_scores, rtol=1e-5, atol=1e-4)
    if name == "match_wide":
        expected = _z(wide_scores) + 0.5 * _z(got_deep)
    else:
        expected = wide_scores + 0.25 * got_deep
    got = np.asarray(model.rank(latest))
    assert np.allclose(got[:, 1:], expected[:, 1:], atol=1e-4) and np.all(got[:, 0] < -1e8)
    trained = {v.name for v in model.trainable_variables} & {"wide_scale", "gate"}
    assert trained == ({"wide_scale", "gate"} if name == "cloze" else set())


@pytest.mark.slow  # 15 epochs (~7 s)
def test_cloze_teacher_learns_the_clusters(toy):
    model, history, latest, _, _ = _fit(toy, 15, objective="cloze", cloze=Cloze(wide_scale=0.01, gate=1.0))
    assert history["loss"][-1] < 0.9 * history["loss"][0]
    assert max(history["val_ndcg@10"]) > history["val_ndcg@10"][0]  # better than untrained, on eval
    users = np.arange(1, toy.num_users)
    scores = np.asarray(model.rank(latest[users]))
    top = np.argsort(-scores, axis=1)[:, :5]
    # Items of the user's own cluster (index mod 3) dominate the top 5; chance is one third.
    assert np.mean(top % 3 == (users % 3)[:, None]) > 0.65
    assert np.all(scores[:, 0] < -1e8)  # index 0 (unknown) is never recommended


@pytest.mark.slow  # 41 epochs (~16 s)
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
    assert history["deep_weight"] == teacher_objectives.DEFAULT_DEEP_WEIGHT == float(np.asarray(model.deep_weight))


@pytest.mark.slow  # 4 validated epochs (~8 s)
def test_match_wide_picks_the_deep_weight_on_validation(toy):
    model, history, latest, _, _ = _fit(toy, 4, min_epochs=0)
    assert history["deep_weight"] in teacher_objectives.DEEP_WEIGHT_GRID
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


@pytest.mark.slow  # 3 epochs and three refits (~30 s)
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


@pytest.mark.slow  # a teacher, its refit and a SavedModel export (~28 s)
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


@pytest.mark.slow  # three trainings (~30 s)
def test_one_replica_strategies_and_mixed_precision_without_gpu_train_as_default(toy, caplog):
    """"mirrored" on this CPU (one replica) and mixed_precision without a GPU (ignored, float32)
    follow the default training's loss curve; progress lines go to the "recdistill.progress" logger."""
    import keras

    users = np.arange(1, toy.num_users)
    default, expected, latest, _, _ = _fit(toy, 2, validate=False, objective="cloze")
    ranked = np.asarray(default.rank(latest[users]))
    mirrored, history, _, _, _ = _fit(toy, 2, validate=False, objective="cloze", distribute="mirrored")
    assert isinstance(mirrored.distribute_strategy, tf.distribute.MirroredStrategy)
    assert mirrored.distribute_strategy.num_replicas_in_sync == 1
    assert np.allclose(history["loss"], expected["loss"], atol=1e-5, rtol=0)
    assert np.allclose(np.asarray(mirrored.rank(latest[users])), ranked, atol=1e-5)

    with caplog.at_level("INFO"):
        mixed, history, _, _, _ = _fit(toy, 2, validate=False, quiet=False, objective="cloze", mixed_precision=True)
    assert "mixed_precision ignored: no GPU" in caplog.text
    assert mixed.compute_dtype == "float32" and keras.config.dtype_policy().name == "float32"
    assert history["loss"] == expected["loss"]
    scores = mixed.rank(latest[users])
    assert scores.dtype == tf.float32 and np.array_equal(np.asarray(scores), ranked)
    progress = [r.getMessage() for r in caplog.records if r.name == "recdistill.progress"]
    assert len(progress) == 2 and progress[0].startswith(f"teacher epoch 1: loss {expected['loss'][0]:.4f}, "
                                                         "validation ndcg@10 0.0000, ")
    assert all(r.levelname == "INFO" for r in caplog.records if r.name == "recdistill.progress")


@pytest.mark.slow  # float16 training on a CPU (~11 s)
def test_mixed_precision_on_a_gpu_computes_in_float16_and_scores_in_float32(toy):
    """What a GPU gets (its detection mocked: float16 runs on this CPU too, slowly): the encoder in
    float16 under a loss-scaled optimizer, the scores float32, the global policy restored after the
    build, and a float32 model after compute_in_float32 (what the export does)."""
    import keras
    from unittest import mock

    with mock.patch.object(teacher, "_has_gpu", return_value=True):
        model, history, latest, _, _ = _fit(toy, 2, validate=False, mixed_precision=True)
    assert keras.config.dtype_policy().name == "float32"  # the rest of the process is unaffected
    assert model.dtype_policy.name == "mixed_float16" and model.encoders[0].compute_dtype == "float16"
    users = np.arange(1, toy.num_users)
    history_rows = tf.constant(latest[users])
    assert model.deep_query(history_rows).dtype == tf.float16
    scores = model.rank(history_rows)
    assert scores.dtype == tf.float32 and np.all(np.isfinite(np.asarray(scores)))
    assert len(history["loss"]) == 2 and np.all(np.isfinite(history["loss"]))
    model.compute_in_float32()
    assert model.deep_query(history_rows).dtype == tf.float32
    assert np.allclose(np.asarray(model.rank(history_rows))[:, 1:], np.asarray(scores)[:, 1:], atol=0.05)


TWO_WORKERS = {"encoder": "tiny", "teacher": {**TINY, "layers": 1, "epochs": 2, "patience": 2, "min_epochs": 0,
                                              "refit_epochs": 1, "l2": 10.0, "half_life": "none",
                                              "distribute": "multi_worker_mirrored"}}


def train_teacher_worker(dataset_path: str, out_dir: str):
    """In a worker of tests/harness/local_workers.py: the teacher component's training of a saved dataset."""
    from models import distribute

    distribute.strategy_for("multi_worker_mirrored")  # what an entry point does first (models/distribute.py)
    from components.teacher import training

    summary = training.fit_and_export(interaction_data.load_dataset(dataset_path), out_dir, TWO_WORKERS)
    return {**{key: summary[key] for key in ("loss", "distribute", "best_epoch", "deep_weight")},
            "refit_loss": summary["refit"]["loss"]}


@pytest.mark.slow  # two worker processes (~33 s)
def test_two_workers_train_one_teacher_and_the_chief_writes_it(toy, tmp_path):
    from tests.harness import local_workers

    interaction_data.save_dataset(toy, str(tmp_path / "dataset.npz"))
    chief, other = (r.value for r in local_workers.run_workers(
        train_teacher_worker, count=2, args=(str(tmp_path / "dataset.npz"), str(tmp_path / "teacher")), timeout=300))
    assert chief == other  # synchronous: the same losses, refit and picks on both workers
    assert chief["distribute"] == {"strategy": "multi_worker_mirrored", "replicas": 2, "workers": 2}
    assert len(chief["loss"]) == 2 and len(chief["refit_loss"]) == 1
    # Worker 1 wrote into a temporary directory, gone; the chief's SavedModel answers.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset.npz", "teacher"]
    loaded = tf.saved_model.load(str(tmp_path / "teacher" / "Format-Serving"))
    scores = loaded.score(tf.constant([1, 2], tf.int64), tf.zeros([2, TINY["history"]], tf.int64))
    assert scores.dtype == tf.float32 and scores.shape == (2, toy.num_items)

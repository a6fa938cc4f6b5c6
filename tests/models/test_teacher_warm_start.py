"""A teacher started from an earlier one (models/teacher_warm_start.py): the encoder's weights as
they were, every known item's row found by id wherever its index moved, new items left to their
own start; another architecture is refused; and the component's choice of where to start."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from components.teacher.training import SERVED, warm_source
from models import artifacts, teacher, teacher_warm_start
from models.teacher_objectives import Cloze

TINY = teacher.TeacherConfig(dim=8, layers=2, heads=2, intermediate=16, sequence=4, history=6, use_text=False,
                             cloze=Cloze(wide_scale=5.0))


def _built(config, num_items):
    return teacher.build_teacher(np.zeros([num_items, 6], np.float32), np.zeros([num_items, num_items], np.float32),
                                 None, config)


def _deep(model, history):
    return model.deep_logits(model.deep_query(tf.constant([history], tf.int64))).numpy()[0]


def test_the_encoder_and_the_known_items_rows_carry_over_by_id(tmp_path):
    earlier = _built(TINY, 4)  # items "", a, b, c
    rng = np.random.default_rng(0)
    for variable in earlier.trainable_variables:  # trained weights, not the initial ones
        variable.assign(rng.normal(0, 0.3, variable.shape).astype(np.float32))
    path = str(tmp_path / artifacts.TEACHER_WEIGHTS_FILE)
    teacher_warm_start.save(earlier, path)

    later = _built(dataclasses.replace(TINY, seed=7), 4)  # items "", c, d, a: b left, d is new
    new_row = np.asarray(later.item_id.embeddings)[2].copy()
    kept = teacher_warm_start.restore(later, path, ["", "a", "b", "c"], ["", "c", "d", "a"])
    # every trainable weight but the two item-indexed ones, then the objective's two scalars
    assert kept == {"weights": len(later.trainable_variables) - 2 + 2, "items_kept": 2, "items_new": 1}
    rows, before = np.asarray(later.item_id.embeddings), np.asarray(earlier.item_id.embeddings)
    assert np.array_equal(rows[1], before[3]) and np.array_equal(rows[3], before[1])  # c and a, by id
    assert np.array_equal(rows[2], new_row)  # d keeps its own start
    assert np.array_equal(rows[-1], before[-1])  # the [MASK] token
    assert np.array_equal(np.asarray(later.out_bias)[[1, 3]], np.asarray(earlier.out_bias)[[3, 1]])
    # The encoder answers the same history the same: a user who saw a then c, in either index space.
    assert np.allclose(_deep(later, [3, 1])[[1, 3]], _deep(earlier, [1, 3])[[3, 1]], atol=1e-5)


def test_another_architecture_is_refused(tmp_path):
    path = str(tmp_path / artifacts.TEACHER_WEIGHTS_FILE)
    teacher_warm_start.save(_built(TINY, 4), path)
    with pytest.raises(teacher_warm_start.ArchitectureChanged, match="another number of layers"):
        teacher_warm_start.restore(_built(dataclasses.replace(TINY, layers=1), 4), path, ["", "a", "b", "c"],
                                   ["", "a", "b", "c"])
    with pytest.raises(teacher_warm_start.ArchitectureChanged, match="another width"):
        teacher_warm_start.restore(_built(dataclasses.replace(TINY, dim=12, heads=2), 4), path,
                                   ["", "a", "b", "c"], ["", "a", "b", "c"])


def test_where_a_teacher_starts_from(tmp_path):
    blessed = tmp_path / "blessed"
    blessed.mkdir()
    assert warm_source(None, None, "")["reason"] == "from scratch: no drift check (the data is not in spans)"
    # a retrain after drift still names the served model (its text vectors and compression setting)
    assert warm_source(str(blessed), "scratch", "drift: item_genres L-infinity 0.13 > 0.05") == \
        {"from": None, "reason": "from scratch: drift: item_genres L-infinity 0.13 > 0.05", SERVED: str(blessed)}
    assert warm_source(None, "warm", "no drift")["reason"] == "from scratch: no blessed model to start from yet"
    assert "carries no teacher weights" in warm_source(str(blessed), "warm", "no drift")["reason"]
    (blessed / artifacts.TEACHER_WEIGHTS_FILE).write_bytes(b"")
    assert warm_source(str(blessed), "warm", "no drift") == \
        {"from": str(blessed), "reason": "warm start from the last blessed run: no drift", SERVED: str(blessed)}


def test_warm_start_settings_shorten_phase_one_only():
    config = teacher.TeacherConfig(warm_start=teacher_warm_start.WarmStart(epochs=7, min_epochs=2, patience=3,
                                                                           refit_epochs=4))
    phase_one = config.warm_start.applied_to(config)
    assert (phase_one.epochs, phase_one.min_epochs, phase_one.patience, phase_one.refit_epochs) == (7, 2, 3, 4)
    assert dataclasses.replace(phase_one, epochs=60, min_epochs=40, patience=10, refit_epochs=10) == config
    short = teacher.TeacherConfig(epochs=3, min_epochs=1, patience=2)  # never longer than from scratch
    assert short.warm_start.applied_to(short).epochs == 3 and short.warm_start.applied_to(short).patience == 2
    with pytest.raises(ValueError, match="teacher warm_start.epochs must be an integer >= 1"):
        teacher_warm_start.WarmStart(epochs=0)
    assert teacher_warm_start.WarmStart().phase_one is False
    with pytest.raises(ValueError, match="teacher warm_start.phase_one must be true or false"):
        teacher_warm_start.WarmStart(phase_one="no")


@pytest.mark.slow  # two tiny teachers trained, then scored on Beam (about 20 s)
def test_a_warm_teacher_starts_from_the_earlier_one_and_trains_the_newest_span_for_fewer_epochs(
        toy, tmp_path, monkeypatch):
    import apache_beam as beam

    from components.teacher import scoring, training
    from models import teacher_objectives

    trained_users = []  # the users of every epoch, as the objective orders them
    order = teacher_objectives.MatchWide.order
    monkeypatch.setattr(teacher_objectives.MatchWide, "order",
                        lambda self, users, *args: trained_users.append(set(users.tolist())) or order(self, users, *args))
    settings = {"encoder": "tiny", "text_length": 16,
                "teacher": {"dim": 8, "layers": 1, "intermediate": 16, "sequence": 5, "history": 5, "epochs": 3,
                            "min_epochs": 3, "batch_size": 32, "warm_start": {"epochs": 1, "patience": 1}}}
    first = training.fit_and_export(toy, str(tmp_path / "first"), settings)
    assert first["warm_start"] == {"from": None, "reason": "from scratch"} and first["epochs"] == 3
    everyone = set(np.unique(toy.splits["train"].user).tolist())
    assert trained_users[0] == everyone
    # "first" stands for the blessed model: it holds the teacher's weights and dataset, as the
    # Trainers' copies there do. The toy's timestamps are 1000 x user + k: the "newest span" from
    # 20,000 on holds users 20-39, each with 5 train rows and 1 eval row.
    trained_users.clear()
    warm = training.warm_source(str(tmp_path / "first"), "warm", "no drift")
    config = teacher.TeacherConfig()
    # Only students that go on from the served ones learn from the newest span's rows alone: without
    # their weights beside the teacher's, every user and row is trained.
    assert training._trained_users(toy, warm, config, 20_000) == ({"train": None, "final": None}, warm)
    for name in (artifacts.STUDENT_WEIGHTS_FILE, artifacts.FEATURES_FILE):  # what the blessed model carries
        (tmp_path / "first" / name).write_bytes(b"")
    masks, _ = training._trained_users(toy, warm, config, 20_000)
    np.testing.assert_array_equal(np.flatnonzero(masks["train"]), np.arange(20, 40))
    with_phase_one = {**settings, "teacher": {**settings["teacher"],
                                              "warm_start": {"epochs": 1, "patience": 1, "phase_one": True}}}
    second = training.fit_and_export(toy, str(tmp_path / "second"), with_phase_one, warm=warm,
                                     newest_span_from=20_000)
    assert second[training.PHASE_ONE] is True
    assert second["warm_start"]["from"] == str(tmp_path / "first")
    assert second["warm_start"]["items_kept"] == toy.num_items - 1 and second["warm_start"]["items_new"] == 0
    assert second["epochs"] == 1  # teacher.warm_start.epochs
    assert (tmp_path / "second" / artifacts.TEACHER_WEIGHTS_FILE).exists()
    # the same texts and the same (tiny) encoder: every item's text vector comes from the first run
    assert (first["texts_reused"], second["texts_reused"], second["texts_encoded"]) == (0, toy.num_items, 0)
    newest = set(range(20, 40))
    assert second["warm_start"][training.ROWS_FROM] == 20_000
    assert second["warm_start"]["users_trained"] == 20
    assert second["warm_start"]["rows_trained"] == {"train": 20 * 5, "final": 20 * 6}
    assert trained_users == [newest] * len(trained_users) and len(trained_users) == 1 + 5  # phase one, refit_epochs

    # The scorer scores the newest span's rows alone, each under its position among all the rows.
    with beam.Pipeline() as p:
        scoring.score_training_rows(p, str(tmp_path / "second"), str(tmp_path / "scored"), 4, seed=7)
    for split, rows in (("train", toy.splits["train"]), ("final", training.latest_split(toy))):
        scored = _scored(str(tmp_path / "scored"), split)
        assert sorted(scored) == np.flatnonzero(rows.timestamp >= 20_000).tolist()
        assert all(scored[r] == (rows.user[r], rows.item[r]) for r in scored)
        assert scoring.read_stats(str(tmp_path / "scored"))["splits"][split]["rows"] == len(scored)

    # Without phase one (the default): the teacher goes on from the served one on the newest span's
    # train + eval histories for warm_start.refit_epochs, ranks with the deep weight the served one
    # saved, exports it for both endpoints, and the scorer writes Split-final alone.
    trained_users.clear()
    direct = {**settings, "teacher": {**settings["teacher"], "warm_start": {"refit_epochs": 2}}}
    fourth = training.fit_and_export(toy, str(tmp_path / "fourth"), direct, warm=warm, newest_span_from=20_000)
    assert fourth[training.PHASE_ONE] is False and fourth["epochs"] == 0 and fourth["refit"]["epochs"] == 2
    assert trained_users == [newest, newest]
    assert fourth["deep_weight"] == pytest.approx(first["deep_weight"], rel=1e-6)
    with beam.Pipeline() as p:
        scoring.score_training_rows(p, str(tmp_path / "fourth"), str(tmp_path / "scored4"), 4, seed=7)
    assert list((tmp_path / "scored4" / "Split-train").iterdir()) == []  # named by the artifact, left empty
    assert list(scoring.read_stats(str(tmp_path / "scored4"))["splits"]) == ["final"]
    final_rows = training.latest_split(toy)
    assert sorted(_scored(str(tmp_path / "scored4"), "final")) == np.flatnonzero(final_rows.timestamp >= 20_000).tolist()
    exported = tf.saved_model.load(str(tmp_path / "fourth" / artifacts.SAVED_MODEL_DIR))
    users = tf.constant([20, 21], tf.int64)
    histories = tf.constant(training.latest_histories(toy, 5)[[20, 21]])
    np.testing.assert_array_equal(exported.score(users, histories).numpy(),
                                  exported.score_train(users, histories).numpy())
    assert scoring.scored_splits(str(tmp_path / "fourth")) == ("final",)
    assert scoring.scored_splits(str(tmp_path / "second")) == scoring.SCORED_SPLITS

    # A retrain from scratch after drift: its weights start afresh, the text vectors come from the served run.
    scratch = {"from": None, "reason": "from scratch: drift", training.SERVED: str(tmp_path / "first")}
    encoder = training.encoder_for(training.trainer_settings(settings), toy)
    vectors, reused = training.item_text_vectors(encoder, toy, scratch)
    assert reused == toy.num_items
    np.testing.assert_array_equal(vectors, np.load(tmp_path / "first" / artifacts.ITEM_TEXT_FILE))
    assert training.item_text_vectors(encoder, toy, {"from": None, "reason": "from scratch"})[1] == 0

    # warm_start.data "window": every user, as from scratch.
    trained_users.clear()
    window = {**settings, "teacher": {**settings["teacher"], "warm_start": {"epochs": 1, "patience": 1,
                                                                            "phase_one": True, "data": "window"}}}
    third = training.fit_and_export(toy, str(tmp_path / "third"), window, warm=warm, newest_span_from=20_000)
    assert training.ROWS_FROM not in third["warm_start"] and trained_users[0] == everyone


def _scored(directory, split):
    """{row: (user, item)} of a scored split."""
    import glob
    import os

    files = glob.glob(os.path.join(directory, f"Split-{split}", "*.gz"))
    out = {}
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy()).features.feature
        out[example["row"].int64_list.value[0]] = (example["user_index"].int64_list.value[0],
                                                   example["item_index"].int64_list.value[0])
    return out

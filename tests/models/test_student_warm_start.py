"""Students started from an earlier run's (models/student_warm_start.py): id rows found by id, feature
rows by value through both vocabularies (a hashed feature's bins by their most frequent value), new
ids at zero, a feature without vocabularies afresh, another architecture refused; and the StudentTrainer's choice of where to start (components/student/distill.py)."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from components.student import distill
from components.teacher.training import SERVED
from models import artifacts, student, student_warm_start
from models.foundation import storage

CONFIG = student.StudentConfig(dim=4, history=3, max_feature_bins=4, user_rank=None)  # a plain user table


def _model(users, items, genre_values, config=CONFIG, title_values=6, seed=0):
    """A student over `users` and `items` (ids, index 0 ""): a genre feature with a vocabulary
    (index = value's position + 1), a title feature hashed (more values than max_feature_bins)."""
    genres = np.zeros((len(items), 1), np.int64)
    genres[1:, 0] = np.arange(1, len(items)) % len(genre_values) + 1
    tables = {"user": {}, "item": {"item_genres_indices": genres,
                                   "item_title_tokens": np.arange(len(items))[:, None] % title_values},
              "size": {"item_genres_indices": len(genre_values) + 1, "item_title_tokens": title_values}}
    tf.keras.utils.set_random_seed(seed)
    model = student.StudentModel(len(users), len(items), tables, dataclasses.replace(config, seed=seed))
    student_warm_start.build_variables(model)
    return model


def _trained(model, seed=1):
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        variable.assign(rng.normal(0, 0.5, variable.shape).astype(np.float32))
    return model


def test_rows_move_with_their_ids_and_values(tmp_path):
    earlier_users, earlier_items, earlier_genres = ["", "u1", "u2"], ["", "a", "b", "c"], ["drama", "comedy"]
    earlier = _trained(_model(earlier_users, earlier_items, earlier_genres))
    path = str(tmp_path / artifacts.STUDENT_WEIGHTS_FILE)
    student_warm_start.save({"student_kd": earlier}, path)

    users, items, genres = ["", "u3", "u2", "u1"], ["", "c", "d", "a"], ["comedy", "horror", "drama"]
    later = _model(users, items, genres, seed=5)
    fresh_genres = np.asarray(later.candidate_tower.feature_embeddings[0].embedding.embeddings).copy()
    fresh_titles = np.asarray(later.candidate_tower.feature_embeddings[1].embedding.embeddings).copy()
    kept = student_warm_start.restore(later, storage.load_npz(path), "student_kd",
                                      {"users": earlier_users, "items": earlier_items},
                                      {"users": users, "items": items}, {"item_genres_indices": np.array(earlier_genres)},
                                      {"item_genres_indices": np.array(genres)})
    assert (kept["items_kept"], kept["items_new"], kept["users_kept"], kept["users_new"]) == (2, 1, 2, 1)
    assert kept["features_kept"] == ["item_genres_indices"] and kept["features_fresh"] == ["item_title_tokens"]

    old_items = np.asarray(earlier.candidate_tower.id_embedding.embeddings)
    new_items = np.asarray(later.candidate_tower.id_embedding.embeddings)
    # "" keeps its row, c (3 -> 1) and a (1 -> 3) moved with their ids, d (new) starts at zero
    np.testing.assert_array_equal(new_items[[0, 1, 3]], old_items[[0, 3, 1]])
    np.testing.assert_array_equal(new_items[2], np.zeros(4))
    old_users = np.asarray(earlier.query_tower.id_embedding.embeddings)
    new_users = np.asarray(later.query_tower.id_embedding.embeddings)
    np.testing.assert_array_equal(new_users[[0, 2, 3]], old_users[[0, 2, 1]])
    np.testing.assert_array_equal(new_users[1], np.zeros(4))
    # genres by value: comedy 2 -> 1, drama 1 -> 3; horror (new) keeps its fresh row; 0 (padding) carried
    old_genres = np.asarray(earlier.candidate_tower.feature_embeddings[0].embedding.embeddings)
    new_genres = np.asarray(later.candidate_tower.feature_embeddings[0].embedding.embeddings)
    np.testing.assert_array_equal(new_genres[[0, 1, 3]], old_genres[[0, 2, 1]])
    np.testing.assert_array_equal(new_genres[2], fresh_genres[2])
    # the hashed title tokens without vocabularies (which value a bin holds is unknown): the fresh start stays
    np.testing.assert_array_equal(np.asarray(later.candidate_tower.feature_embeddings[1].embedding.embeddings),
                                  fresh_titles)
    # u2 with history [c] scores a (index 3, genre index 1: comedy) as the earlier rows say
    score = later.score(tf.constant([2], tf.int64), tf.constant([[1, 0, 0]], tf.int64)).numpy()[0, 3]
    query = old_users[2] + old_items[3]
    titles = later.candidate_tower.feature_embeddings[1]  # hashed: its own (fresh) vector for title index 3
    candidate = old_items[1] + old_genres[2] + np.asarray(titles(tf.constant([3], tf.int64)))[0]
    np.testing.assert_allclose(score, query @ candidate, rtol=1e-5)


def test_a_hashed_feature_starts_each_bin_from_its_most_frequent_known_value(tmp_path):
    ids = {"users": ["", "u1"], "items": ["", "a", "b", "c"]}
    earlier_titles = np.array(["t1", "t2", "t3", "t4", "t5"])  # 5 values, 4 rows: hashed into bins 1-3
    earlier = _trained(_model(ids["users"], ids["items"], ["x"]))
    path = str(tmp_path / artifacts.STUDENT_WEIGHTS_FILE)
    student_warm_start.save({"student_kd": earlier}, path)
    titles = np.array(["t4", "new", "t2", "t1", "t5", "t3"])  # another order (frequency), one new value
    later = _model(ids["users"], ids["items"], ["x"], title_values=7, seed=5)
    fresh = np.asarray(later.candidate_tower.feature_embeddings[1].embedding.embeddings).copy()
    kept = student_warm_start.restore(later, storage.load_npz(path), "student_kd", ids, ids,
                                      {"item_title_tokens": earlier_titles}, {"item_title_tokens": titles})
    assert "item_title_tokens" in kept["features_kept"]

    def vector(model, vocabulary, value):  # what the model's title layer gives the value's index
        index = list(vocabulary).index(value) + 1
        return np.asarray(model.candidate_tower.feature_embeddings[1](tf.constant([index], tf.int64)))[0]

    def bin_of(model, vocabulary, value):
        layer = model.candidate_tower.feature_embeddings[1]
        return int(layer.hashing(tf.constant([list(vocabulary).index(value) + 1], tf.int64))[0]) + 1

    new_table = np.asarray(later.candidate_tower.feature_embeddings[1].embedding.embeddings)
    firsts = {}
    for value in titles:  # most frequent first: the first known value of each bin sets it
        if value in earlier_titles:
            firsts.setdefault(bin_of(later, titles, value), value)
    assert firsts  # the check below checks something
    for target, value in firsts.items():
        np.testing.assert_array_equal(vector(later, titles, value), vector(earlier, earlier_titles, value))
    for target in set(range(1, len(new_table))) - set(firsts):  # no known value: as initialized
        np.testing.assert_array_equal(new_table[target], fresh[target])
    np.testing.assert_array_equal(new_table[0], np.asarray(earlier.candidate_tower.feature_embeddings[1].embedding.embeddings)[0])


def test_another_width_or_table_set_is_refused(tmp_path):
    ids = {"users": ["", "u1"], "items": ["", "a", "b"]}
    path = str(tmp_path / artifacts.STUDENT_WEIGHTS_FILE)
    student_warm_start.save({"student_kd": _model(ids["users"], ids["items"], ["x"])}, path)
    wider = _model(ids["users"], ids["items"], ["x"], config=dataclasses.replace(CONFIG, dim=8))
    with pytest.raises(student_warm_start.ArchitectureChanged, match="dim"):
        student_warm_start.restore(wider, storage.load_npz(path), "student_kd", ids, ids, {}, {})
    unshared = _model(ids["users"], ids["items"], ["x"], config=dataclasses.replace(CONFIG, share_item_embeddings=False))
    with pytest.raises(student_warm_start.ArchitectureChanged, match="query/history"):
        student_warm_start.restore(unshared, storage.load_npz(path), "student_kd", ids, ids, {}, {})


def test_a_user_table_trained_as_two_factors_moves_its_codes_by_id(tmp_path):
    factored = dataclasses.replace(CONFIG, user_rank=2)
    earlier_users, items = ["", "u1", "u2"], ["", "a", "b"]
    earlier = _trained(_model(earlier_users, items, ["x"], config=factored))
    path = str(tmp_path / artifacts.STUDENT_WEIGHTS_FILE)
    student_warm_start.save({"student_kd": earlier}, path)
    users = ["", "u2", "u3", "u1"]
    later = _model(users, items, ["x"], config=factored, seed=5)
    kept = student_warm_start.restore(later, storage.load_npz(path), "student_kd",
                                      {"users": earlier_users, "items": items}, {"users": users, "items": items}, {}, {})
    assert (kept["users_kept"], kept["users_new"]) == (2, 1)
    old, new = earlier.query_tower.id_embedding, later.query_tower.id_embedding
    np.testing.assert_array_equal(np.asarray(new.codes.embeddings)[[0, 1, 3]], np.asarray(old.codes.embeddings)[[0, 2, 1]])
    np.testing.assert_array_equal(np.asarray(new.codes.embeddings)[2], np.zeros(2))  # u3 is new
    np.testing.assert_array_equal(np.asarray(new.up.kernel), np.asarray(old.up.kernel))  # not indexed: as it was
    # a plain table cannot start from the two factors (nor the other way round)
    plain = _model(users, items, ["x"])
    with pytest.raises(student_warm_start.ArchitectureChanged, match="query/id_up"):
        student_warm_start.restore(plain, storage.load_npz(path), "student_kd",
                                   {"users": earlier_users, "items": items}, {"users": users, "items": items}, {}, {})


def _teacher_dir(tmp_path, warm_start):
    teacher_dir = tmp_path / "teacher"
    teacher_dir.mkdir()
    (teacher_dir / artifacts.TRAINING_FILE).write_text(json.dumps({"warm_start": warm_start}))
    return str(teacher_dir)


def test_the_students_start_where_the_teacher_did(tmp_path):
    blessed = tmp_path / "blessed"
    blessed.mkdir()
    scratch = {"from": None, "reason": "from scratch: drift: item_genres L-infinity 0.12 > 0.05",
               SERVED: str(blessed)}  # the compression starts at the served model's setting
    assert distill.warm_source(_teacher_dir(tmp_path, scratch)) == scratch
    warm = {"from": str(blessed), "reason": "warm start from the last blessed run: no drift", SERVED: str(blessed)}
    (tmp_path / "teacher" / artifacts.TRAINING_FILE).write_text(json.dumps({"warm_start": warm}))
    assert distill.warm_source(str(tmp_path / "teacher")) == {
        "from": None, "reason": "from scratch: the last blessed model carries no student weights "
                                "(trained before the students warm-started)", SERVED: str(blessed)}
    for name in (artifacts.STUDENT_WEIGHTS_FILE, artifacts.FEATURES_FILE):
        (blessed / name).write_bytes(b"")
    assert distill.warm_source(str(tmp_path / "teacher")) == warm

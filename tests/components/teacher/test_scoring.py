"""Teacher scoring on Beam: fields, counts, negatives, agreement with the SavedModel, determinism."""

import glob
import os

import apache_beam as beam
import numpy as np
import tensorflow as tf

from components.teacher import scoring, training

NEGATIVES = 4


def _score(teacher_dir, out):
    with beam.Pipeline() as p:
        scoring.score_training_rows(p, teacher_dir, out, NEGATIVES, seed=7)
    return _read(out, "train")


def _read(out, split):
    files = glob.glob(os.path.join(out, f"Split-{split}", "*.gz"))
    rows = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    get = lambda e, k: list(getattr(e.features.feature[k], e.features.feature[k].WhichOneof("kind")).value)  # noqa: E731
    return {get(e, "row")[0]: {k: get(e, k) for k in ("user_index", "item_index", "candidates", "teacher_scores")}
            for e in rows}


def test_scoring(toy, tmp_path):
    settings = {"encoder": "tiny", "text_length": 16, "teacher": {"dim": 8, "history": 5, "epochs": 2, "batch_size": 32}}
    teacher_dir = str(tmp_path / "teacher")
    os.makedirs(teacher_dir)
    training.fit_and_export(toy, teacher_dir, settings)
    scored = _score(teacher_dir, str(tmp_path / "a"))
    train = toy.splits["train"]
    assert sorted(scored) == list(range(len(train.user)))  # every training interaction, once

    model = tf.saved_model.load(os.path.join(teacher_dir, training.SAVED_MODEL_DIR))
    from models.interaction_data import histories

    _, latest = histories(train, toy.num_users, 5)
    for row in (0, 7, len(train.user) - 1):
        out = scored[row]
        user, positive = int(train.user[row]), int(train.item[row])
        assert out["user_index"] == [user] and out["item_index"] == [positive]
        candidates = np.array(out["candidates"])
        assert len(candidates) == 1 + 2 * NEGATIVES and candidates[0] == positive
        seen = set(train.item[train.user == user].tolist())  # only train: eval items stay like test items
        assert not (set(candidates[1:].tolist()) & (seen | {0}))
        assert len(set(candidates[1:].tolist())) == 2 * NEGATIVES  # sampled and hard never repeat
        history = np.where(latest[[user]] == positive, 0, latest[[user]])  # the row's own item masked
        scores = model.score(tf.constant([user], tf.int64), tf.constant(history)).numpy()[0]
        assert np.allclose(out["teacher_scores"], scores[candidates], atol=1e-5)
        unseen = [i for i in np.argsort(-scores, kind="stable") if i not in seen and i != 0]
        assert sorted(candidates[1 + NEGATIVES:].tolist()) == sorted(unseen[:NEGATIVES])  # hard = top unseen

    assert _score(teacher_dir, str(tmp_path / "b")) == scored  # deterministic

    valid = toy.splits["eval"]
    scored_eval = _read(str(tmp_path / "a"), "eval")  # the validation rows, scored the same way
    assert sorted(scored_eval) == list(range(len(valid.user)))
    for row, out in scored_eval.items():
        user, positive = int(valid.user[row]), int(valid.item[row])
        candidates = out["candidates"]
        seen = set(train.item[train.user == user].tolist())
        assert candidates[0] == positive and positive not in candidates[1:]  # an eval positive is not unseen
        assert len(set(candidates)) == len(candidates) and not (set(candidates[1:]) & (seen | {0}))

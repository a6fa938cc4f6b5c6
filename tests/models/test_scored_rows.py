"""Scored rows as a stream: every row once per epoch, whatever the buffer; padding, scale, masked history."""

import os

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import scored_rows  # noqa: E402

LATEST = np.array([[0, 0, 0], [5, 3, 0], [2, 4, 6], [7, 0, 0]], np.int64)  # [num_users, H]


def _rows(n=23, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for row in range(n):
        width = int(rng.integers(2, 6))  # rows of a tiny catalog may have fewer candidates
        user = int(rng.integers(1, 4))
        item = int(LATEST[user][0]) if row % 3 == 0 and LATEST[user][0] else int(rng.integers(1, 9))
        candidates = [item] + rng.choice(np.arange(1, 9), width - 1, replace=False).tolist()
        rows.append((row, user, item, candidates, rng.normal(size=width).astype(np.float32).tolist()))
    return rows


def _write(directory, rows, shards=3):
    os.makedirs(directory, exist_ok=True)
    ints = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v))  # noqa: E731
    bounds = np.linspace(0, len(rows), shards + 1).astype(int)
    for n in range(shards):
        with tf.io.TFRecordWriter(os.path.join(directory, f"part-{n:05d}-of-{shards:05d}.gz"), "GZIP") as w:
            for row, user, item, candidates, scores in rows[bounds[n]:bounds[n + 1]]:
                w.write(tf.train.Example(features=tf.train.Features(feature={
                    "row": ints([row]), "user_index": ints([user]), "item_index": ints([item]),
                    "candidates": ints(candidates),
                    "teacher_scores": tf.train.Feature(float_list=tf.train.FloatList(value=scores))})).SerializeToString())
    return [os.path.join(directory, "*")]


def _epoch(data):
    out = {}
    for batch in data:
        for b in range(len(batch["user_index"])):
            key = (int(batch["user_index"][b]), int(batch["item_index"][b]), tuple(batch["candidates"][b].numpy()))
            out.setdefault(key, []).append({k: v[b].numpy() for k, v in batch.items()})
    return out


def test_counts_without_the_scorers_statistics_match_numpy(tmp_path):
    rows = _rows()
    opened = scored_rows.open_rows(_write(str(tmp_path), rows))
    values = np.concatenate([np.array(r[4], np.float64) for r in rows])
    assert (opened.rows, opened.width, opened.real) == (len(rows), max(len(r[3]) for r in rows), values.size)
    assert opened.std == pytest.approx(values.std(), rel=1e-9)
    assert len(opened.files) == 3 and opened.files == tuple(sorted(opened.files))


@pytest.mark.parametrize("buffer", [1000, 4])
def test_an_epoch_streams_every_row_once_padded_scaled_and_without_its_label_in_the_history(tmp_path, buffer):
    rows = _rows()
    opened = scored_rows.open_rows(_write(str(tmp_path), rows)).scaled(0.5)
    seen = _epoch(opened.dataset(LATEST, batch_size=5, seed=1, shuffle_buffer=buffer))
    assert sum(len(v) for v in seen.values()) == len(rows)
    for row, user, item, candidates, scores in rows:
        padded = tuple(candidates + [0] * (opened.width - len(candidates)))
        (got,) = seen[(user, item, padded)]
        np.testing.assert_allclose(got["teacher_scores"][:len(scores)], np.float32(0.5) * np.array(scores, np.float32))
        assert not got["teacher_scores"][len(scores):].any()
        expected = np.where(LATEST[user] == item, 0, LATEST[user])
        np.testing.assert_array_equal(got["history"], expected)


def test_the_order_is_seeded_and_no_teacher_no_candidates(tmp_path):
    opened = scored_rows.open_rows(_write(str(tmp_path), _rows(60)))
    order = lambda seed: [int(r) for b in opened.dataset(LATEST, 60, seed, teacher=False) for r in  # noqa: E731
                          b["user_index"].numpy() * 100 + b["item_index"].numpy()]
    assert order(3) == order(3) and order(3) != order(4)
    first = next(iter(opened.dataset(LATEST, 60, 3, teacher=False)))
    assert set(first) == {"user_index", "item_index", "history"}


def test_read_all_is_in_row_order_and_no_files_is_an_error(tmp_path):
    rows = _rows()
    patterns = _write(str(tmp_path / "s"), rows)
    got = scored_rows.read_all(patterns)
    np.testing.assert_array_equal(got["row"], np.arange(len(rows)))
    np.testing.assert_array_equal(got["user_index"], [r[1] for r in rows])
    with pytest.raises(ValueError, match="no scored examples"):
        scored_rows.open_rows([str(tmp_path / "empty" / "*")])


def write_rows(directory, rows, shards=2):
    """TeacherScorer-like shards of in-memory rows {user_index, item_index, candidates, teacher_scores}
    (tests/models/test_student.py rows_for); returns the file patterns."""
    listed = [(n, int(u), int(i), [int(c) for c in cs], [float(s) for s in ss]) for n, (u, i, cs, ss) in enumerate(
        zip(rows["user_index"], rows["item_index"], rows["candidates"], rows["teacher_scores"]))]
    return _write(directory, listed, shards)

"""Index spaces, histories and texts of the models' dataset."""

import numpy as np

from models import interaction_data as data
from models.interaction_data import Split


def test_histories_by_hand():
    # user 1: items 5 (t=10), 6 (t=30), 7 (t=20); user 2: item 9 (t=5). Rows in file order.
    train = Split(user=np.array([1, 1, 1, 2]), item=np.array([5, 6, 7, 9]), timestamp=np.array([10, 30, 20, 5]))
    per_row, latest = data.histories(train, num_users=3, length=2)
    # Time order of user 1: 5, 7, 6. Most recent first, strictly earlier, 0 pads.
    assert per_row.tolist() == [[0, 0], [7, 5], [5, 0], [0, 0]]
    assert latest.tolist() == [[0, 0], [6, 7], [9, 0]]


def test_texts_from_raw_features():
    item = {"item_id": ["i1"], "item_title": ["Toy Story"], "item_year": [1995], "item_genres": ["Animation", "Comedy"]}
    assert data.item_text(item, ["title"]) == "Toy Story (1995). genres: Animation, Comedy"
    user = {"user_id": ["u1"], "user_age": [24], "user_zip_code": ["85711"], "user_gender": []}
    assert data.user_text(user) == "age 24, zip code 85711"


def test_dataset_round_trip(toy, tmp_path):
    path = str(tmp_path / "d.npz")
    data.save_dataset(toy, path)
    back = data.load_dataset(path)
    assert back.user_ids == toy.user_ids and back.item_texts == toy.item_texts
    for name, split in toy.splits.items():
        assert np.array_equal(back.splits[name].item, split.item)
        assert np.array_equal(back.splits[name].timestamp, split.timestamp)


def test_masked_histories_hide_the_rows_own_item():
    latest = np.array([[0, 0, 0], [5, 3, 2]])
    out = data.masked_histories(np.array([1, 1]), np.array([3, 9]), latest)
    assert out.tolist() == [[5, 0, 2], [5, 3, 2]]


def test_build_dataset_reads_splits_in_batches_by_hand(tmp_path, monkeypatch):
    """Index arrays in file order, unknown ids at 0, each user's profile from its first row, across
    record batches (of 2 here) and splits; catalog-only items after the vocabulary."""
    import functools
    import os

    import tensorflow as tf

    def example(**features):
        return tf.train.Example(features=tf.train.Features(feature={
            k: tf.train.Feature(int64_list=tf.train.Int64List(value=[v])) if isinstance(v, int)
            else tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()])) for k, v in features.items()
        })).SerializeToString()

    def write(directory, records):
        os.makedirs(directory)
        with tf.io.TFRecordWriter(os.path.join(directory, "part-0.gz"), "GZIP") as w:
            for r in records:
                w.write(r)

    train = [("u2", "i1", 5, "30"), ("u1", "i2", 7, "41"), ("u2", "i3", 9, "99"), ("u9", "i1", 1, "7"),
             ("u1", "i1", 3, "12")]
    write(str(tmp_path / "train"), [example(user_id=u, item_id=i, timestamp=t, user_age=a) for u, i, t, a in train])
    write(str(tmp_path / "test"), [example(user_id="u3", item_id="i4", timestamp=11, user_age="50")])
    write(str(tmp_path / "cat"), [example(item_id=i, item_title=f"T{i}") for i in ("i1", "i2", "i3", "i4")])
    monkeypatch.setattr(data, "record_batches", functools.partial(data.record_batches, size=2))
    got = data.build_dataset({"train": str(tmp_path / "train"), "test": str(tmp_path / "test")}, str(tmp_path / "cat"),
                             ["u1", "u2", "u3"], ["i1", "i2", "i3"])
    assert got.item_ids == ["", "i1", "i2", "i3", "i4"]
    assert got.splits["train"].user.tolist() == [2, 1, 2, 0, 1]  # u9: not in the vocabulary
    assert got.splits["train"].item.tolist() == [1, 2, 3, 1, 1]
    assert got.splits["train"].timestamp.tolist() == [5, 7, 9, 1, 3]
    assert got.splits["test"].user.tolist() == [3] and got.splits["test"].item.tolist() == [4]
    assert got.user_texts == ["", "age 41", "age 30", "age 50"]  # each user's first row
    assert got.item_texts[4] == "Ti4"


def test_latest_items_is_histories_latest_without_the_per_row_array():
    rng = np.random.default_rng(0)
    for rows, users, length in ((0, 3, 2), (500, 20, 5), (3000, 50, 64), (200, 7, 1)):
        split = Split(rng.integers(0, users, rows), rng.integers(1, 40, rows), rng.integers(0, 20, rows))
        np.testing.assert_array_equal(data.latest_items(split, users, length), data.histories(split, users, length)[1])
    by_hand = Split(user=np.array([1, 1, 1, 2]), item=np.array([5, 6, 7, 9]), timestamp=np.array([10, 30, 20, 5]))
    assert data.latest_items(by_hand, 3, 2).tolist() == [[0, 0], [6, 7], [9, 0]]


def test_dataset_round_trip_without_pickle_keeps_any_string(toy, tmp_path):
    """Ids and texts as UTF-8 bytes and offsets: exact for any string, loaded with allow_pickle=False."""
    import dataclasses

    awkward = ["", "a,b", 'say "hi"', "line\nbreak\r\n", "\u2028\u2029\x85\x1c", "\x00nul", "café 😀 \U0001F9D1\u200d",
               "x" * 100_000, " padded ", "\ufffd"]
    dataset = dataclasses.replace(toy, user_ids=awkward, item_ids=list(reversed(awkward)), user_texts=awkward[:1],
                                  item_texts=[], cold_items=np.array([3, 5], np.int64))
    path = str(tmp_path / "d.npz")
    data.save_dataset(dataset, path)
    with np.load(path, allow_pickle=False) as raw:  # numpy's own refusal: no object array anywhere
        assert all(raw[name].dtype != object for name in raw.files)
    back = data.load_dataset(path)
    assert (back.user_ids, back.item_ids, back.user_texts, back.item_texts) == (
        awkward, list(reversed(awkward)), [""], [])
    assert back.cold_items.tolist() == [3, 5] and set(back.splits) == set(toy.splits)


def test_a_pickled_dataset_of_before_is_refused_with_the_file_named(tmp_path):
    import pytest

    from models.foundation import storage

    path = str(tmp_path / "dataset.npz")
    np.savez(path, user_ids=np.array(["", "u1"], dtype=object), item_ids=np.array(["", "i1"], dtype=object))
    with pytest.raises(ValueError, match=rf"^{path} \(.*_ids\): holds pickled Python objects.*rerun the pipeline"):
        data.load_dataset(path)
    import inspect

    for load in (storage.load_npz, storage.load_npy):  # no way to ask for pickle
        assert list(inspect.signature(load).parameters) == ["path"]

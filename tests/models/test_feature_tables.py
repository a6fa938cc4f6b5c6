"""Feature tables: parsing rows that lack the other side's features, and the file round trip.

The tables themselves are built through a real Transform graph in the end-to-end test."""

import numpy as np
import tensorflow as tf

from models import artifacts, feature_tables


def test_absent_fixed_len_features_parse_to_empty_defaults():
    spec = {"user_age": tf.io.FixedLenFeature([1], tf.int64), "user_id": tf.io.FixedLenFeature([1], tf.string),
            "item_genres": tf.io.VarLenFeature(tf.string)}
    filled = {k: feature_tables._with_default(v) for k, v in spec.items()}
    item_row = tf.train.Example(features=tf.train.Features(feature={
        "item_genres": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Drama"]))})).SerializeToString()
    parsed = tf.io.parse_example([item_row], filled)
    assert parsed["user_age"].numpy().tolist() == [[0]] and parsed["user_id"].numpy().tolist() == [[b""]]
    assert parsed["item_genres"].values.numpy().tolist() == [b"Drama"]


def test_a_fixed_len_feature_present_but_empty_takes_its_default():
    """A new span's item without a year: the feature is there with no value (an empty list), where
    the schema of earlier data made it fixed-length; parse_example itself refuses the whole batch."""
    spec = {k: feature_tables._with_default(v) for k, v in {
        "item_year": tf.io.FixedLenFeature([1], tf.int64), "item_title": tf.io.FixedLenFeature([], tf.string),
        "item_genres": tf.io.VarLenFeature(tf.string)}.items()}

    def row(year, title):
        return tf.train.Example(features=tf.train.Features(feature={
            "item_year": tf.train.Feature(int64_list=tf.train.Int64List(value=year)),
            "item_title": tf.train.Feature(bytes_list=tf.train.BytesList(value=title)),
            "item_genres": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Drama"]))})).SerializeToString()

    rows = [row([1995], [b"Heat"]), row([], []), row([2001], [b"Amelie"])]
    try:
        tf.io.parse_example(rows, spec)
        raise AssertionError("parse_example accepted an empty fixed-length feature: the fallback is not needed")
    except tf.errors.InvalidArgumentError:
        pass
    parsed = feature_tables._parse(tf.constant(rows), spec)
    assert parsed["item_year"].numpy().tolist() == [[1995], [0], [2001]]
    assert parsed["item_title"].numpy().tolist() == [b"Heat", b"", b"Amelie"]
    assert parsed["item_genres"].values.numpy().tolist() == [b"Drama"] * 3


def test_save_and_load_round_trip(tmp_path):
    tables = {"user": {"user_age_bucket": np.array([0, 3, 1])},
              "item": {"item_genres_indices": np.array([[0, 0], [1, 2]])},
              "size": {"user_age_bucket": 11, "item_genres_indices": 20},
              "vocab": {"item_genres_indices": ["Drama", "Film-Noir", "Ciné d'été"], "user_empty_index": []}}
    feature_tables.save(tables, str(tmp_path / artifacts.FEATURES_FILE))
    loaded = feature_tables.load_from(str(tmp_path))
    assert loaded["size"] == tables["size"]
    assert loaded["vocab"] == tables["vocab"]  # the values in index order, non-ASCII ones too
    assert loaded["user"]["user_age_bucket"].tolist() == [0, 3, 1]
    assert loaded["item"]["item_genres_indices"].tolist() == [[0, 0], [1, 2]]

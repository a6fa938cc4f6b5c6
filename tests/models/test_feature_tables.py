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

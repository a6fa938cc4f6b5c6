"""preprocessing_fn on tiny data through tf.Transform: vocabularies, OOV 0, tokens, buckets."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components import transform_module

pytestmark = pytest.mark.slow  # tf.Transform on Beam (~18 s for the module's fixture)

_SPEC = {
    "user_id": tf.io.FixedLenFeature([], tf.string),
    "item_id": tf.io.FixedLenFeature([], tf.string),
    "timestamp": tf.io.FixedLenFeature([], tf.int64),
    "item_title": tf.io.FixedLenFeature([], tf.string),
    "item_genres": tf.io.VarLenFeature(tf.string),
    "user_gender": tf.io.FixedLenFeature([], tf.string),
    "user_age": tf.io.VarLenFeature(tf.int64),  # sometimes missing
}
_TRAIN = [
    {"user_id": b"u1", "item_id": b"i1", "timestamp": 1, "item_title": b"Toy Story, The!",
     "item_genres": [b"Animation", b"Comedy"], "user_gender": b"M", "user_age": [20]},
    {"user_id": b"u4", "item_id": b"i2", "timestamp": 2, "item_title": b"Heat", "item_genres": [b"Action"],
     "user_gender": b"M", "user_age": [30]},
    {"user_id": b"u2", "item_id": b"i1", "timestamp": 3, "item_title": b"TOY story", "item_genres": [],
     "user_gender": b"F", "user_age": []},
    {"user_id": b"u3", "item_id": b"i1", "timestamp": 4, "item_title": b"Toy Story", "item_genres": [b"Comedy"],
     "user_gender": b"F", "user_age": [60]},
]


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    config = {"max_tokens": 3, "max_list_values": 2, "numeric_buckets": 2}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(_SPEC))
    with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp("tft_temp")), force_tf_compat_v1=False):
        (data, _), transform_fn = (_TRAIN, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: transform_module.preprocessing_fn(inputs, config), output_record_batches=False)
        output_dir = str(tmp_path_factory.mktemp("transform_graph"))
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    return data, tft.TFTransformOutput(output_dir)


def test_ids_index_from_one_most_frequent_first(transformed):
    data, output = transformed
    assert [r["item_index"] for r in data] == [1, 2, 1, 1]  # i1 is the most frequent item
    assert output.vocabulary_by_name("item_id")[0] == b"i1"
    assert [r["user_id"] for r in data] == [b"u1", b"u4", b"u2", b"u3"]


def test_unknown_values_map_to_zero_at_serving(transformed):
    _, output = transformed
    raw = {
        "user_id": tf.constant(["nobody"]), "item_id": tf.constant(["i2"]), "timestamp": tf.constant([9], tf.int64),
        "item_title": tf.constant(["Unseen words"]),
        "item_genres": tf.sparse.from_dense(tf.constant([["Horror"]])),
        "user_gender": tf.constant(["X"]),
        "user_age": tf.sparse.from_dense(tf.constant([[30]], tf.int64)),
    }
    features = output.transform_features_layer()(raw)
    assert features["user_index"].numpy().tolist() == [0]
    assert features["item_index"].numpy().tolist() == [2]
    assert features["item_title_tokens"].numpy().tolist() == [[0, 0, 0]]
    assert features["item_genres_indices"].numpy().tolist() == [[0, 0]]
    assert features["user_gender_index"].numpy().tolist() == [0]


def test_titles_are_normalised_and_padded(transformed):
    data, output = transformed
    assert data[0]["item_title_text"] == b"toy story the"
    assert data[2]["item_title_text"] == b"toy story"
    vocab = [w.decode() for w in output.vocabulary_by_name("item_title")]
    index = {w: i + 1 for i, w in enumerate(vocab)}
    assert list(data[0]["item_title_tokens"]) == [index["toy"], index["story"], index["the"]]
    assert list(data[1]["item_title_tokens"]) == [index["heat"], 0, 0]


def test_list_columns_are_clipped_and_padded(transformed):
    data, output = transformed
    vocab = [g.decode() for g in output.vocabulary_by_name("item_genres")]
    index = {g: i + 1 for i, g in enumerate(vocab)}
    assert list(data[0]["item_genres_indices"]) == [index["Animation"], index["Comedy"]]
    assert list(data[2]["item_genres_indices"]) == [0, 0]


def test_numeric_buckets_and_missing(transformed):
    data, _ = transformed
    buckets = [int(r["user_age_bucket"]) for r in data]
    assert buckets[2] == 0  # missing age
    # Two quantile buckets over the present ages 20, 30, 60 (train): 20 below the median.
    assert buckets[0] == 1 and buckets[3] == 2
    assert np.all(np.array([r["timestamp"] for r in data]) == [1, 2, 3, 4])

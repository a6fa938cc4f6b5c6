"""tf.Example encoding: column typing, and the concatenated encoding against a built Example."""

import tensorflow as tf

from components.ingest import examples
from components.ingest.rows import Entity, Interaction


def test_value_types_widen_from_int_to_float_to_bytes():
    assert [examples.value_type(v) for v in ("12", "-3", "1.5", "1e3", "abc", "")] == [
        "int", "int", "float", "float", "bytes", None]
    assert examples.value_type("9" * 30) == "bytes"  # does not fit in int64: an id, not a number
    assert examples.widen("int", "float") == "float" and examples.widen(None, "int") == "int"
    assert examples.widen("float", "bytes") == "bytes"


def test_finalize_types_honours_text_and_list_columns():
    types = examples.finalize_types({"year": "int", "title": "int", "genres": "bytes", "empty": None},
                                    text_columns=["title"], list_columns=["genres"])
    assert types == {"year": "int", "title": "bytes", "genres": "bytes_list", "empty": "bytes"}


def test_concatenated_example_equals_the_example_built_feature_by_feature():
    user = Entity("u1", {"age": "24", "gender": "M"}, 2)
    item = Entity("i1", {"title": "Toy Story, The", "year": "", "genres": "Animation| Comedy"}, 2)
    user_types = {"age": "int", "gender": "bytes"}
    item_types = {"title": "bytes", "year": "int", "genres": "bytes_list"}
    row = Interaction("u1", "i1", 881250949, 4.5, 2, 0.3)
    encoded = examples.interaction_example(
        row, examples.entity_features("user_", user, user_types), examples.entity_features("item_", item, item_types))

    f = tf.train.Feature
    expected = tf.train.Example(features=tf.train.Features(feature={
        "user_id": f(bytes_list=tf.train.BytesList(value=[b"u1"])),
        "item_id": f(bytes_list=tf.train.BytesList(value=[b"i1"])),
        "timestamp": f(int64_list=tf.train.Int64List(value=[881250949])),
        "rating": f(float_list=tf.train.FloatList(value=[4.5])),
        "user_age": f(int64_list=tf.train.Int64List(value=[24])),
        "user_gender": f(bytes_list=tf.train.BytesList(value=[b"M"])),
        "item_title": f(bytes_list=tf.train.BytesList(value=[b"Toy Story, The"])),
        "item_year": f(int64_list=tf.train.Int64List(value=[])),
        "item_genres": f(bytes_list=tf.train.BytesList(value=[b"Animation", b"Comedy"])),
    }))
    assert tf.train.Example.FromString(encoded) == expected
    # And TensorFlow's own parser reads the concatenation the same way.
    parsed = tf.io.parse_single_example(encoded, {"user_age": tf.io.FixedLenFeature([], tf.int64),
                                                  "item_genres": tf.io.VarLenFeature(tf.string)})
    assert int(parsed["user_age"]) == 24 and parsed["item_genres"].values.numpy().tolist() == [b"Animation", b"Comedy"]


def test_catalog_example_has_the_id_and_the_features():
    item = Entity("i7", {"title": "Heat"}, 3)
    encoded = examples.catalog_example("i7", examples.entity_features("item_", item, {"title": "bytes"}))
    example = tf.train.Example.FromString(encoded)
    assert example.features.feature["item_id"].bytes_list.value == [b"i7"]
    assert example.features.feature["item_title"].bytes_list.value == [b"Heat"]

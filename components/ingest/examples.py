"""Column typing and tf.Example encoding of joined interactions and of the item catalog.

Feature names: `user_id`, `item_id`, `timestamp` (int64), `rating` (float, when the input has
ratings), then every further column of users.csv as `user_<column>` and of items.csv as
`item_<column>`. A column's type is inferred from all of its values: int64 when every non-empty
value is an integer, float when every one is a number, else bytes. Text columns named in the
config stay bytes; list columns (genres, tags) are split on "|" into several bytes values.
An empty value is a missing value: the feature is present with no values.
"""

import re
from typing import Dict, Mapping, Optional, Sequence

import tensorflow as tf

from components.ingest.rows import Entity, Interaction

INT, FLOAT, BYTES, BYTES_LIST = "int", "float", "bytes", "bytes_list"
LIST_SEPARATOR = "|"
_INTEGER = re.compile(r"[+-]?\d+")
# Bounds of int64: an integer-looking id with more digits than that is text.
_INT64 = (-(2**63), 2**63 - 1)


def value_type(value: str) -> Optional[str]:
    """The narrowest type of one non-empty value (None for an empty one)."""
    if not value:
        return None
    if _INTEGER.fullmatch(value):
        # An integer too long for int64 is a code or an id: a float would silently round it.
        return INT if _INT64[0] <= int(value) <= _INT64[1] else BYTES
    try:
        float(value)
        return FLOAT
    except ValueError:
        return BYTES


def widen(a: Optional[str], b: Optional[str]) -> Optional[str]:
    """The type that holds the values of both (int < float < bytes)."""
    order = (None, INT, FLOAT, BYTES)
    return order[max(order.index(a), order.index(b))]


def finalize_types(
    types: Mapping[str, Optional[str]], text_columns: Sequence[str], list_columns: Sequence[str]
) -> Dict[str, str]:
    final = {}
    for column, inferred in types.items():
        if column in list_columns:
            final[column] = BYTES_LIST
        elif column in text_columns or inferred is None:
            final[column] = BYTES  # a column with no value at all is kept, as text
        else:
            final[column] = inferred
    return final


def entity_features(prefix: str, entity: Entity, types: Mapping[str, str]) -> bytes:
    """A user's or an item's features (`prefix`_<column>) as a serialized tf.Example.

    Computed once per user and per item: an interaction's example is the concatenation of its
    own fields with these bytes (see interaction_example).
    """
    feature = {}
    _add_columns(feature, prefix, entity.features, types)
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def interaction_example(row: Interaction, user_features: bytes, item_features: bytes) -> bytes:
    """The serialized tf.Example of one interaction with its user's and item's features.

    Protocol buffers define concatenated serialized messages as the merge of those messages, and
    a map merges by key: so the bytes of three Examples with disjoint feature names are the bytes
    of one Example holding all the features, without building it feature by feature.
    """
    feature = {
        "user_id": _bytes([row.user_id]),
        "item_id": _bytes([row.item_id]),
        "timestamp": tf.train.Feature(int64_list=tf.train.Int64List(value=[row.timestamp])),
    }
    if row.rating is not None:
        feature["rating"] = tf.train.Feature(float_list=tf.train.FloatList(value=[row.rating]))
    own = tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
    return own + user_features + item_features


def catalog_example(item_id: str, item_features: bytes) -> bytes:
    """The serialized tf.Example of one catalog item: its id and its features."""
    own = tf.train.Example(features=tf.train.Features(feature={"item_id": _bytes([item_id])}))
    return own.SerializeToString() + item_features


def _add_columns(feature, prefix: str, values: Mapping[str, str], types: Mapping[str, str]):
    for column, kind in types.items():
        feature[prefix + column] = encode_value(values.get(column, ""), kind)


def encode_value(value: str, kind: str) -> tf.train.Feature:
    if not value:
        values = []
    elif kind == BYTES_LIST:
        values = [v.strip() for v in value.split(LIST_SEPARATOR) if v.strip()]
    else:
        values = [value]
    if kind == INT:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
    if kind == FLOAT:
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
    return _bytes(values)


def _bytes(values: Sequence[str]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))

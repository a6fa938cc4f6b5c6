"""Users' and items' features in the shared index space, computed by Transform's own graph.

The student's towers take a user or item index and look its features up in these tables, so
training, the whole-catalog ranking and serving all see features produced by the one Transform
graph. Each user's raw features come from one of its interactions (they are the same on every
row), each item's from the catalog; raw features a row lacks (the other side's, ids, timestamp)
are filled with empty defaults and their outputs dropped.

Tables (one .npz file): `user/<feature>` [num_users, ...] and `item/<feature>` [num_items, ...]
int64, for every integer Transform output of that side (`user_age_bucket`, `item_genres_indices`,
...); row 0 (unknown, padding) is all zeros. `size/<feature>` holds each feature's index range:
values are in [0, size). `vocab/<feature>` holds the values of a feature that has a Transform
vocabulary, in index order (value k at index k + 1), as UTF-8 joined by newlines (uint8: no
fixed-width strings, no pickle; Transform's vocabulary files hold no newline within a value): a
later run's warm start finds a value's row by it (models/student_warm_start.py); a bucketized
numeric feature has none.
"""

import os
from typing import Dict, Mapping

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
from models import artifacts
from models.foundation import storage

SIDES = ("user", "item")
_SKIP = ("user_index", "item_index")  # the index itself is the row number


def build(transform_graph_dir: str, dataset) -> Dict[str, Dict[str, np.ndarray]]:
    """{"user": {feature: [num_users, ...]}, "item": {...}, "size": {feature: int},
    "vocab": {feature: [values]}}."""
    import tensorflow as tf
    import tensorflow_transform as tft

    output = tft.TFTransformOutput(transform_graph_dir)
    spec = {name: _with_default(feature) for name, feature in output.raw_feature_spec().items()}
    tables, sizes, vocabularies = {}, {}, {}
    for side, count, records in (("user", dataset.num_users, dataset.user_records),
                                 ("item", dataset.num_items, dataset.item_records)):
        indices = sorted(records)
        parsed = _parse(tf.constant([records[i] for i in indices], tf.string), spec) if indices else None
        transformed = output.transform_raw_features(parsed) if indices else {}
        columns = {}
        for name, value in sorted(transformed.items()):
            if not name.startswith(side + "_") or name in _SKIP or value.dtype != tf.int64:
                continue
            value = np.asarray(value)
            table = np.zeros((count,) + value.shape[1:], np.int64)
            table[indices] = value
            columns[name] = table
            sizes[name] = _size(output, name, table)
            values = _vocabulary(output, name)
            if values is not None:
                vocabularies[name] = values
        tables[side] = columns
    tables["size"] = sizes
    tables["vocab"] = vocabularies
    return tables


def save(tables: Mapping, path: str) -> None:
    arrays = {f"{side}/{name}": value for side in SIDES for name, value in tables[side].items()}
    arrays.update({f"size/{name}": np.array(size) for name, size in tables["size"].items()})
    arrays.update({f"vocab/{name}": np.frombuffer("\n".join(values).encode("utf-8"), np.uint8)
                   for name, values in tables.get("vocab", {}).items()})
    storage.save_npz(path, **arrays)


def load(path: str) -> Dict[str, Dict]:
    tables = {side: {} for side in (*SIDES, "size", "vocab")}
    for key, value in storage.load_npz(path).items():
        side, name = key.split("/", 1)
        if side == "vocab":
            text = bytes(value).decode("utf-8")
            tables[side][name] = text.split("\n") if text else []
        else:
            tables[side][name] = int(value) if side == "size" else value
    return tables


def load_from(model_dir: str) -> Dict[str, Dict]:
    return load(os.path.join(model_dir, artifacts.FEATURES_FILE))


def _parse(records, spec):
    """tf.io.parse_example, except that a fixed-length feature present with fewer values than its
    shape (an empty list: the value was missing in the source, e.g. an item's year in a span whose
    statistics first saw it missing) takes its default instead of failing the whole table."""
    import tensorflow as tf

    loose = {name: tf.io.VarLenFeature(feature.dtype) if isinstance(feature, tf.io.FixedLenFeature) else feature
             for name, feature in spec.items()}
    parsed = tf.io.parse_example(records, loose)
    for name, feature in spec.items():
        if isinstance(feature, tf.io.FixedLenFeature):
            size = int(np.prod(feature.shape))
            default = np.asarray(feature.default_value).ravel()[0]
            padded = tf.RaggedTensor.from_sparse(parsed[name]).to_tensor(default_value=default,
                                                                           shape=[None, size])
            parsed[name] = tf.reshape(padded, [-1, *feature.shape])
    return parsed


def _with_default(feature):
    """A FixedLenFeature that parses when absent (the other side's features, ids)."""
    import tensorflow as tf

    if not isinstance(feature, tf.io.FixedLenFeature) or feature.default_value is not None:
        return feature
    empty = "" if feature.dtype == tf.string else 0
    return tf.io.FixedLenFeature(feature.shape, feature.dtype, default_value=[empty] * int(np.prod(feature.shape)))


def _size(output, name: str, table: np.ndarray) -> int:
    """The index range of a feature: its vocabulary plus OOV, or what the table holds, whichever is larger."""
    raw = name.rsplit("_", 1)[0]  # user_gender_index -> user_gender (the vocabulary's name)
    try:
        vocabulary = output.vocabulary_size_by_name(raw) + 1
    except (ValueError, KeyError, OSError):
        vocabulary = 0  # a bucketized numeric feature has no vocabulary
    return int(max(vocabulary, int(table.max(initial=0)) + 1))


def _vocabulary(output, name: str):
    """A feature's vocabulary (values in index order), or None: a bucketized numeric feature has none."""
    try:
        values = output.vocabulary_by_name(name.rsplit("_", 1)[0])
    except (ValueError, KeyError, OSError):
        return None
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]

"""The two students' weights between runs: saved as arrays by the StudentTrainer, carried into the
blessed model's artifact, and a new run's students started from them when the data moved only a
little (data in spans, docs/spans.md).

The students' tables are indexed by the run's own index spaces, which move between runs: ids are
numbered in order of appearance and Transform's vocabularies (most frequent first) are rebuilt on
each window. A warm start (`restore`) therefore copies rows by what they stand for:
  - the item id table (and the history's, when not shared) by item id, the user id table by user id:
    a known id keeps its row wherever its index moved; a new item's or user's row starts at zero, so
    a new item is ranked by its features (the cold-item path) and a new user by its history and
    features until training gives them interactions;
  - a feature's table by value, through both runs' vocabularies (features.npz `vocab/`); a
    bucketized feature (no vocabulary in either run) row by row when its range is unchanged (its
    quantile boundaries are refitted on each window: nearly the same buckets); a hashed feature
    (more values than max_feature_bins: a bin holds different values in each run) starts afresh;
  - what is not indexed (the hint projection, the second factor of a user table trained as two:
    user_rank) as it is.
A student of another architecture (dim, shared tables, hint) cannot be started from:
ArchitectureChanged says why and the students train from scratch.
"""

from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from models.foundation import storage

KINDS = ("student_kd", "student_no_kd")


class ArchitectureChanged(ValueError):
    """The earlier student's weights do not fit the new one (the message says which)."""


def _tables(model) -> Dict[str, tuple]:
    """{key: (variable, what indexes its rows)}: "items", "users", ("feature", layer), or None (not indexed)."""
    query, candidate = model.query_tower, model.candidate_tower
    tables = {"candidate/id": (candidate.id_embedding.embeddings, "items")}
    if hasattr(query.id_embedding, "codes"):  # a user table trained as two factors (user_rank)
        tables["query/id"] = (query.id_embedding.codes.embeddings, "users")
        tables["query/id_up"] = (query.id_embedding.up.kernel, None)
    else:
        tables["query/id"] = (query.id_embedding.embeddings, "users")
    if query.history_embedding is not candidate.id_embedding:
        tables["query/history"] = (query.history_embedding.embeddings, "items")
    for tower in (query, candidate):
        for name, layer in zip(tower.feature_names, tower.feature_embeddings):
            tables[f"{tower.name}/feature/{name}"] = (layer.embedding.embeddings, ("feature", layer))
    if hasattr(model, "hint_projection"):
        tables["hint"] = (model.hint_projection.kernel, None)
    return tables


def build_variables(model) -> None:
    """Creates the model's variables (Keras builds them on the first call) so that they can be set."""
    import tensorflow as tf

    model.score(tf.zeros([1], tf.int64), tf.zeros([1, model.config.history], tf.int64))
    if hasattr(model, "hint_projection"):
        model.hint_projection(tf.zeros([1, model.config.dim]))


def arrays(model, kind: str) -> Dict[str, np.ndarray]:
    """One student's weights as {"<kind>/<table>": array}; every trainable variable is one of them."""
    tables = _tables(model)
    covered = {id(variable) for variable, _ in tables.values()}
    missing = [v.name for v in model.trainable_variables if id(v) not in covered]
    if missing:  # a new layer must say how its rows move between runs
        raise ValueError(f"student weights without a warm-start rule: {', '.join(missing)}")
    return {f"{kind}/{key}": np.asarray(variable) for key, (variable, _) in tables.items()}


def save(models: Mapping[str, object], path: str) -> None:
    """{kind: trained StudentModel} -> one npz (artifacts.STUDENT_WEIGHTS_FILE)."""
    combined = {}
    for kind, model in models.items():
        combined.update(arrays(model, kind))
    storage.save_npz(path, **combined)


def _moved_rows(saved: np.ndarray, earlier_ids: Sequence[str], ids: Sequence[str], fresh: np.ndarray) -> tuple:
    """(an id table's start, how many ids kept their row): row i is id i's; index 0 (unknown,
    padding) keeps its earlier row, the ids the earlier table had their earlier rows, new ids zero."""
    earlier = {value: index for index, value in enumerate(earlier_ids) if index}
    rows = np.zeros_like(fresh)
    rows[0] = saved[0]
    kept = 0
    for index, value in enumerate(ids):
        if index == 0 or index >= len(rows):
            continue
        source = earlier.get(value)
        if source is not None and source < len(saved):
            rows[index] = saved[source]
            kept += 1
    return rows, kept


def restore(model, saved: Mapping[str, np.ndarray], kind: str, earlier: Mapping[str, Sequence[str]],
            now: Mapping[str, Sequence[str]], earlier_vocab: Mapping[str, np.ndarray],
            vocab: Mapping[str, np.ndarray]) -> Dict[str, object]:
    """Starts `model` (variables built: build_variables) from the `kind` student in `saved` (the arrays
    `save` wrote: storage.load_npz, read once for both students and both phases).

    earlier / now: {"users": ids, "items": ids} of the earlier and this run (index i at [i]);
    earlier_vocab / vocab: the feature tables' `vocab` of both runs. Returns what was kept."""
    tables = _tables(model)
    prefix = f"{kind}/"
    earlier_keys = {key[len(prefix):] for key in saved if key.startswith(prefix)}
    if earlier_keys != set(tables):
        raise ArchitectureChanged(f"the earlier {kind} has the tables {sorted(earlier_keys)}, this one "
                                  f"{sorted(tables)} (another feature set, shared tables or hint?)")
    values, report = {}, {"features_kept": [], "features_fresh": []}
    for key, (variable, index) in tables.items():
        old, fresh = saved[prefix + key], np.asarray(variable)
        if old.shape[1:] != fresh.shape[1:]:
            raise ArchitectureChanged(f"{kind} {key} is {old.shape[1:]} wide in the earlier student, "
                                      f"{fresh.shape[1:]} here (another dim?)")
        if index in ("items", "users"):
            values[key], report[f"{index}_kept"] = _moved_rows(old, earlier[index], now[index], fresh)
            report[f"{index}_new"] = len(now[index]) - 1 - report[f"{index}_kept"]
        elif index is None:
            if old.shape != fresh.shape:
                raise ArchitectureChanged(f"{kind} {key} is {old.shape} in the earlier student, {fresh.shape} here")
            values[key] = old
        else:
            name, layer = key.rsplit("/", 1)[1], index[1]
            value = _feature_rows(old, fresh, layer, earlier_vocab.get(name), vocab.get(name))
            report["features_kept" if value is not None else "features_fresh"].append(name)
            values[key] = fresh if value is None else value
    for key, (variable, _) in tables.items():
        variable.assign(values[key])
    return report


def _feature_rows(old: np.ndarray, fresh: np.ndarray, layer, earlier_values: Optional[np.ndarray],
                  values: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """A feature table's start, or None when it starts afresh (no vocabulary in one run, or a
    bucketized feature whose range changed)."""
    if (earlier_values is None) != (values is None):
        return None  # a vocabulary on one side only (an earlier file without it)
    if earlier_values is None:  # bucketized in both: the same buckets, row by row
        return old.copy() if old.shape == fresh.shape and layer.hashing is None else None
    # the earlier run hashed its values when they outnumbered its table's rows (size = values + 1)
    earlier_rows = _value_rows(len(earlier_values), len(old), hashed=len(earlier_values) + 1 > len(old))
    rows_now = _value_rows(len(values), len(fresh), hashed=layer.hashing is not None)
    earlier = dict(zip(list(earlier_values), earlier_rows.tolist()))
    rows, filled = fresh.copy(), np.zeros(len(fresh), bool)
    rows[0], filled[0] = old[0], True  # padding / out of vocabulary
    # The vocabulary lists the most frequent value first: a bin that several values share (hashed)
    # starts from the earlier row of its most frequent known value.
    for value, target in zip(list(values), rows_now.tolist()):
        source = earlier.get(value, -1)
        if source >= 0 and target >= 0 and not filled[target]:
            rows[target], filled[target] = old[source], True
    return rows


def _value_rows(count: int, table_rows: int, hashed: bool) -> np.ndarray:
    """The table row of each of a vocabulary's `count` values (its index is position + 1, 0 being
    padding): the index itself (beyond the table: no row, -1), or, when hashed, the bin that
    models/student.py's FeatureEmbedding hashes it into (Hashing(rows - 1) + 1: the same function in
    every run, so a value's bin moves only with its index)."""
    indices = np.arange(1, count + 1, dtype=np.int64)
    if not hashed:
        return np.where(indices < table_rows, indices, -1)
    import tensorflow as tf

    return np.asarray(tf.keras.layers.Hashing(table_rows - 1)(tf.constant(indices))).astype(np.int64) + 1

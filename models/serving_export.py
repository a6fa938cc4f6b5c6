"""The TF Serving SavedModel of a deployed-form student (docs/design.md, "Outputs").

Signatures (names: models/foundation/signatures.py):
  serving_default    user_id string [B], history string [B, H] (most recent first, "" pads)
                     -> item_ids string [B, K], scores float32 [B, K], best first.
  serve_tf_examples  examples string [B] (serialized tf.Example: bytes `user_id`, bytes list
                     `history` of any length, and the raw user columns of the input CSV) -> same.
and a plain tf.function `score(user_index int64 [B], history int64 [B, H]) -> float32 [B, V]`,
the whole catalog in the index space with index 0 masked, for the evaluator.

Ids map to indices through constant hash tables (index 0 is "" and the default): an unknown user
is served as index 0 with its history and, in serve_tf_examples, its own features; unknown
history items count as padding. Nothing is rejected. K = min(k, V - 1): index 0 has no column.

With `transform_graph_dir`, serve_tf_examples runs Transform's graph on the example's raw user
columns and uses the result (hashed into the student's bins where the student hashes) for every
user feature whose raw column the example carries; a feature whose column is absent falls back
to the user's table row, so a known user sending only user_id and history gets serving_default's
answer. The raw column of a Transform output is its name without the last "_" suffix
(user_age_bucket <- user_age), as models/feature_tables.py reads vocabularies.

`export` works like TFX's rewriters: validate the module, write it (next to `out_dir`, under a
name TF Serving ignores), load it and validate again (top-K against the scorer's own, unknown
user, warmup replay), then rename it to `out_dir`, so a polling server never sees half a model
(on object storage, which has no directory rename, it is copied: components/push publishes it).
"""

from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402

from models import deployable  # noqa: E402
from models.foundation import signatures  # noqa: E402
from models import student as student_lib  # noqa: E402
from models.foundation import storage  # noqa: E402


def hash_bins_of(model: student_lib.StudentModel) -> Dict[str, Optional[int]]:
    """{user feature: n} where the student hashes Transform index v > 0 to Hashing(n)(v) + 1, else None."""
    tower = model.query_tower
    return {name: (layer.bins - 1 if layer.hashing is not None else None)
            for name, layer in zip(tower.feature_names, tower.feature_embeddings)}


def _id_table(ids: Sequence[str]) -> tf.lookup.StaticHashTable:
    """id -> index (int64); "" and unknown ids -> 0. ids[0] is "" and is not a key."""
    keys = tf.constant(list(ids[1:]), tf.string)
    values = tf.range(1, len(ids), dtype=tf.int64)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), default_value=0)


def _to_bins(values: tf.Tensor, n: Optional[int]) -> tf.Tensor:
    """Transform indices [B] or [B, values] -> the student's embedding bins (as deployable.feature_bins)."""
    values = tf.cast(values, tf.int64)
    if n is None:
        return values
    return tf.where(values > 0, tf.keras.layers.Hashing(n)(values) + 1, tf.zeros_like(values))


class _Ranker(tf.Module):
    """The saved object: id tables, the scorer, the feature tables and Transform's layer."""

    def __init__(self, scorer, bins: Mapping[str, np.ndarray], hash_bins: Mapping[str, Optional[int]],
                 user_ids: Sequence[str], item_ids: Sequence[str], history: int, k: int,
                 transform_graph_dir: Optional[str]):
        super().__init__(name=signatures.MODEL_NAME)
        self.scorer = scorer
        self.history_length, self.k = int(history), min(int(k), len(item_ids) - 1)
        self.bins = {name: tf.constant(np.asarray(table, np.int64)) for name, table in bins.items()}
        self.hash_bins = {name: hash_bins.get(name) for name in bins}
        self.user_index, self.item_index = _id_table(user_ids), _id_table(item_ids)
        self.item_ids = tf.constant(list(item_ids), tf.string)
        self._example_spec = {signatures.USER_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
                              signatures.HISTORY: tf.io.RaggedFeature(tf.string)}
        self._raw_spec, self._presence_spec, self._from_examples = {}, {}, {}
        if transform_graph_dir:
            self._set_up_transform(transform_graph_dir)
        h = self.history_length
        self.serve = tf.function(self._serve, input_signature=[
            tf.TensorSpec([None], tf.string, name=signatures.USER_ID),
            tf.TensorSpec([None, h], tf.string, name=signatures.HISTORY)])
        self.serve_examples = tf.function(self._serve_examples, input_signature=[
            tf.TensorSpec([None], tf.string, name=signatures.EXAMPLES)])
        self.score = tf.function(self._score, input_signature=[
            tf.TensorSpec([None], tf.int64, name=deployable.USER_INDEX),
            tf.TensorSpec([None, h], tf.int64, name=deployable.HISTORY)])

    def _set_up_transform(self, transform_graph_dir: str) -> None:
        import tensorflow_transform as tft

        from models.feature_tables import _with_default

        output = tft.TFTransformOutput(transform_graph_dir)
        raw = output.raw_feature_spec()
        if signatures.HISTORY in raw:
            raise ValueError(f"the raw feature spec has a column named {signatures.HISTORY!r}, which "
                             "serve_tf_examples reads as the history: rename the input column")
        # Every raw column parses with a default when absent (as the feature tables were built), and
        # the example's user_id parses with Transform's own spec ([1] rather than []).
        self._raw_spec = {name: _with_default(feature) for name, feature in raw.items()}
        self._example_spec = {**self._example_spec, **self._raw_spec}
        transformed = output.transformed_feature_spec()
        for name in self.bins:
            if name in transformed:
                column = name.rsplit("_", 1)[0]
                self._from_examples[name] = column if column in raw else None
        # Presence of a raw column: parsed again as ragged (a parsed default cannot tell absence).
        self._presence_spec = {column: tf.io.RaggedFeature(raw[column].dtype)
                               for column in set(self._from_examples.values()) if column is not None}
        # An attribute so that the module tracks the layer and saves its graph and vocabularies.
        self.transform = output.transform_features_layer()

    def _top_k(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Deployed-model inputs -> {item_ids [B, K] string, scores [B, K] float32}, best first."""
        logits = tf.cast(self.scorer(inputs, training=False), tf.float32)  # [B, V - 1]
        scores, top = tf.math.top_k(logits, self.k)
        return {signatures.ITEM_IDS: tf.gather(self.item_ids, top + 1), signatures.SCORES: scores}

    def _serve(self, user_id, history):
        users, items = self.user_index.lookup(user_id), self.item_index.lookup(history)
        return self._top_k(deployable.inputs_for(self.bins, users, items))

    def _serve_examples(self, examples):
        parsed = tf.io.parse_example(examples, self._example_spec)
        users = self.user_index.lookup(tf.reshape(parsed[signatures.USER_ID], [-1]))
        recent = parsed[signatures.HISTORY].to_tensor("", shape=[None, self.history_length])  # truncates, pads
        inputs = deployable.inputs_for(self.bins, users, self.item_index.lookup(recent))
        if self._from_examples:
            transformed = self.transform({name: parsed[name] for name in self._raw_spec})
            present = tf.io.parse_example(examples, self._presence_spec)
            for name, column in self._from_examples.items():
                own = _to_bins(transformed[name], self.hash_bins[name])
                if column is None:  # no raw column of that name: always the example's
                    inputs[name] = own
                    continue
                carried = present[column].row_lengths() > 0  # [B]
                carried = tf.reshape(carried, [-1] + [1] * (own.shape.rank - 1))
                inputs[name] = tf.where(carried, own, inputs[name])
        return self._top_k(inputs)

    def _score(self, user_index, history):
        return deployable.full_scores(tf.cast(self.scorer(deployable.inputs_for(self.bins, user_index, history),
                                                          training=False), tf.float32))


def export(scorer, bins: Mapping[str, np.ndarray], hash_bins: Mapping[str, Optional[int]],
           user_ids: Sequence[str], item_ids: Sequence[str], history: int, out_dir: str,
           transform_graph_dir: Optional[str] = None, k: int = signatures.TOP_K, warmup_users: int = 3) -> str:
    """Writes the TF Serving SavedModel of `scorer` at `out_dir` (a version directory); returns it.

    scorer: deployed-form model (models/deployable.py), inputs_for(...) -> [B, V - 1] scores.
    bins: {user feature: int64 [num_users] or [num_users, values]} (deployable.feature_bins).
    hash_bins: {user feature: n or None} (hash_bins_of), used on Transform outputs only.
    user_ids, item_ids: raw ids by index, [0] == "". history: H. warmup_users: known users in
    the warmup file (plus one unknown user).

    Raises ValueError if the inputs disagree or the saved model does not answer as the scorer.
    """
    _check_inputs(scorer, bins, user_ids, item_ids, history, out_dir)
    module = _Ranker(scorer, bins, hash_bins, user_ids, item_ids, history, k, transform_graph_dir)
    cases = _validation_cases(user_ids, item_ids, history)
    _validate(module.serve, module.serve_examples, scorer, module.bins, item_ids, module.k, *cases)
    staging = f"{out_dir.rstrip('/')}.incomplete"  # not an integer: TF Serving skips it
    storage.rmtree(staging)  # storage: a gs:// "directory" exists when objects have its prefix
    try:
        tf.saved_model.save(module, staging, signatures={signatures.SERVING_DEFAULT: module.serve,
                                                         signatures.SERVE_TF_EXAMPLES: module.serve_examples})
        warmup = _write_warmup(staging, user_ids, item_ids, history, warmup_users)
        loaded = tf.saved_model.load(staging)
        serve = loaded.signatures[signatures.SERVING_DEFAULT]
        examples = loaded.signatures[signatures.SERVE_TF_EXAMPLES]
        _validate(lambda u, h: serve(**{signatures.USER_ID: u, signatures.HISTORY: h}),
                  lambda e: examples(**{signatures.EXAMPLES: e}), scorer, module.bins, item_ids, module.k, *cases)
        _replay_warmup(warmup, loaded)
    except Exception:
        storage.rmtree(staging)
        raise
    storage.rmtree(out_dir)  # an empty directory made by the caller (a TFX artifact URI)
    if storage.is_uri(out_dir):
        # Object storage cannot rename a directory: copied object by object (components/push
        # publishes versions to TF Serving, which therefore never sees this copy half done).
        storage.copy_tree(staging, out_dir)
        storage.rmtree(staging)
    else:
        tf.io.gfile.rename(staging, out_dir)
    return out_dir


def _check_inputs(scorer, bins, user_ids, item_ids, history, out_dir) -> None:
    for name, ids in (("user_ids", user_ids), ("item_ids", item_ids)):
        if not ids or ids[0] != "":
            raise ValueError(f"{name}[0] must be '' (index 0 is out of vocabulary and padding)")
        if len(set(ids)) != len(ids):
            raise ValueError(f"{name} has duplicate ids: each id needs one index")
    if len(item_ids) < 2:
        raise ValueError("item_ids has no item besides index 0: nothing to recommend")
    for name, table in bins.items():
        if np.shape(table)[0] != len(user_ids):
            raise ValueError(f"bins[{name!r}] has {np.shape(table)[0]} rows for {len(user_ids)} user ids")
    columns = scorer(deployable.inputs_for(bins, tf.zeros([1], tf.int64), tf.zeros([1, history], tf.int64)),
                     training=False).shape[-1]
    if columns != len(item_ids) - 1:
        raise ValueError(f"the scorer returns {columns} scores per user for {len(item_ids) - 1} items "
                         "(item_ids without index 0): export it with its own vocabulary")
    if storage.exists(out_dir) and storage.listdir(out_dir):
        raise ValueError(f"{out_dir} exists and is not empty: TF Serving never reloads a version it has "
                         "loaded, so export each model to a new version number")


def _unseen(ids: Sequence[str], stem: str) -> str:
    taken, candidate = set(ids), stem
    while candidate in taken:
        candidate += "_"
    return candidate


def _validation_cases(user_ids, item_ids, history):
    """A few known users with histories (one with an unknown item), then an unknown user.

    Returns (user ids [N], history ids [N, H], user indices [N], history indices [N, H])."""
    known = list(range(1, min(len(user_ids), 4)))
    ids, indices = [], []
    for row, user in enumerate(known + [0]):
        items = [(user + row + j) % (len(item_ids) - 1) + 1 for j in range(history)][: max(history - row, 0)]
        ids.append([item_ids[i] for i in items] + [""] * (history - len(items)))
        indices.append(items + [0] * (history - len(items)))
    if history > 1:  # an unknown history item is padding
        ids[0][-1], indices[0][-1] = _unseen(item_ids, "<unknown item>"), 0
    users = [user_ids[u] for u in known] + [_unseen(user_ids, "<unknown user>")]
    return (np.array(users, object), np.array(ids, object).reshape(len(users), history),
            np.array(known + [0], np.int64), np.array(indices, np.int64).reshape(len(users), history))


def _validate(serve, serve_examples, scorer, bins, item_ids, k, users, history, user_index, history_index) -> None:
    """serving_default against the scorer's own top-K; serve_tf_examples (no raw features) against it.

    serve(user ids [N], history ids [N, H]) and serve_examples(examples [N]) -> output dicts."""
    got = serve(tf.constant(users, tf.string), tf.constant(history, tf.string))
    ids, scores = np.asarray(got[signatures.ITEM_IDS]), np.asarray(got[signatures.SCORES])
    if got[signatures.ITEM_IDS].dtype != tf.string or scores.dtype != np.float32 or ids.shape != (len(users), k) \
            or scores.shape != ids.shape:
        raise ValueError(f"{signatures.SERVING_DEFAULT} returned {ids.shape} ids and {scores.dtype} {scores.shape} "
                         f"scores; expected string and float32 [{len(users)}, {k}]")
    expected = np.asarray(scorer(deployable.inputs_for(bins, user_index, history_index), training=False), np.float32)
    index = {item.encode(): i for i, item in enumerate(item_ids)}
    columns = np.vectorize(lambda item: index.get(item, 0))(ids) - 1  # -1: not a catalog item
    best = -np.sort(-expected, axis=1)[:, :k]
    # Through the scores rather than the ids: pruned or quantized weights tie, and tied items may come in any order.
    if np.any(columns < 0) or not np.allclose(scores, best, rtol=1e-4, atol=1e-4) \
            or not np.allclose(np.take_along_axis(expected, columns, axis=1), scores, rtol=1e-4, atol=1e-4):
        raise ValueError(f"{signatures.SERVING_DEFAULT}'s top-{k} items are not the scorer's top-{k} "
                         f"(score difference up to {np.max(np.abs(scores - best)):.3g}): the exported graph does "
                         "not compute what the scorer does")
    again = serve_examples(tf.constant([signatures.serve_example(u, [item for item in row if item])  # padding dropped
                                           for u, row in zip(users, history)], tf.string))
    if not (np.array_equal(np.asarray(again[signatures.ITEM_IDS]), ids)
            and np.allclose(np.asarray(again[signatures.SCORES]), scores, atol=1e-5)):
        raise ValueError(f"{signatures.SERVE_TF_EXAMPLES} answers differently from {signatures.SERVING_DEFAULT} "
                         "for the same user and history (examples without raw features)")


def _write_warmup(model_dir: str, user_ids, item_ids, history: int, count: int) -> str:
    """assets.extra/tf_serving_warmup_requests: serving_default PredictionLogs, batch 1 each.

    TF Serving replays them when it loads the version, before it reports it available, so the
    first real requests do not pay for graph and table initialisation (and GPU kernel choice)."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    recent = [item_ids[1 + j % (len(item_ids) - 1)] for j in range(history)]
    requests = [(user, recent) for user in user_ids[1:count + 1]] + [("", [""] * history)]  # "" is unknown
    path = storage.join(model_dir, signatures.WARMUP_FILE)
    storage.makedirs(storage.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for user, items in requests:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
                name=signatures.MODEL_NAME, signature_name=signatures.SERVING_DEFAULT))
            request.inputs[signatures.USER_ID].CopyFrom(tf.make_tensor_proto([user], tf.string))
            request.inputs[signatures.HISTORY].CopyFrom(tf.make_tensor_proto([items], tf.string))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def _replay_warmup(path: str, loaded) -> None:
    """Runs every warmup request through the loaded signature it names, as TF Serving will."""
    from tensorflow_serving.apis import prediction_log_pb2

    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        try:
            loaded.signatures[request.model_spec.signature_name](**inputs)
        except (KeyError, TypeError, tf.errors.InvalidArgumentError) as error:
            raise ValueError(f"a warmup request does not run on the exported model: {error}") from error

"""The TF Serving SavedModel of a tiny untrained student: signatures, answers equal to the scorer's
top-K (computed here with numpy), unknown ids served, Transform features from tf.Examples, warmup
records, and the server's config files."""

import types
from unittest import mock

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorflow_serving.apis import prediction_log_pb2  # noqa: E402
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

from models import deployable, serving_export, student  # noqa: E402
from models.foundation import signatures  # noqa: E402
from models import tf_serving_files  # noqa: E402

H, K = 4, 5
NUM_USERS, NUM_ITEMS = 9, 13
TINY = student.StudentConfig(dim=4, history=H, max_feature_bins=8)
ITEM_IDS = [""] + [f"i{i}" for i in range(1, NUM_ITEMS)]


def _deployed(num_users, tables, config=TINY, seed=0):
    """(scorer, bins, hash_bins) of an untrained tiny student: random weights, distinct scores."""
    tf.keras.utils.set_random_seed(seed)
    model = student.StudentModel(num_users, NUM_ITEMS, tables, config)
    model.score(tf.constant([1], tf.int64), tf.zeros([1, H], tf.int64))  # builds the towers
    return deployable.build(model), deployable.feature_bins(model), serving_export.hash_bins_of(model)


def _expected(case, users, history):
    """numpy top-K of the scorer for user indices [N] and history indices [N, H] -> (ids, scores)."""
    inputs = {deployable.USER_INDEX: np.asarray(users), deployable.HISTORY: np.asarray(history),
              **{name: table[np.asarray(users)] for name, table in case.bins.items()}}
    return _top_k(case.scorer({k: tf.constant(v, tf.int64) for k, v in inputs.items()}).numpy())


def _top_k(logits):
    top = np.argsort(-logits, axis=1, kind="stable")[:, :K]
    return np.array(ITEM_IDS, object)[top + 1], np.take_along_axis(logits, top, axis=1)


def _example(user_id=None, history=(), **raw):
    feature = {} if user_id is None else {signatures.USER_ID: [user_id]}
    feature.update({signatures.HISTORY: list(history)} if history else {}, **raw)
    return tf.train.Example(features=tf.train.Features(feature={
        name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))
        for name, values in feature.items()})).SerializeToString()


def _serve(case, users, history):
    out = case.loaded.signatures[signatures.SERVING_DEFAULT](
        **{signatures.USER_ID: tf.constant(users), signatures.HISTORY: tf.constant(history)})
    return out[signatures.ITEM_IDS].numpy().astype(str), out[signatures.SCORES].numpy()


def _serve_examples(case, examples):
    out = case.loaded.signatures[signatures.SERVE_TF_EXAMPLES](**{signatures.EXAMPLES: tf.constant(examples)})
    return out[signatures.ITEM_IDS].numpy().astype(str), out[signatures.SCORES].numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    users = np.arange(NUM_USERS)
    tags = np.stack([users * 5 % 37 + 1, np.where(users % 2 == 0, users + 11, 0)], axis=1)  # 40 > 8: hashed
    tags[0] = 0
    tables = {"user": {"user_cluster_index": np.where(users > 0, users % 3 + 1, 0), "user_tags_indices": tags},
              "item": {}, "size": {"user_cluster_index": 4, "user_tags_indices": 40}}
    scorer, bins, hash_bins = _deployed(NUM_USERS, tables)
    user_ids = [""] + [f"u{i}" for i in range(1, NUM_USERS)]
    out = str(tmp_path_factory.mktemp("serving") / signatures.MODEL_NAME / "1")
    serving_export.export(scorer, bins, hash_bins, user_ids, ITEM_IDS, H, out, k=K)
    return types.SimpleNamespace(scorer=scorer, bins=bins, hash_bins=hash_bins, user_ids=user_ids, out=out,
                                 loaded=tf.saved_model.load(out))


def test_signatures_names_dtypes_and_shapes(exported):
    signatures_ = exported.loaded.signatures
    assert set(signatures_) == {signatures.SERVING_DEFAULT, signatures.SERVE_TF_EXAMPLES}
    assert signatures_[signatures.SERVING_DEFAULT].structured_input_signature[1] == {
        signatures.USER_ID: tf.TensorSpec([None], tf.string, name=signatures.USER_ID),
        signatures.HISTORY: tf.TensorSpec([None, H], tf.string, name=signatures.HISTORY)}
    assert signatures_[signatures.SERVE_TF_EXAMPLES].structured_input_signature[1] == {
        signatures.EXAMPLES: tf.TensorSpec([None], tf.string, name=signatures.EXAMPLES)}
    for name in signatures_:
        assert signatures_[name].structured_outputs == {
            signatures.ITEM_IDS: tf.TensorSpec([None, K], tf.string, name=signatures.ITEM_IDS),
            signatures.SCORES: tf.TensorSpec([None, K], tf.float32, name=signatures.SCORES)}


def test_known_user_gets_the_scorers_top_k(exported):
    ids, scores = _serve(exported, ["u3", "u8"], [["i2", "i7", "", ""], ["i12", "i1", "i5", "i9"]])
    want_ids, want_scores = _expected(exported, [3, 8], [[2, 7, 0, 0], [12, 1, 5, 9]])
    assert ids.shape == (2, K) and (ids == want_ids).all()
    assert np.allclose(scores, want_scores, atol=1e-5) and (np.diff(scores, axis=1) <= 0).all()


def test_unknown_user_and_items_are_served_as_index_zero(exported):
    ids, scores = _serve(exported, ["nobody", ""], [["i4", "no-such-item", "", ""], ["", "", "", ""]])
    want_ids, want_scores = _expected(exported, [0, 0], [[4, 0, 0, 0], [0, 0, 0, 0]])
    assert (ids == want_ids).all() and np.allclose(scores, want_scores, atol=1e-5)


def test_tf_examples_answer_as_serving_default(exported):
    examples = [_example("u2", ["i3", "i1", "i4", "i6", "i8", "i9"]),  # longer than H: the H most recent
                _example("u5", ["i11"]),
                _example("stranger", ["i2", "unseen"]),
                _example()]  # nothing at all: unknown user, no history
    got = _serve_examples(exported, examples)
    want = _serve(exported, ["u2", "u5", "stranger", ""],
                  [["i3", "i1", "i4", "i6"], ["i11", "", "", ""], ["i2", "", "", ""], [""] * H])
    assert (got[0] == want[0]).all() and np.allclose(got[1], want[1], atol=1e-6)


def test_score_ranks_the_whole_catalog_with_index_zero_masked(exported):
    users, history = np.array([1, 0], np.int64), np.array([[3, 0, 0, 0], [0, 0, 0, 0]], np.int64)
    scores = exported.loaded.score(tf.constant(users), tf.constant(history)).numpy()
    inputs = {deployable.USER_INDEX: users, deployable.HISTORY: history,
              **{name: table[users] for name, table in exported.bins.items()}}
    assert scores.shape == (2, NUM_ITEMS) and np.all(scores[:, 0] <= -1e9)
    assert np.allclose(scores[:, 1:], exported.scorer({k: tf.constant(v) for k, v in inputs.items()}).numpy())


def test_warmup_requests_name_the_model_and_replay(exported):
    path = f"{exported.out}/{signatures.WARMUP_FILE}"
    logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]
    requests = [log.predict_log.request for log in logs]
    assert len(requests) == 4  # three known users and the unknown one
    assert all(r.model_spec.name == signatures.MODEL_NAME for r in requests)
    assert all(r.model_spec.signature_name == signatures.SERVING_DEFAULT for r in requests)
    users = [tf.make_ndarray(r.inputs[signatures.USER_ID]).tolist() for r in requests]
    assert users == [[b"u1"], [b"u2"], [b"u3"], [b""]]
    assert tf.make_ndarray(requests[-1].inputs[signatures.HISTORY]).tolist() == [[b""] * H]
    inputs = {name: tf.make_ndarray(proto) for name, proto in requests[0].inputs.items()}
    got = _serve(exported, inputs[signatures.USER_ID], inputs[signatures.HISTORY])
    history = [[ITEM_IDS.index(i.decode()) for i in inputs[signatures.HISTORY][0]]]
    assert (got[0] == _expected(exported, [1], history)[0]).all()


def test_export_refuses_mismatched_vocabulary_and_used_version(exported, tmp_path):
    with pytest.raises(ValueError, match="scores per user"):
        serving_export.export(exported.scorer, exported.bins, exported.hash_bins, exported.user_ids, ITEM_IDS[:-2],
                              H, str(tmp_path / "2"), k=K)
    with pytest.raises(ValueError, match="new version number"):
        serving_export.export(exported.scorer, exported.bins, exported.hash_bins, exported.user_ids, ITEM_IDS,
                              H, exported.out, k=K)



def test_export_refuses_a_graph_that_ranks_differently(exported, tmp_path):
    def off_by_one(module, inputs):  # ids of the wrong index space: the classic slip
        scores, top = tf.math.top_k(module.scorer(inputs), module.k)
        return {signatures.ITEM_IDS: tf.gather(module.item_ids, top), signatures.SCORES: scores}

    with mock.patch.object(serving_export._Ranker, "_top_k", off_by_one), pytest.raises(ValueError, match="top-"):
        serving_export.export(exported.scorer, exported.bins, exported.hash_bins, exported.user_ids, ITEM_IDS,
                              H, str(tmp_path / "3"), k=K)
    assert not (tmp_path / "3").exists()


def test_config_files_parse(tmp_path):
    config = text_format.Parse(open(tf_serving_files.write_models_config(str(tmp_path))).read(),
                               model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, model.model_platform) == (signatures.MODEL_NAME, "tensorflow")
    assert model.base_path == "/models/recdistill"
    assert model.model_version_policy.latest.num_versions == 1
    batching = text_format.Parse(open(tf_serving_files.write_batching_parameters(str(tmp_path))).read(),
                                 tf_serving_files.batching_parameters_class()())
    assert batching.max_batch_size.value == 256 and 1000 <= batching.batch_timeout_micros.value <= 2000
    assert batching.num_batch_threads.value >= 1 and batching.max_enqueued_batches.value >= 1
    assert list(batching.allowed_batch_sizes)[-1] == batching.max_batch_size.value


# --- serve_tf_examples with a Transform graph: raw user columns become features ---

_RAW = [("u1", "F", "10001"), ("u2", "M", "10002"), ("u3", "M", "10003"), ("u4", "F", "10004"),
        ("u5", "M", "10005"), ("u6", "F", "10006"), ("u7", "M", "10007")]


@pytest.fixture(scope="module")
def with_transform(tmp_path_factory):
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    from components import transform_module

    raw_columns = ("user_id", "item_id", "user_gender", "user_zip_code")
    spec = {name: tf.io.FixedLenFeature([1], tf.string) for name in raw_columns}
    rows = [{"user_id": [u.encode()], "item_id": [b"i1"], "user_gender": [g.encode()], "user_zip_code": [z.encode()]}
            for u, g, z in _RAW]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    graph_dir = str(tmp_path_factory.mktemp("transform_graph"))
    with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp("tft_temp")), force_tf_compat_v1=False):
        (data, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: transform_module.preprocessing_fn(inputs, {}), output_record_batches=False)
        _ = transform_fn | tft_beam.WriteTransformFn(graph_dir)
    # The raw spec serve_tf_examples parses (TFX's Transform component writes it beside the graph).
    metadata_io.write_metadata(metadata, f"{graph_dir}/{tft.TFTransformOutput.RAW_METADATA_DIR}")
    user_ids = [""] + [u.decode() for u in tft.TFTransformOutput(graph_dir).vocabulary_by_name("user_id")]
    columns = ("user_gender_index", "user_zip_code_index")
    tables = {"user": {c: np.zeros(len(user_ids), np.int64) for c in columns}, "item": {},
              "size": {"user_gender_index": 3, "user_zip_code_index": len(_RAW) + 1}}  # 8 > 4 bins: hashed
    for row in data:  # each user's features at its index, as feature_tables.build makes them
        for c in columns:
            tables["user"][c][user_ids.index(row["user_id"].decode())] = row[c]
    config = student.StudentConfig(dim=4, history=H, max_feature_bins=4)
    scorer, bins, hash_bins = _deployed(len(user_ids), tables, config, seed=1)
    assert hash_bins == {"user_gender_index": None, "user_zip_code_index": 3}
    out = str(tmp_path_factory.mktemp("serving") / signatures.MODEL_NAME / "7")
    serving_export.export(scorer, bins, hash_bins, user_ids, ITEM_IDS, H, out, transform_graph_dir=graph_dir, k=K)
    return types.SimpleNamespace(scorer=scorer, bins=bins, user_ids=user_ids, loaded=tf.saved_model.load(out))


@pytest.mark.slow  # its fixture runs tf.Transform on Beam (~13 s)
def test_tf_examples_with_raw_features_use_them(with_transform):
    case = with_transform
    u1, u2 = case.user_ids.index("u1"), case.user_ids.index("u2")
    got = _serve_examples(case, [
        _example("newcomer", ["i3"], user_gender=["F"], user_zip_code=["10001"]),  # unknown, u1's features
        _example("u2", ["i3"], user_gender=["F"], user_zip_code=["10001"]),  # known, features changed to u1's
        _example("u2", ["i3"])])  # known, no raw columns: its own table row
    inputs = {deployable.USER_INDEX: np.array([0, u2, u2]), deployable.HISTORY: np.array([[3, 0, 0, 0]] * 3),
              **{name: table[[u1, u1, u2]] for name, table in case.bins.items()}}
    want_ids, want_scores = _top_k(case.scorer({k: tf.constant(v, tf.int64) for k, v in inputs.items()}).numpy())
    assert (got[0] == want_ids).all() and np.allclose(got[1], want_scores, atol=1e-5)
    assert case.bins["user_zip_code_index"][u1] != case.bins["user_zip_code_index"][u2]  # the features matter here

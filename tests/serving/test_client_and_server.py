"""The development server and the gRPC client, in process, on a free localhost port, over a tiny
exported model (an untrained student with 5 users and 8 items): answers equal to the SavedModel's
own, TF Serving's status codes for malformed requests, hot reload, batching, retries, shutdown."""

import os
import shutil
import signal
import socket
import threading
import time
import types
from concurrent import futures
from unittest import mock

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2  # noqa: E402

from models.foundation import signatures  # noqa: E402
from serving import client as client_lib  # noqa: E402
from serving import dev_server  # noqa: E402

H, K = 4, 5  # the tiny model of conftest.py's export fixture
USER_IDS = [""] + [f"u{i}" for i in range(1, 6)]
ITEM_IDS = [""] + [f"i{i}" for i in range(1, 9)]
AVAILABLE, END = get_model_status_pb2.ModelVersionStatus.AVAILABLE, get_model_status_pb2.ModelVersionStatus.END
CODE = grpc.StatusCode


def _direct(loaded, users, histories):
    """serving_default of the loaded SavedModel, histories padded/cut to H -> [[(id, score)]]."""
    rows = [list(items)[:H] + [""] * (H - len(items)) for items in histories]
    out = loaded.signatures[signatures.SERVING_DEFAULT](
        **{signatures.USER_ID: tf.constant(users, tf.string), signatures.HISTORY: tf.constant(rows, tf.string)})
    return [[(i.decode(), float(s)) for i, s in zip(ids, scores)]
            for ids, scores in zip(out[signatures.ITEM_IDS].numpy(), out[signatures.SCORES].numpy())]


def _same(got, want):
    assert [[i for i, _ in row] for row in got] == [[i for i, _ in row] for row in want]
    assert np.allclose([[s for _, s in row] for row in got], [[s for _, s in row] for row in want], atol=1e-5)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_base(base, tmp_path):
    """A model base directory of its own holding version 1 (a copy: no second export)."""
    path = tmp_path / signatures.MODEL_NAME
    shutil.copytree(os.path.join(base.path, "1"), path / "1")
    return str(path)


def _blocking(signature):
    """Patches signature.run to wait for `release` once started; returns (patcher, started, release)."""
    started, release, run = threading.Event(), threading.Event(), signature.run

    def slow(inputs):
        started.set()
        assert release.wait(60)
        return run(inputs)

    return mock.patch.object(signature, "run", side_effect=slow), started, release


def _request(user_id=("u1",), history=(("i1", "", "", ""),), name=signatures.MODEL_NAME, **model_spec):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in model_spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    if user_id is not None:
        request.inputs[signatures.USER_ID].CopyFrom(tf.make_tensor_proto(list(user_id), tf.string))
    if history is not None:
        request.inputs[signatures.HISTORY].CopyFrom(tf.make_tensor_proto([list(r) for r in history], tf.string))
    return request


@pytest.fixture(scope="module")
def base(tmp_path_factory, export):
    path = tmp_path_factory.mktemp("serving") / signatures.MODEL_NAME
    return types.SimpleNamespace(path=str(path), v1=export(path / "1", seed=0))


@pytest.fixture(scope="module")
def server(base):
    server = dev_server.serve(base.path, 0, poll_seconds=0.2, batch_timeout_ms=30, host="127.0.0.1")
    yield server
    assert server.stop(None).wait(10)


@pytest.fixture
def client(server):
    with client_lib.RecommendationClient(f"127.0.0.1:{server.port}", timeout_s=10) as client:
        yield client


def test_recommend_equals_the_saved_models_serving_default(base, client):
    users = ["u3", "stranger"]  # a known user and an unknown one
    histories = [["i2", "i7"], ["i4", "no-such-item", "i1", "i2", "i3", "i5"]]  # short, and longer than H
    want = _direct(base.v1, users, histories)
    got = client.recommend(users, histories)
    _same(got, want)
    assert len(got[0]) == K and [s for _, s in got[0]] == sorted((s for _, s in got[0]), reverse=True)
    _same(client.recommend(users, histories, k=2, version=1), [row[:2] for row in want])
    # serve_tf_examples through the same client: same answers (the Example's history is cut to H).
    _same(client.recommend(users, histories, signature=signatures.SERVE_TF_EXAMPLES), want)
    response = client.predict(_request())
    assert (response.model_spec.name, response.model_spec.version.value, response.model_spec.signature_name) == (
        signatures.MODEL_NAME, 1, signatures.SERVING_DEFAULT)
    assert client.recommend([], []) == []


def test_metadata_and_status(base, server, client):
    response = client.metadata()
    assert (response.model_spec.name, response.model_spec.version.value) == (signatures.MODEL_NAME, 1)
    assert response.metadata["signature_def"].Is(get_model_metadata_pb2.SignatureDefMap.DESCRIPTOR)
    defs = client.signature_defs()
    assert {signatures.SERVING_DEFAULT, signatures.SERVE_TF_EXAMPLES} <= set(defs)
    for name, function in base.v1.signatures.items():  # the TensorInfos are the loaded signatures' specs
        for tensors, specs in ((defs[name].inputs, function.structured_input_signature[1]),
                               (defs[name].outputs, function.structured_outputs)):
            assert set(tensors) == set(specs)
            for key, spec in specs.items():
                assert tensors[key].dtype == spec.dtype.as_datatype_enum
                assert [d.size for d in tensors[key].tensor_shape.dim] == [-1 if d is None else d for d in spec.shape]
        assert defs[name].method_name == "tensorflow/serving/predict"
    assert client.history_length() == H
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:  # an injected channel is left open
        with client_lib.RecommendationClient(channel=channel) as injected:
            assert injected.history_length() == H
        assert injected.status().model_version_status[0].version == 1
    with pytest.raises(ValueError, match="either target"):
        client_lib.RecommendationClient()

    assert server.versions.current.warmup_requests == 4  # the exporter's warmup records, replayed on load
    (status,) = client.status().model_version_status
    assert (status.version, status.state, status.status.error_code) == (1, AVAILABLE, 0)
    assert [s.version for s in client.status(version=1).model_version_status] == [1]
    with pytest.raises(client_lib.ServingError) as error:
        client.status(version=7)
    assert error.value.code == CODE.NOT_FOUND


def _with_proto(request, name, **proto):
    request.inputs[name].CopyFrom(tf.make_tensor_proto(**proto))
    return request


def _ill_shaped(extra_value=False, negative_dim=False):
    request = _request(user_id=["u1", "u2"], history=[["i1"] * H] * 2)
    if extra_value:  # 9 strings in a [2, H] tensor
        request.inputs[signatures.HISTORY].string_val.append(b"i2")
    if negative_dim:
        request.inputs[signatures.HISTORY].tensor_shape.dim[0].size = -1
    return request


MALFORMED = {
    "missing input": (CODE.INVALID_ARGUMENT, "missing input", lambda: _request(history=None)),
    "unknown input": (CODE.INVALID_ARGUMENT, "unknown input",
                      lambda: _with_proto(_request(), "age", values=[3], dtype=tf.int64)),
    "unknown model": (CODE.NOT_FOUND, "Latest(movies)", lambda: _request(name="movies")),
    "unknown version": (CODE.NOT_FOUND, "Specific(recdistill, 7)", lambda: _request(version=7)),
    "unknown signature": (CODE.NOT_FOUND, "signature", lambda: _request(signature_name="predict")),
    "wrong dtype": (CODE.INVALID_ARGUMENT, "int64",
                    lambda: _with_proto(_request(), signatures.USER_ID, values=[3], dtype=tf.int64)),
    "wrong rank": (CODE.INVALID_ARGUMENT, "shape [4]",
                   lambda: _with_proto(_request(), signatures.HISTORY, values=["i1", "", "", ""], dtype=tf.string)),
    "another H": (CODE.INVALID_ARGUMENT, "shape [1, 3]", lambda: _request(history=[["i1", "i2", "i3"]])),
    "batch sizes differ": (CODE.INVALID_ARGUMENT, "different batch sizes",
                           lambda: _request(user_id=["u1", "u2"], history=[["i1"] * H] * 3)),
    "more values than the shape": (CODE.INVALID_ARGUMENT, "well-formed", lambda: _ill_shaped(extra_value=True)),
    "negative dimension": (CODE.INVALID_ARGUMENT, "no valid shape", lambda: _ill_shaped(negative_dim=True)),
    "unknown output": (CODE.INVALID_ARGUMENT, "output_filter",
                       lambda: _with_filter(_request(), "ranks")),
    "no model_spec": (CODE.INVALID_ARGUMENT, "Missing ModelSpec", lambda: _without_spec(_request())),
}


def _with_filter(request, name):
    request.output_filter.append(name)
    return request


def _without_spec(request):
    request.ClearField("model_spec")
    return request


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_request_gets_its_status_code_and_the_server_keeps_serving(case, base, client):
    code, message, build = MALFORMED[case]
    real = client._prediction.Predict
    with mock.patch.object(client._prediction, "Predict", wraps=real) as predict, \
            mock.patch.object(client_lib.time, "sleep") as sleep, pytest.raises(client_lib.ServingError) as error:
        client.predict(build())
    assert error.value.code == code and message in error.value.details, error.value
    assert predict.call_count == 1 and not sleep.called  # not retried
    _same(client.recommend(["u2"], [["i3"]]), _direct(base.v1, ["u2"], [["i3"]]))


def test_output_filter_and_metadata_field_are_checked(client):
    response = client.predict(_with_filter(_request(), signatures.SCORES))
    assert set(response.outputs) == {signatures.SCORES}
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = signatures.MODEL_NAME
    with pytest.raises(client_lib.ServingError) as error:
        client._call(client._prediction.GetModelMetadata, request)
    assert error.value.code == CODE.INVALID_ARGUMENT and "metadata_field" in error.value.details


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(base, server, client):
    users = [USER_IDS[i % len(USER_IDS)] or "newcomer" for i in range(16)]
    histories = [[ITEM_IDS[1 + (i + j) % 8] for j in range(i % (H + 2))] for i in range(16)]
    want = _direct(base.v1, users, histories)
    for _ in range(3):  # a busy machine may space a round's requests out: a few rounds
        before = server.batch_stats()
        barrier = threading.Barrier(16)

        def ask(i):
            barrier.wait()
            return client.recommend([users[i]], [histories[i]])[0]

        with futures.ThreadPoolExecutor(16) as pool:
            got = list(pool.map(ask, range(16)))
        _same(got, want)
        after = server.batch_stats()
        assert after.requests - before.requests == 16
        if after.batches_with_several_requests > before.batches_with_several_requests:
            break
    assert after.batches_with_several_requests > before.batches_with_several_requests
    assert after.largest_batch_requests > 1


def test_a_new_version_is_served_without_restart_and_requests_in_flight_finish(base, tmp_path, export):
    path = _copy_base(base, tmp_path)
    server = dev_server.serve(path, 0, poll_seconds=0.2, host="127.0.0.1")
    client = client_lib.RecommendationClient(f"127.0.0.1:{server.port}", timeout_s=60)
    try:
        v1 = server.versions.current
        assert v1.version == 1
        patch, started, release = _blocking(v1.signature(signatures.SERVING_DEFAULT))
        with patch, futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(client.predict, _request(user_id=["u4"], history=[["i5", "i6", "", ""]]))
            assert started.wait(30)
            v2 = export(tmp_path / signatures.MODEL_NAME / "2", seed=1)  # renamed into place when complete
            deadline = time.monotonic() + 30
            while server.versions.current.version != 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.versions.current.version == 2  # swapped while the request is still running
            assert [(s.version, s.state) for s in client.status().model_version_status] == [(2, AVAILABLE), (1, END)]
            release.set()
            response = in_flight.result(30)
        assert response.model_spec.version.value == 1  # finished on the version it started on
        ids = tf.make_ndarray(response.outputs[signatures.ITEM_IDS])[0].astype(str).tolist()
        assert ids == [i for i, _ in _direct(base.v1, ["u4"], [["i5", "i6"]])[0]]
        got = client.recommend(["u4", "x"], [["i5", "i6"], []])
        _same(got, _direct(v2, ["u4", "x"], [["i5", "i6"], []]))
        assert got != _direct(base.v1, ["u4", "x"], [["i5", "i6"], []])  # the versions do differ
        assert client.predict(_request()).model_spec.version.value == 2
        with pytest.raises(client_lib.ServingError) as error:  # latest policy: version 1 is unloaded
            client.predict(_request(version=1))
        assert error.value.code == CODE.NOT_FOUND
    finally:
        client.close()
        server.stop(None).wait(10)


class _Unavailable(grpc.RpcError):
    def code(self):
        return CODE.UNAVAILABLE

    def details(self):
        return "connection refused"


def test_client_retries_unavailable_with_backoff_but_nothing_else(base, client):
    nowhere = client_lib.RecommendationClient(f"127.0.0.1:{_free_port()}", retries=2, backoff_s=0.01)
    with mock.patch.object(client_lib.time, "sleep") as sleep, pytest.raises(client_lib.ServingError) as error:
        nowhere.status()
    nowhere.close()
    assert error.value.code == CODE.UNAVAILABLE
    assert [c.args[0] for c in sleep.call_args_list] == [0.01, 0.02]  # exponential, then it gives up

    real = client._prediction.Predict
    outcomes = iter([_Unavailable(), _Unavailable(), None])  # twice down, then the real server

    def predict(request, timeout):
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome
        return real(request, timeout=timeout)

    with mock.patch.object(client._prediction, "Predict", side_effect=predict) as patched, \
            mock.patch.object(client_lib.time, "sleep") as sleep:
        got = client.recommend(["u1"], [["i2"]])
    assert patched.call_count == 3 and sleep.call_count == 2
    assert all(c.kwargs["timeout"] == client.timeout_s for c in patched.call_args_list)  # a deadline each
    _same(got, _direct(base.v1, ["u1"], [["i2"]]))


def test_graceful_shutdown_finishes_requests_in_flight_and_refuses_new_ones(base, tmp_path):
    path = _copy_base(base, tmp_path)
    server = dev_server.serve(path, 0, host="127.0.0.1")
    target = f"127.0.0.1:{server.port}"
    patch, started, release = _blocking(server.versions.current.signature(signatures.SERVING_DEFAULT))
    with client_lib.RecommendationClient(target, timeout_s=30) as client, patch, futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(client.recommend, ["u2"], [["i1"]])
        assert started.wait(30)
        stopped = server.stop(grace=30)
        late = client_lib.RecommendationClient(target, retries=0)
        with pytest.raises(client_lib.ServingError) as error:
            late.status()  # stopped: new calls are refused at once
        late.close()
        assert error.value.code == CODE.UNAVAILABLE
        assert not stopped.is_set()
        release.set()
        _same(in_flight.result(30), _direct(base.v1, ["u2"], [["i1"]]))
        assert stopped.wait(10)


def test_run_until_signal_serves_until_sigterm(base, tmp_path):
    path, port, lines = _copy_base(base, tmp_path), _free_port(), []
    answers = []

    previous = signal.getsignal(signal.SIGTERM)

    def ask_then_terminate():
        try:
            with client_lib.RecommendationClient(f"127.0.0.1:{port}", retries=8, backoff_s=0.05) as client:
                answers.append(client.recommend(["u1"], [[]]))  # retried until the server is up
        finally:  # only to run_until_signal's handler (the default one would end pytest)
            deadline = time.monotonic() + 30
            while signal.getsignal(signal.SIGTERM) is previous and time.monotonic() < deadline:
                time.sleep(0.01)
            if signal.getsignal(signal.SIGTERM) is not previous:
                os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=ask_then_terminate, daemon=True).start()
    assert dev_server.run_until_signal(path, port, grace_seconds=5, print_fn=lines.append,
                                       host="127.0.0.1") == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is previous
    _same(answers[0], _direct(base.v1, ["u1"], [[]]))
    assert "version 1" in lines[0] and "SIGTERM" in lines[-1]
    with client_lib.RecommendationClient(f"127.0.0.1:{port}", retries=0) as client, \
            pytest.raises(client_lib.ServingError) as error:
        client.status()
    assert error.value.code == CODE.UNAVAILABLE


def test_serve_refuses_a_missing_directory_and_a_taken_port(base, server, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        dev_server.serve(str(tmp_path / "nothing"), 0)
    with pytest.raises(OSError, match="port in use"):
        dev_server.serve(base.path, server.port, host="127.0.0.1")


def test_the_query_command_prints_recommendations_without_the_history(base, server, client, capsys):
    from tfx_pipeline import cli

    want = [item for item, _ in client.recommend(["u3"], [["i2"]], k=4)[0] if item != "i2"][:3]
    assert cli.main(["query", "--target", f"127.0.0.1:{server.port}", "--user-id", "u3", "--history", "i2",
                     "--k", "3"]) == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert [line.split()[1] for line in lines] == want
    assert cli.main(["query", "--target", f"127.0.0.1:{_free_port()}", "--user-id", "u3", "--timeout", "0.5"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_a_call_without_a_deadline_is_answered(server):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:  # grpcurl, Go and Java often set none
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(_request())
    assert response.model_spec.name == signatures.MODEL_NAME and signatures.ITEM_IDS in response.outputs

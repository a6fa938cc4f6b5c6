"""Requests the server refuses before allocating for them (declared shapes over the limits,
malformed tensors), and clients whose malformed tf.Examples fail only their own requests, in
the same batches as good clients' requests."""

import threading
from concurrent import futures
from unittest import mock

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

from models.foundation import signatures  # noqa: E402
from serving import dev_server  # noqa: E402
from serving.model_versions import InvalidRequest  # noqa: E402
from serving.request_limits import RequestLimits  # noqa: E402

H = 4  # the tiny model's history length (conftest.py)
CODE = grpc.StatusCode


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS")).split()[1]) / 1024


def _request(signature=signatures.SERVING_DEFAULT, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = signatures.MODEL_NAME, signature
    for name, proto in inputs.items():
        request.inputs[name].CopyFrom(proto)
    return request


def _strings(values, shape=None):
    return tf.make_tensor_proto(values, tf.string, shape=shape)


def _declared(dims, values=(b"u1",)):
    """A string TensorProto declaring `dims` (None: unknown rank) and carrying `values`."""
    proto = tf.make_tensor_proto([], tf.string)
    proto.ClearField("tensor_shape")
    if dims is None:
        proto.tensor_shape.unknown_rank = True
    for size in dims or ():
        proto.tensor_shape.dim.add(size=size)
    proto.string_val.extend(values)
    return proto


@pytest.fixture(scope="module")
def server(served_base):
    server = dev_server.serve(served_base.path, 0, batch_timeout_ms=30,
                              limits=RequestLimits(max_request_rows=8, max_tensor_elements=24))
    yield server
    assert server.stop(None).wait(10)


@pytest.fixture
def stub(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _refused(stub, request):
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request, timeout=30)
    return error.value.code(), error.value.details()


def test_the_76_byte_request_declaring_6_000_000_strings_is_refused_and_memory_stays(served_base):
    server = dev_server.serve(served_base.path, 0)  # the default limits
    try:
        request = _request(user_id=_declared([6_000_000]), history=_strings([[""] * H]))
        assert len(request.SerializeToString()) < 100  # 83 bytes with a [1, 4] history
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            stub.Predict(_request(user_id=_strings(["u1"]), history=_strings([[""] * H])), timeout=30)  # warm
            before = _rss_mb()
            for _ in range(3):
                code, details = _refused(stub, request)
                assert code == CODE.RESOURCE_EXHAUSTED and "6,000,000 rows" in details
                assert "--max-request-rows" in details
            growth = _rss_mb() - before
        assert growth < 50, f"resident memory grew by {growth:.0f} MB"  # expanding it took about 1 GB
    finally:
        server.stop(None).wait(10)


LIMITED = {  # the module's server takes 8 rows and 24 elements per tensor
    "9 rows": (CODE.RESOURCE_EXHAUSTED, "--max-request-rows",
               lambda: _request(user_id=_strings(["u1"] * 9), history=_strings([[""] * H] * 9))),
    "7 rows of H: 28 elements": (CODE.RESOURCE_EXHAUSTED, "--max-tensor-elements",
                                 lambda: _request(user_id=_strings(["u1"] * 7), history=_strings([[""] * H] * 7))),
    "1e18 elements declared": (CODE.INVALID_ARGUMENT, "has shape [1000000000, 1000000000]",
                               lambda: _request(user_id=_strings(["u1"]), history=_declared([10**9, 10**9]))),
    "2^62 rows of H declared": (CODE.RESOURCE_EXHAUSTED, "--max-request-rows",
                                lambda: _request(user_id=_declared([2**62]), history=_declared([2**62, H]))),
    "unknown rank": (CODE.INVALID_ARGUMENT, "no valid shape",
                     lambda: _request(user_id=_declared(None), history=_strings([[""] * H]))),
    "more values than the shape": (CODE.INVALID_ARGUMENT, "well-formed",
                                   lambda: _request(user_id=_declared([1], [b"u1", b"u2"]), history=_strings([[""] * H]))),
    "packed string content": (CODE.INVALID_ARGUMENT, "packed content",
                              lambda: _request(user_id=tf.make_tensor_proto(np.zeros(2, np.int64)).__class__(
                                  dtype=tf.string.as_datatype_enum, tensor_content=b"\x00" * 16,
                                  tensor_shape=_declared([2]).tensor_shape), history=_strings([[""] * H] * 2))),
    "examples holding 25 values": (CODE.RESOURCE_EXHAUSTED, "25 feature values",
                                   lambda: _request(signatures.SERVE_TF_EXAMPLES, examples=_strings(
                                       [signatures.serve_example("u1", [f"i{j % 8 + 1}" for j in range(24)])]))),
}


@pytest.mark.parametrize("case", sorted(LIMITED))
def test_oversized_and_malformed_shapes_are_refused_before_allocation(case, stub):
    code, message, build = LIMITED[case]
    with mock.patch.object(tf, "make_ndarray", wraps=tf.make_ndarray) as make_ndarray:
        got, details = _refused(stub, build())
    assert got == code and message in details, details
    if code == CODE.RESOURCE_EXHAUSTED and "feature values" not in message or "shape" in message:
        assert not make_ndarray.called  # refused on the declared shape alone
    # the limits are inclusive: 8 rows, 24 elements ([6, 4]) are answered
    answered = stub.Predict(_request(user_id=_strings(["u1"] * 6), history=_strings([[""] * H] * 6)), timeout=30)
    assert tf.make_ndarray(answered.outputs[signatures.ITEM_IDS]).shape[0] == 6


def _example(features):
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _bytes(*values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


BAD_EXAMPLES = {
    "not a tf.Example": (b"\xff\xfe garbage", "not a serialized tf.Example"),
    "non-UTF-8 user id": (_example({"user_id": _bytes(b"\xff\xfeu1")}), "not UTF-8"),
    "non-UTF-8 history": (_example({"user_id": _bytes(b"u1"), "history": _bytes(b"i1", b"\xc3")}), "not UTF-8"),
    "user id as int64": (_example({"user_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))}),
                         "int64_list"),
    "two user ids": (_example({"user_id": _bytes(b"u1", b"u2")}), "exactly 1"),
}


@pytest.mark.parametrize("case", sorted(BAD_EXAMPLES))
def test_malformed_examples_are_invalid_argument_naming_the_row(case, stub):
    serialized, message = BAD_EXAMPLES[case]
    good = signatures.serve_example("u1", ["i1"])
    code, details = _refused(stub, _request(signatures.SERVE_TF_EXAMPLES, examples=_strings([good, serialized])))
    assert code == CODE.INVALID_ARGUMENT and "row 1" in details and message in details, details


def test_a_non_utf8_error_from_the_model_itself_is_invalid_argument(server):
    """TensorFlow quotes an unparsable example in its error, and fails to make that text Python's."""
    signature = server.versions.current.signature(signatures.SERVE_TF_EXAMPLES)
    with pytest.raises(InvalidRequest, match="not UTF-8"):
        signature.run({signatures.EXAMPLES: np.array([b"\xff\xfe garbage"], object)})


def _good_and_bad_clients(server, rounds, check_before_batching):
    """4 good and 2 bad clients send serve_tf_examples requests together, `rounds` times (a barrier
    each round, so that they share batches); returns (failed good, bad codes, batcher counters)."""
    # Bad: bytes that are no tf.Example and not UTF-8 (INTERNAL before), a user id of the wrong kind.
    users, bad = ["u1", "u2", "u3", "u4"], [BAD_EXAMPLES["not a tf.Example"][0], BAD_EXAMPLES["user id as int64"][0]]
    signature = server.versions.current.signature(signatures.SERVE_TF_EXAMPLES)
    want = {user: signature.run({signatures.EXAMPLES: np.array([signatures.serve_example(user, ["i2"])], object)})
            for user in users}
    barrier, failed, codes, answers, lock = threading.Barrier(6), [], [], [], threading.Lock()

    def client(index):
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for _ in range(rounds):
                example = signatures.serve_example(users[index], ["i2"]) if index < 4 else bad[index - 4]
                barrier.wait(30)
                try:
                    response = stub.Predict(_request(signatures.SERVE_TF_EXAMPLES, examples=_strings([example])),
                                            timeout=30)
                except grpc.RpcError as error:
                    with lock:
                        (failed if index < 4 else codes).append(error.code())
                    continue
                with lock:
                    answers.append((index, tf.make_ndarray(response.outputs[signatures.ITEM_IDS])))

    features = {} if not check_before_batching else signature.example_features
    before = server.batch_stats()
    with mock.patch.object(signature, "example_features", features), futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(client, range(6)))
    after = server.batch_stats()
    assert sorted(index for index, _ in answers) == sorted(list(range(4)) * rounds)  # no bad one answered
    for index, ids in answers:
        assert ids.tolist() == want[users[index]][signatures.ITEM_IDS].tolist(), (index, ids)
    return failed, codes, {k: getattr(after, k) - getattr(before, k) for k in vars(after)}


def test_four_good_and_two_malformed_clients_no_good_request_fails(server):
    failed, codes, batches = _good_and_bad_clients(server, rounds=8, check_before_batching=True)
    assert failed == [] and codes == [CODE.INVALID_ARGUMENT] * 16
    assert batches["requests"] == 32 and batches["batches_with_several_requests"] > 0  # the good ones, batched
    # Without the checks before batching, the bad examples join the good ones' batches, which fail
    # in the model and are rerun request by request: still only the bad requests fail.
    failed, codes, batches = _good_and_bad_clients(server, rounds=8, check_before_batching=False)
    assert failed == [] and codes == [CODE.INVALID_ARGUMENT] * 16
    assert batches["failed_batches_rerun_alone"] > 0

"""Hot reload of versions copied slowly (retried with backoff, and again when the directory
changed), and the server's log: loads, unloads, failed loads and each interval's error counts."""

import logging
import os
import shutil
import threading
import time

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import grpc  # noqa: E402
import pytest  # noqa: E402

from models.foundation import signatures  # noqa: E402
from serving import client as client_lib  # noqa: E402
from serving import dev_server, server_log  # noqa: E402
from serving.load_retries import LoadRetries  # noqa: E402


def _wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


@pytest.mark.slow  # waits 11 s by design
def test_a_version_completed_10_s_after_its_saved_model_pb_appeared_is_loaded(served_base, tmp_path):
    base = tmp_path / signatures.MODEL_NAME
    shutil.copytree(os.path.join(served_base.path, "1"), base / "1")
    log_file = tmp_path / "serve.log"
    handlers = server_log.configure(str(log_file))
    # One retry 0.2 s after the first failure: both fail long before the copy completes, so only
    # the rule "a directory that changed is tried again" can load it.
    server = dev_server.serve(str(base), 0, poll_seconds=0.1, max_load_retries=1, load_retry_interval_s=0.2)
    try:
        (base / "2").mkdir()
        shutil.copy(base / "1" / "saved_model.pb", base / "2" / "saved_model.pb")  # the rest 10 s later
        assert _wait_until(lambda: server.versions.retries.attempts(2) == 2, 10)  # first try and its retry
        completed = threading.Event()

        def copy_the_rest():
            for name in ("variables", "assets", "assets.extra"):
                shutil.copytree(base / "1" / name, base / "2" / name)
            shutil.copy(base / "1" / "fingerprint.pb", base / "2" / "fingerprint.pb")
            completed.set()

        timer = threading.Timer(10.0, copy_the_rest)
        timer.start()
        time.sleep(1.0)  # a second of polls with the retries spent: not tried again
        assert server.versions.retries.attempts(2) == 2 and server.versions.current.version == 1
        assert completed.wait(30)
        assert _wait_until(lambda: server.versions.current.version == 2, 10)
        with client_lib.RecommendationClient(f"127.0.0.1:{server.port}", timeout_s=30) as client:
            assert client.predict(_request()).model_spec.version.value == 2
    finally:
        timer.cancel()
        server.stop(None).wait(10)
        server_log.remove(handlers)
    lines = log_file.read_text().splitlines()
    assert any("version 2 did not load (attempt 1 of 2)" in line and "next attempt in 0 s" in line for line in lines)
    assert any("version 2 did not load (attempt 2 of 2)" in line and "unless its directory changes" in line
               for line in lines)
    assert any("version 1 is available" in line for line in lines)
    assert any("version 2 is available" in line for line in lines)
    assert any("version 1 is unloaded" in line for line in lines)
    assert all(line[:4].isdigit() and " serving." in line for line in lines)  # timestamped, named


def _request():
    from tensorflow_serving.apis import predict_pb2
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = signatures.MODEL_NAME
    request.inputs[signatures.USER_ID].CopyFrom(tf.make_tensor_proto(["u1"], tf.string))
    request.inputs[signatures.HISTORY].CopyFrom(tf.make_tensor_proto([["i1", "", "", ""]], tf.string))
    return request


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_retries_back_off_doubling_then_stop_until_the_directory_changes():
    clock, directory = _Clock(), {"files": ("saved_model.pb",)}
    retries = LoadRetries(lambda version: directory["files"], max_retries=5, interval_s=2.0, max_interval_s=10.0,
                          clock=clock)
    assert retries.should_try(3)
    for wait in (2.0, 4.0, 8.0, 10.0, 10.0):  # the first attempt and 4 retries fail: doubling, capped
        assert retries.failed(3, directory["files"]) == wait
        clock.now += wait - 0.01
        assert not retries.should_try(3)
        clock.now += 0.01
        assert retries.should_try(3)
    assert retries.failed(3, directory["files"]) is None  # the 5th retry failed: no more
    clock.now += 3600
    assert not retries.should_try(3) and retries.attempts(3) == 6
    directory["files"] = ("saved_model.pb", "variables/variables.index")  # a copy going on
    assert not retries.should_try(3)  # changed: waits for one poll with no change
    directory["files"] += ("variables/variables.data-00000-of-00001",)
    assert not retries.should_try(3)
    assert retries.should_try(3)  # settled: tried again, its retries counted afresh
    assert retries.failed(3, directory["files"]) == 2.0
    with pytest.raises(ValueError, match="interval_s"):
        LoadRetries(lambda v: (), interval_s=float("nan"))


def test_error_counts_are_logged_per_interval_by_status_code(caplog):
    # The lines are read from a handler of the logger itself, which has each record before it is set
    # free: caplog's handler is reached later, through propagation, and under load the test once read
    # caplog before the record was there.
    reported, lines = threading.Event(), []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())
            reported.set()

    collect = Collect()
    logging.getLogger("serving.server_log").addHandler(collect)
    counts = server_log.ErrorCounts(interval_s=0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="serving"):
            for code in [grpc.StatusCode.INVALID_ARGUMENT] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED]:
                counts.add(code)
            assert reported.wait(10)
        [line] = [text for text in lines if "errors answered" in text]
        assert line.endswith(": INVALID_ARGUMENT 3, RESOURCE_EXHAUSTED 1")
        # the 0.2 s interval is named as such (it was rounded to "in the last 0 s")
        seconds = float(line.split("in the last ")[1].split(" s:")[0])
        assert 0.2 <= seconds < 10
        assert counts.report() == {}  # counted afresh each interval
        assert counts.totals == {grpc.StatusCode.INVALID_ARGUMENT: 3, grpc.StatusCode.RESOURCE_EXHAUSTED: 1}
    finally:
        counts.stop()
        logging.getLogger("serving.server_log").removeHandler(collect)


def test_an_unloaded_version_is_freed_and_its_memory_given_back(served_base, tmp_path, caplog):
    import weakref

    from serving.model_versions import ModelVersions

    base = tmp_path / signatures.MODEL_NAME
    shutil.copytree(os.path.join(served_base.path, "1"), base / "1")
    versions = ModelVersions(str(base))
    assert versions.poll()
    first = weakref.ref(versions.current)
    shutil.copytree(base / "1", base / "2")
    with caplog.at_level(logging.INFO, logger="serving"):
        assert versions.poll() and versions.current.version == 2
        assert not versions.poll()  # nothing new: the unloaded version's memory is released
    assert first() is None
    [line] = [r.getMessage() for r in caplog.records if "memory of unloaded versions released" in r.getMessage()]
    assert "MB resident before" in line

"""The soak bench's machinery in a few seconds (the minute-long soak is `python -m tfx_pipeline.bench_serving
--soak`, not part of the tests): good and bad clients, a push during the run, the figures."""

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import pytest  # noqa: E402

from serving import dev_server, memory, soak  # noqa: E402

pytestmark = pytest.mark.slow  # a 3 s soak with clients and a push


class _InProcessServer:
    """The server in this process (a subprocess costs ~10 s of start-up): its memory is this process's."""

    def __init__(self, base_path, work_dir):  # noqa: ARG002
        self.base_path, self.server = base_path, None

    def start(self):
        self.server = dev_server.serve(self.base_path, 0, poll_seconds=0.1)
        self.port = self.server.port

    def alive(self):
        return True

    def rss_bytes(self):
        return int(memory.resident_mb() * 2**20)

    def stop(self):
        self.server.stop(None).wait(10)


def test_a_short_soak_answers_every_good_request_and_refuses_every_bad_one(served_base, tmp_path):
    result = soak.soak(served_base.path, seconds=3, clients=3, bad_share=0.34, pushes=1, work_dir=str(tmp_path),
                       server_class=_InProcessServer)
    assert (result["clients"], result["bad_clients"], result["pushed_versions"]) == (3, 1, [2])
    assert result["good_requests"] > 20 and result["good_failed"] == 0 and result["restarts"] == 0
    assert result["versions_seen"] == [1, 2]  # the push during the run was served
    want = {"huge_shape": "RESOURCE_EXHAUSTED", "too_many_rows": "RESOURCE_EXHAUSTED",
            "garbage_example": "INVALID_ARGUMENT", "non_utf8_example": "INVALID_ARGUMENT",
            "wrong_dtype": "INVALID_ARGUMENT"}
    assert result["bad_answered"] == 0 and set(result["bad_requests"]) == set(want)
    for kind, codes in result["bad_requests"].items():
        assert set(codes) == {want[kind]}, (kind, codes)
    assert 0 < result["p50_ms"] <= result["p99_ms"] and result["rss_start_mb"] > 0
    text = soak.report(result)
    assert "failed: 0" in text and "versions that answered: 1, 2" in text and "server restarts: 0" in text

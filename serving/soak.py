"""Soak bench of `recdistill serve` (not a test): good and hostile clients for a while, and new
versions pushed meanwhile; prints what the good clients got and what the server went through.

    .venv/bin/python -m tfx_pipeline.bench_serving --soak --model-base-path DIR [--seconds 60] [--clients 8]
        [--bad-share 0.2] [--pushes 2] [--json OUT.json]

The latest version under DIR is copied to a work directory (DIR is not written), and the server
runs there in a subprocess (`recdistill serve`), so that its resident memory and exits can be
observed; an exit is counted as a restart and the server is started again. `clients` threads,
each with its own channel, send requests for `seconds`; round(clients x bad_share) of them send
only malformed or oversized requests, in turn: the 76-byte request declaring [6,000,000] user
ids, bytes that are no tf.Example, a tf.Example with non-UTF-8 ids, int64 user ids, and one row
more than the server takes. The good ones send single-user serving_default and serve_tf_examples
requests (users and items from the version's warmup records). `pushes` times during the run the
latest version is copied to a staging name and renamed to the next integer, as a push does; the
run goes on until the last pushed version has answered (at most twice `seconds`).

Printed: good requests, failed good requests (must be 0), bad requests by status code (none may
be answered), server restarts (0), the server's resident memory after the warm-up and at the end
(growth under 10%), p50 and p99 latency of good requests, the versions that answered. Exit code
0 when those hold, else 1.
"""

import argparse
import collections
import dataclasses
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

from models.foundation import signatures  # noqa: E402
from serving import flags  # noqa: E402

BAD_KINDS = ("huge_shape", "garbage_example", "non_utf8_example", "wrong_dtype", "too_many_rows")
MAX_RSS_GROWTH = 0.10


class ServerProcess:
    """`recdistill serve` in a subprocess on a free port of 127.0.0.1; its log under log_dir."""

    def __init__(self, base_path: str, log_dir: str, ready_timeout_s: float = 300.0):
        self.base_path, self.log_dir, self.ready_timeout_s = base_path, log_dir, ready_timeout_s
        self.port, self.process, self.starts = _free_port(), None, 0

    def start(self) -> None:
        self.starts += 1
        output = open(os.path.join(self.log_dir, f"serve-{self.starts}.out"), "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tfx_pipeline.cli", "serve", "--model-base-path", self.base_path,
             "--port", str(self.port), "--poll-seconds", "0.5", "--log-file", os.path.join(self.log_dir, "serve.log")],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        output.close()
        _wait_ready(self.port, self.ready_timeout_s, self.alive)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rss_bytes(self) -> int:
        import psutil

        return psutil.Process(self.process.pid).memory_info().rss

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclasses.dataclass
class _Tally:
    latencies_ms: List[float] = dataclasses.field(default_factory=list)
    good: int = 0
    good_failed: int = 0
    good_errors: List[str] = dataclasses.field(default_factory=list)
    bad: Dict[str, collections.Counter] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(collections.Counter))
    versions: set = dataclasses.field(default_factory=set)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def soak(base_path: str, seconds: float = 60.0, clients: int = 8, bad_share: float = 0.2, pushes: int = 2,
         work_dir: Optional[str] = None, server_class=None,
         max_request_rows: int = flags.DEFAULT_MAX_REQUEST_ROWS) -> Dict:
    """Runs the soak; returns its figures (see the module docstring). server_class(base_path,
    work_dir): an object with start(), alive(), rss_bytes(), stop() and port (ServerProcess)."""
    n_bad = round(clients * bad_share)
    if not (seconds > 0 and 1 <= clients - n_bad and 0 <= bad_share < 1 and pushes >= 0):
        raise ValueError("seconds must be positive, bad_share in [0, 1) with at least one good client, pushes >= 0")
    work = work_dir or tempfile.mkdtemp(prefix="recdistill-soak-")
    served = os.path.join(work, signatures.MODEL_NAME)
    latest = max((int(name) for name in os.listdir(base_path) if name.isdigit()), default=None)
    if latest is None:
        raise FileNotFoundError(f"{base_path}: no version directory to serve")
    shutil.copytree(os.path.join(base_path, str(latest)), os.path.join(served, "1"))
    users, items = _ids_of(os.path.join(served, "1"))
    server = (server_class or ServerProcess)(served, work)
    server.start()
    tally, stop, restarts, rss = _Tally(), threading.Event(), [], []
    try:
        h = _history_length(server.port)
        requests = _BadRequests(h, max_request_rows)
        warm = threading.Barrier(clients + 1)
        threads = [threading.Thread(target=_good_client if i >= n_bad else _bad_client, name=f"soak-client-{i}",
                                    args=(server.port, i, h, users, items, requests, tally, warm, stop), daemon=True)
                   for i in range(clients)]
        for thread in threads:
            thread.start()
        warm.wait(120)  # each client's first requests done (channels, tracing): memory from here on
        rss.append(server.rss_bytes())
        started = time.monotonic()
        watcher = threading.Thread(target=_watch, args=(server, stop, restarts, rss), daemon=True)
        watcher.start()
        pushed = []
        for k in range(1, pushes + 1):
            if stop.wait(max(started + seconds * k / (pushes + 1) - time.monotonic(), 0)):
                break
            pushed.append(_push_copy(served))
        stop.wait(max(started + seconds - time.monotonic(), 0))
        while pushed and pushed[-1] not in tally.versions and time.monotonic() < started + 2 * seconds:
            stop.wait(0.1)  # until the last push has answered (a load takes seconds), at most twice as long
        stop.set()
        for thread in threads + [watcher]:
            thread.join(60)
        rss.append(server.rss_bytes() if server.alive() else rss[-1])
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        server.stop()
    latencies = np.array(tally.latencies_ms or [float("nan")])
    growth = (rss[-1] - rss[0]) / rss[0]
    result = {
        "seconds": round(elapsed, 1), "clients": clients, "bad_clients": n_bad, "pushed_versions": pushed,
        "good_requests": tally.good, "good_failed": tally.good_failed, "good_errors": tally.good_errors[:5],
        "good_per_second": round(tally.good / elapsed, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2), "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "bad_requests": {kind: dict(codes) for kind, codes in sorted(tally.bad.items())},
        "bad_answered": sum(codes.get("OK", 0) for codes in tally.bad.values()),
        "restarts": len(restarts), "versions_seen": sorted(tally.versions),
        "rss_start_mb": round(rss[0] / 2**20, 1), "rss_end_mb": round(rss[-1] / 2**20, 1),
        "rss_peak_mb": round(max(rss) / 2**20, 1), "rss_growth_percent": round(100 * growth, 2),
        "work_dir": work,
    }
    result["passed"] = (result["good_failed"] == 0 and result["restarts"] == 0 and result["bad_answered"] == 0
                        and growth < MAX_RSS_GROWTH and (not pushed or pushed[-1] in tally.versions))
    return result


def report(result: Dict) -> str:
    bad_codes = collections.Counter()
    for codes in result["bad_requests"].values():
        bad_codes.update(codes)
    return "\n".join([
        f"soak: {result['seconds']:.0f} s, {result['clients']} clients ({result['bad_clients']} sending bad requests), "
        f"versions pushed during it: {', '.join(map(str, result['pushed_versions'])) or 'none'}",
        f"  good requests: {result['good_requests']:,} ({result['good_per_second']:,.0f}/s), failed: "
        f"{result['good_failed']}{' (' + result['good_errors'][0] + ')' if result['good_errors'] else ''}",
        f"  good latency: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms",
        f"  bad requests: {sum(bad_codes.values()):,}: " + ", ".join(f"{code} {n:,}" for code, n in sorted(bad_codes.items())),
        *[f"    {kind}: " + ", ".join(f"{code} {n:,}" for code, n in sorted(codes.items()))
          for kind, codes in result["bad_requests"].items()],
        f"  versions that answered: {', '.join(map(str, result['versions_seen']))}",
        f"  server restarts: {result['restarts']}",
        f"  server resident memory: {result['rss_start_mb']:.0f} MB after warm-up, {result['rss_end_mb']:.0f} MB at the "
        f"end ({result['rss_growth_percent']:+.1f}%), peak {result['rss_peak_mb']:.0f} MB",
        f"  {'passed' if result['passed'] else 'FAILED'}: 0 failed good requests, 0 restarts, no bad request "
        f"answered, memory growth under {MAX_RSS_GROWTH:.0%}, the last push served",
    ])


# --- clients ---

def _good_client(port, index, h, users, items, requests, tally, warm, stop) -> None:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    rng = random.Random(index)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for call in range(-2, 10**9):  # two warm-up calls, then timed ones until stopped
            if call == 0:
                warm.wait(120)
            if stop.is_set():
                return
            user, history = rng.choice(users), rng.sample(items, min(len(items), rng.randint(0, h + 2)))
            request = requests.good(user, history, examples=call % 2 == 1)
            started = time.perf_counter()
            try:
                response = stub.Predict(request, timeout=30)
                ok, error = len(response.outputs[signatures.ITEM_IDS].string_val) > 0, "no item_ids"
            except grpc.RpcError as failure:
                ok, error = False, f"{failure.code().name}: {failure.details()}"
            if call < 0:
                continue
            with tally.lock:
                tally.good += 1
                if ok:
                    tally.latencies_ms.append((time.perf_counter() - started) * 1000)
                    tally.versions.add(response.model_spec.version.value)
                else:
                    tally.good_failed += 1
                    tally.good_errors.append(error)


def _bad_client(port, index, h, users, items, requests, tally, warm, stop) -> None:  # noqa: ARG001
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for call in range(-2, 10**9):
            if call == 0:
                warm.wait(120)
            if stop.is_set():
                return
            kind = BAD_KINDS[(call + index) % len(BAD_KINDS)]
            try:
                stub.Predict(requests.bad[kind], timeout=30)
                code = "OK"
            except grpc.RpcError as failure:
                code = failure.code().name
            if call >= 0:
                with tally.lock:
                    tally.bad[kind][code] += 1


class _BadRequests:
    """Good requests made to order, and one prebuilt request of each bad kind."""

    def __init__(self, h: int, max_request_rows: int):
        import tensorflow as tf

        self._tf, self.h = tf, h
        bad = {}
        huge = self._request(user_ids=["u"], histories=[[""] * h])
        huge.inputs[signatures.USER_ID].tensor_shape.dim[0].size = 6_000_000  # one value, 6,000,000 declared
        bad["huge_shape"] = huge
        bad["garbage_example"] = self._examples([b"\x0a\xff\xfe\x00 this is no tf.Example \xc3"])
        bad["non_utf8_example"] = self._examples([signatures.serve_example(b"\xff\xfe", [b"\xc3\x28"])])
        wrong = self._request(user_ids=["u"], histories=[[""] * h])
        wrong.inputs[signatures.USER_ID].CopyFrom(tf.make_tensor_proto([7], tf.int64))
        bad["wrong_dtype"] = wrong
        rows = max_request_rows + 1
        bad["too_many_rows"] = self._request(user_ids=["u"] * rows, histories=[[""] * h] * rows)
        self.bad = bad

    def good(self, user: str, history: List[str], examples: bool):
        if examples:
            return self._examples([signatures.serve_example(user, history)])
        return self._request([user], [history[:self.h] + [""] * max(self.h - len(history), 0)])

    def _request(self, user_ids, histories):
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = signatures.MODEL_NAME, signatures.SERVING_DEFAULT
        request.inputs[signatures.USER_ID].CopyFrom(self._tf.make_tensor_proto(user_ids, self._tf.string))
        request.inputs[signatures.HISTORY].CopyFrom(self._tf.make_tensor_proto(histories, self._tf.string))
        return request

    def _examples(self, serialized):
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = signatures.MODEL_NAME, signatures.SERVE_TF_EXAMPLES
        request.inputs[signatures.EXAMPLES].CopyFrom(self._tf.make_tensor_proto(serialized, self._tf.string))
        return request


# --- the server's side ---

def _watch(server, stop: threading.Event, restarts: List[float], rss: List[int]) -> None:
    """Every 0.5 s: the server's resident memory; an exited server is counted and started again."""
    while not stop.wait(0.5):
        if not server.alive():
            restarts.append(time.monotonic())
            server.start()
        try:
            rss.append(server.rss_bytes())
        except Exception:  # noqa: BLE001 (exited since: counted at the next look)
            continue


def _push_copy(base: str) -> int:
    """The latest version copied to a staging name beside it, then renamed to the next integer."""
    versions = sorted(int(name) for name in os.listdir(base) if name.isdigit())
    staging = os.path.join(base, f".incomplete-{versions[-1] + 1}-{os.getpid()}")
    shutil.copytree(os.path.join(base, str(versions[-1])), staging)
    os.rename(staging, os.path.join(base, str(versions[-1] + 1)))
    return versions[-1] + 1


def _ids_of(version_dir: str):
    """Known user and item ids, from the version's warmup records (the exporter writes known users)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    users, items = set(), set()
    path = os.path.join(version_dir, signatures.WARMUP_FILE)
    if os.path.exists(path):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            inputs = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request.inputs
            users.update(v.decode() for v in inputs[signatures.USER_ID].string_val)
            items.update(v.decode() for v in inputs[signatures.HISTORY].string_val if v)
    return sorted(users | {"a-new-user"}), sorted(items) or ["an-unknown-item"]


def _history_length(port: int) -> int:
    from serving.client import RecommendationClient

    with RecommendationClient(f"127.0.0.1:{port}", timeout_s=30) as client:
        return client.history_length()


def _wait_ready(port: int, timeout_s: float, alive) -> None:
    from serving.client import RecommendationClient, ServingError

    deadline = time.monotonic() + timeout_s
    with RecommendationClient(f"127.0.0.1:{port}", timeout_s=5, retries=0) as client:
        while True:
            try:
                client.status()
                return
            except ServingError:
                if not alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the server on port {port} did not start within {timeout_s:.0f} s") from None
                time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main(argv=None) -> int:
    parser = flags.one_line_errors(argparse.ArgumentParser(prog="python -m tfx_pipeline.bench_serving --soak",
                                                           description=__doc__.split("\n\n")[0]))
    parser.add_argument("--model-base-path", required=True, metavar="DIR", help="e.g. a run's serving/recdistill")
    parser.add_argument("--seconds", type=flags.positive_float, default=60.0)
    parser.add_argument("--clients", type=flags.positive_int, default=8)
    parser.add_argument("--bad-share", type=flags.non_negative_float, default=0.2,
                        help="share of the clients sending bad requests (rounded)")
    parser.add_argument("--pushes", type=flags.non_negative_int, default=2, help="versions pushed during the run")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.model_base_path):
        parser.error(f"--model-base-path {args.model_base_path}: no such directory")
    try:
        result = soak(args.model_base_path, args.seconds, args.clients, args.bad_share, args.pushes)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    print(report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    shutil.rmtree(result["work_dir"], ignore_errors=True)
    return 0 if result["passed"] else 1

"""Load benchmark of a finished run's deployed models (not a test): prints figures and writes them
into the run's report.json under "serving".

    .venv/bin/python -m tfx_pipeline.bench_serving DIR [--requests 400] [--clients 1,8]
    .venv/bin/python -m tfx_pipeline.bench_serving --soak --model-base-path DIR/serving/recdistill [--seconds 60] ...

(--soak: good and hostile clients and pushes for a minute against a server in a subprocess,
serving/soak.py.)

Starts `recdistill serve`'s development server in this process on DIR/serving/recdistill, and
sends single-user serving_default requests (known users, their latest items as history) from 1
and then 8 concurrent clients, each its own gRPC channel: p50 and p99 latency per request as the
client sees it, and requests per second. Then the pushed TFLite model's latency per query in
LiteRT on one thread. Clients and server share this machine's cores, as they would on one host.
"""

import argparse
import dataclasses
import glob
import os
import sys
import threading
import time
from typing import Dict, List

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

from models.foundation import signatures  # noqa: E402


def _requests(mobile_dir: str, count: int, seed: int = 0):
    """(user id, history ids) pairs of known users; histories are random known items."""
    from models.vocabulary_file import read_vocabulary

    users = read_vocabulary(os.path.join(mobile_dir, signatures.USER_VOCAB))[1:]
    items = read_vocabulary(os.path.join(mobile_dir, signatures.ITEM_VOCAB))[1:]
    rng = np.random.default_rng(seed)
    return [(users[rng.integers(len(users))], [items[j] for j in rng.integers(len(items), size=5)])
            for _ in range(count)]


def bench_server(base_path: str, mobile_dir: str, requests: int, clients: List[int]) -> Dict:
    from serving import dev_server
    from serving.client import RecommendationClient

    server = dev_server.serve(base_path, 0, poll_seconds=3600)
    results = {}
    try:
        for n in clients:
            work = _requests(mobile_dir, requests)
            latencies, errors, lock = [], [], threading.Lock()

            def client(chunk):
                try:
                    run_client(chunk)
                except Exception as error:  # a failed client must fail the benchmark, not thin it
                    errors.append(error)

            def run_client(chunk):
                with RecommendationClient(f"127.0.0.1:{server.port}", timeout_s=10) as c:
                    c.recommend([chunk[0][0]], [chunk[0][1]])  # the channel and H, before timing
                    for user, history in chunk:
                        start = time.perf_counter()
                        c.recommend([user], [history])
                        with lock:
                            latencies.append((time.perf_counter() - start) * 1000)

            threads = [threading.Thread(target=client, args=(work[i::n],)) for i in range(n)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - started
            if errors:
                raise RuntimeError(f"{len(errors)} of {n} clients failed: {errors[0]}")
            results[f"clients_{n}"] = {"requests": len(latencies), "p50_ms": round(float(np.percentile(latencies, 50)), 3),
                                       "p99_ms": round(float(np.percentile(latencies, 99)), 3),
                                       "qps": round(len(latencies) / seconds, 1)}
        results["batching"] = dataclasses.asdict(server.batch_stats())
    finally:
        server.stop(0)
    return results


def bench_tflite(mobile_dir: str, calls: int = 2000) -> Dict:
    from models.foundation.tflite_runner import TFLiteRanker

    ranker = TFLiteRanker(os.path.join(mobile_dir, signatures.TFLITE_FILE), num_threads=1)
    history = list(range(1, ranker.history_length + 1))
    ranker.rank(1, history)
    times = []
    for call in range(calls):
        start = time.perf_counter()
        ranker.rank(1 + call % 100, history)
        times.append((time.perf_counter() - start) * 1e6)
    return {"p50_us": round(float(np.percentile(times, 50)), 1), "p99_us": round(float(np.percentile(times, 99)), 1),
            "threads": 1}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--soak" in argv:
        from serving import soak

        return soak.main([arg for arg in argv if arg != "--soak"])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", metavar="DIR", help="a finished run's output directory")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", default="1,8")
    args = parser.parse_args(argv)
    from tfx_pipeline import report, report_files

    clients = [int(c) for c in args.clients.split(",")]
    if min(clients) < 1 or args.requests < max(clients):
        parser.error("--clients must be positive and --requests at least the largest of them")
    if not os.path.isfile(os.path.join(args.run, report.REPORT_DIR, "report.json")):
        parser.error(f"{args.run}: no report/report.json (has `recdistill run` finished there?)")
    base = os.path.join(args.run, "serving", signatures.MODEL_NAME)
    mobiles = sorted(glob.glob(os.path.join(args.run, "mobile", "*")), key=lambda p: int(os.path.basename(p))
                     if os.path.basename(p).isdigit() else -1)
    if not os.path.isdir(base) or not mobiles:
        parser.error(f"{args.run}: no pushed models (serving/recdistill/ and mobile/<version>/); was it blessed?")
    results = {"server": bench_server(base, mobiles[-1], args.requests, clients),
               "tflite": bench_tflite(mobiles[-1]), "note": "development server (recdistill serve), this machine"}
    for name, entry in results["server"].items():
        if name.startswith("clients_"):
            print(f"server, {name.split('_')[1]} client(s): p50 {entry['p50_ms']:.2f} ms, p99 {entry['p99_ms']:.2f} ms, "
                  f"{entry['qps']:.0f} requests/s")
    print(f"tflite, one thread: p50 {results['tflite']['p50_us']:.0f} us, p99 {results['tflite']['p99_us']:.0f} us")
    written = report.read_report(args.run)
    written["serving"] = results
    report_files.write_report(args.run, written)
    print(f"written to {os.path.join(args.run, report.REPORT_DIR, 'report.json')} (key: serving)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark (not a test): ingestion + validation + Transform on synthetic data of growing size.

    .venv/bin/python -m tfx_pipeline.bench_ingest [--sizes 100000,1000000] [--workers 1]

For each size it writes a synthetic dataset (users = rows / 100, items = rows / 200), runs
`recdistill run --until Transform` in a fresh process and prints wall time, the slowest
components, throughput and the peak resident memory of the run (the largest process of its tree).
Results also go to runs/bench/ingest.json.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from tfx_pipeline.datasets.synth import write_synthetic


def bench_one(rows: int, workers: int, root: str) -> dict:
    data = os.path.join(root, f"data-{rows}")
    if not os.path.exists(os.path.join(data, "synth.json")):
        write_synthetic(data, users=max(rows // 100, 10), items=max(rows // 200, 10), interactions=rows, seed=0)
    output = os.path.join(root, f"run-{rows}-w{workers}")
    config = os.path.join(root, f"workers-{workers}.yaml")
    with open(config, "w") as f:
        f.write(f"beam_workers: {workers}\n")
    subprocess.run(["rm", "-rf", output], check=True)
    started = time.monotonic()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    result = subprocess.run(
        [sys.executable, "-m", "tfx_pipeline.cli", "run", "--data", data, "--output", output,
         "--config", config, "--until", "Transform"], capture_output=True, text=True)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"run of {rows:,} rows failed:\n{result.stderr[-2000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kib, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime - cpu_before
    with open(os.path.join(output, "report", "report.json")) as f:
        report = json.load(f)
    return {
        "rows": rows,
        "workers": workers,
        "wall_seconds": round(wall, 1),
        "components": report["wall_seconds"],
        "rows_per_second": round(rows / wall),
        # The cost per million rows: wall seconds, and CPU seconds of every process of the run
        # (what a machine-hour price is paid for; Beam worker processes included).
        "wall_seconds_per_million": round(wall / rows * 1e6, 1),
        "cpu_seconds_per_million": round(cpu / rows * 1e6, 1),
        # ru_maxrss of children is the largest one seen so far: only meaningful when it grew.
        "peak_rss_mib": round(peak_kib / 1024) if peak_kib > before else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--root", default=os.path.join("runs", "bench"))
    args = parser.parse_args(argv)
    os.makedirs(args.root, exist_ok=True)
    results = []
    print(f"{'rows':>10}  {'workers':>7}  {'wall s':>7}  {'rows/s':>7}  {'s/1M':>6}  {'cpu s/1M':>8}  {'peak MiB':>8}  "
          "slowest components")
    for rows in (int(s) for s in args.sizes.split(",")):
        r = bench_one(rows, args.workers, args.root)
        slowest = sorted(((s, c) for c, s in r["components"].items() if c != "total"), reverse=True)[:3]
        print(f"{r['rows']:>10,}  {r['workers']:>7}  {r['wall_seconds']:>7.1f}  {r['rows_per_second']:>7,}  "
              f"{r['wall_seconds_per_million']:>6.0f}  {r['cpu_seconds_per_million']:>8.0f}  {r['peak_rss_mib'] or '-':>8}  " + ", ".join(f"{c} {s:.0f} s" for s, c in slowest), flush=True)
        results.append(r)
    with open(os.path.join(args.root, "ingest.json"), "w") as f:
        json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

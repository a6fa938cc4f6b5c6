"""Benchmark (not a test): the whole DAG on synthetic data of growing size, component by component.

    make bench-scale   (= .venv/bin/python -m tfx_pipeline.bench_scale --sizes 100000,1000000 --output runs/bench-scale)
    .venv/bin/python -m tfx_pipeline.bench_scale [--sizes N,N,...] [--output DIR] [--config FILE]
    .venv/bin/python -m tfx_pipeline.bench_scale --from-runs [--output DIR] [--sizes N,N,...]

For each size N it writes a synthetic dataset (`recdistill synth --users N/100 --items 5000
--interactions N`, kept in DIR/data-N for the next bench) and runs `recdistill run` on it in a fresh
process (DIR/run-N, emptied first so that no cached execution answers), polling the resident memory
of that process and its children every second. Per component it reads the run's report.json: wall
seconds, CPU seconds and peak resident MiB (models/foundation/progress.py measures them); the row
"process" is the whole `recdistill run` process as this bench saw it (imports included).

It writes DIR/scale.json and prints one Markdown table per figure: its value at every size, the
growth exponent between consecutive sizes, log(v2 / v1) / log(n2 / n1) (1.0: linear), and a
projection to 10M and 100M rows from the last exponent, v * (target / n) ** exponent.
--from-runs reads the run directories already in DIR (those of --sizes, or every DIR/run-N) and
runs nothing: the tables again, after a change to this file.

Caveats: projections extrapolate two points (fixed costs such as imports flatten small sizes'
exponents, so 100K -> 1M underestimates the growth of a term that dominates later); peak memory is
a sum of resident sets over processes, pages they share counted in each.
"""

import argparse
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from models.foundation.progress import process_tree_rss_mib

FIGURES = {"wall_seconds": "wall s", "cpu_seconds": "CPU s", "peak_rss_mib": "peak MiB"}
TARGETS = (10_000_000, 100_000_000)
PROCESS = "process"  # the row of the whole `recdistill run` process, as measured here
ITEMS = 5000
BENCH_FILE = "bench.json"  # in each run directory: what this bench measured of the process

Measurements = Dict[str, Dict[str, Optional[float]]]  # {component: {figure: value}}


def growth_exponent(n1: float, v1: Optional[float], n2: float, v2: Optional[float]) -> Optional[float]:
    """log(v2 / v1) / log(n2 / n1): v grows as n ** exponent between the two sizes (None when undefined)."""
    if v1 is None or v2 is None or v1 <= 0 or v2 <= 0 or n1 <= 0 or n2 <= 0 or n1 == n2:
        return None
    return math.log(v2 / v1) / math.log(n2 / n1)


def project(n: float, value: Optional[float], exponent: Optional[float], target: float) -> Optional[float]:
    """value * (target / n) ** exponent: the value at `target` rows if the growth stays the same."""
    if value is None or exponent is None:
        return None
    return value * (target / n) ** exponent


def measurements_from_report(report: Dict[str, Any], process: Optional[Dict[str, Any]] = None) -> Measurements:
    """{component: {wall_seconds, cpu_seconds, peak_rss_mib}} of one run's report.json (+ the process row)."""
    resources = report.get("resources") or {}
    rows: Measurements = {}
    for name, seconds in (report.get("wall_seconds") or {}).items():
        used = resources.get(name) or {}
        peak = report.get("peak_rss_mib") if name == "total" else used.get("peak_rss_mib")
        rows[name] = {"wall_seconds": seconds, "cpu_seconds": used.get("cpu_seconds"), "peak_rss_mib": peak}
    if process:
        rows[PROCESS] = {figure: process.get(figure) for figure in FIGURES}
    return rows


def scale_summary(by_size: Dict[int, Measurements], targets: Sequence[int] = TARGETS) -> Dict[str, Any]:
    """Per component and figure: values by size, exponents between consecutive sizes, projections.

    {"sizes": [n...], "targets": [...], "components": {component: {figure: {"values": {"n": v},
    "exponents": {"n1->n2": e}, "projected": {"target": v}}}}}; JSON keys are strings.
    """
    sizes = sorted(by_size)
    components: List[str] = []
    for n in sizes:
        components += [c for c in by_size[n] if c not in components]
    table: Dict[str, Any] = {}
    for component in components:
        table[component] = {}
        for figure in FIGURES:
            values = [(by_size[n].get(component) or {}).get(figure) for n in sizes]
            exponents = [growth_exponent(n1, v1, n2, v2)
                         for (n1, v1), (n2, v2) in zip(zip(sizes, values), zip(sizes[1:], values[1:]))]
            last = exponents[-1] if exponents else None
            table[component][figure] = {
                "values": {str(n): v for n, v in zip(sizes, values)},
                "exponents": {f"{n1}->{n2}": _round(e, 3) for n1, n2, e in zip(sizes, sizes[1:], exponents)},
                "projected": {str(t): _round(project(sizes[-1], values[-1], last, t), 1) for t in targets},
            }
    return {"sizes": sizes, "targets": list(targets), "components": table}


def render_tables(summary: Dict[str, Any]) -> str:
    """One Markdown table per figure: component | value at each size | exponents | projections."""
    sizes, targets = summary["sizes"], summary["targets"]
    lines: List[str] = []
    for figure, label in FIGURES.items():
        header = (["component"] + [f"{label} @ {n:,}" for n in sizes]
                  + [f"exponent {n1:,}->{n2:,}" for n1, n2 in zip(sizes, sizes[1:])]
                  + [f"{label} @ {t:,} (projected)" for t in targets])
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for component, figures in summary["components"].items():
            entry = figures[figure]
            cells = ([_cell(entry["values"][str(n)], ",.1f") for n in sizes]
                     + [_cell(e, ".2f") for e in entry["exponents"].values()]
                     + [_cell(entry["projected"][str(t)], ",.0f") for t in targets])
            lines.append("| " + " | ".join([component] + cells) + " |")
        lines.append("")
    return "\n".join(lines)


def read_run(run_dir: str) -> Measurements:
    """The measurements of a finished run directory (report/report.json and this bench's bench.json)."""
    with open(os.path.join(run_dir, "report", "report.json")) as f:
        report = json.load(f)
    process = None
    if os.path.exists(os.path.join(run_dir, BENCH_FILE)):
        with open(os.path.join(run_dir, BENCH_FILE)) as f:
            process = json.load(f)
    return measurements_from_report(report, process)


def bench_one(rows: int, root: str, config: Optional[str]) -> Measurements:
    """Synthesises `rows` interactions (unless there already), runs the pipeline on them, measures it."""
    data = os.path.join(root, f"data-{rows}")
    if not os.path.exists(os.path.join(data, "synth.json")):
        subprocess.run([sys.executable, "-m", "tfx_pipeline.cli", "synth", "--users", str(max(rows // 100, 10)),
                        "--items", str(ITEMS), "--interactions", str(rows), "--output", data], check=True)
    output = os.path.join(root, f"run-{rows}")
    shutil.rmtree(output, ignore_errors=True)
    command = [sys.executable, "-m", "tfx_pipeline.cli", "run", "--data", data, "--output", output]
    process = _measure(command + (["--config", config] if config else []))
    if process.pop("returncode") != 0:
        raise SystemExit(f"bench_scale: the run of {rows:,} rows failed; see {output}/logs/pipeline.log")
    with open(os.path.join(output, BENCH_FILE), "w") as f:
        json.dump(process, f, indent=2)
    return read_run(output)


def _measure(command: List[str]) -> Dict[str, Any]:
    """Runs `command` (output passed through); its wall and CPU seconds and the largest resident MiB of its tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    child = subprocess.Popen(command)
    peak = 0.0
    while True:
        peak = max(peak, process_tree_rss_mib(child.pid) or 0.0)
        try:
            child.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            pass
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child is waited for: its CPU counts here
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"returncode": child.returncode, "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "peak_rss_mib": round(peak, 1) if peak else None}


def _run_sizes(root: str) -> List[int]:
    """N of every DIR/run-N with a report."""
    found = (re.fullmatch(r"run-(\d+)", name) for name in os.listdir(root))
    return sorted(int(m.group(1)) for m in found
                  if m and os.path.exists(os.path.join(root, m.group(0), "report", "report.json")))


def _round(value: Optional[float], digits: int) -> Optional[float]:
    return None if value is None else round(value, digits)


def _cell(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help="interaction rows, comma-separated (default 100000,1000000; "
                                        "with --from-runs: every run-N in --output)")
    parser.add_argument("--output", default=os.path.join("runs", "bench-scale"))
    parser.add_argument("--config", help="a pipeline settings file for every run (recdistill run --config)")
    parser.add_argument("--from-runs", action="store_true", help="read the run directories in --output, run nothing")
    args = parser.parse_args(argv)
    if args.sizes:
        sizes = sorted(int(s) for s in args.sizes.split(","))
    else:
        sizes = _run_sizes(args.output) if args.from_runs and os.path.isdir(args.output) else [100_000, 1_000_000]
    if args.from_runs:
        missing = [n for n in sizes if not os.path.exists(os.path.join(args.output, f"run-{n}", "report", "report.json"))]
        if missing or not sizes:
            print(f"bench_scale: no finished run in {args.output} for {missing or 'any size'}", file=sys.stderr)
            return 2
        by_size = {n: read_run(os.path.join(args.output, f"run-{n}")) for n in sizes}
    else:
        os.makedirs(args.output, exist_ok=True)
        config = os.path.abspath(args.config) if args.config else None
        by_size = {n: bench_one(n, args.output, config) for n in sizes}
    summary = scale_summary(by_size)
    with open(os.path.join(args.output, "scale.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(render_tables(summary), end="")
    print(f"scale.json: {os.path.join(args.output, 'scale.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark (not a test): re-distillation as the data moves, span by span, for several policies.

    make bench-continuous   (= .venv/bin/python -m tfx_pipeline.bench_continuous --movielens --synthetic
                               --output runs/bench-continuous)
    .venv/bin/python -m tfx_pipeline.bench_continuous --synthetic --output DIR [--config FILE]
        [--policies warm,scratch,frozen,ease,trending] [--last-span N]

Data: MovieLens-100K replayed as 4-week spans (tfx_pipeline/datasets/time_spans.py) and synthetic
weekly spans with an abrupt shift at span 5 (`recdistill synth --spans 8 --shift-at 5`). For every
span k from 2 on, each policy's model, trained on the spans up to k, is ranked on span k + 1 (the
next-span ndcg@10, seen items removed: tfx_pipeline/next_span.py):
  warm      `recdistill run` on spans 1..k into one run directory per data set, so ML Metadata keeps
            the last blessed model: the drift check decides, the teacher warm-starts, the push gate
            compares with the served model; measured: the served int8 model (the latest pushed)
  scratch   the same into a fresh run directory per span: everything from scratch, every span; when
            the push gate refuses a span's candidate, the previous span's pushed model stays served;
            at the first span it is the warm policy's run (an empty directory both), run once
  frozen    the model served after span 2, never retrained
  ease      EASE (l2 --ease-l2) refit on the window's spans, scored in numpy
  trending  the most popular items of the last --trending-days of history, for everyone (a floor)
Per span and policy: ndcg@10 on span k + 1, wall seconds of the run, the drift decision, where the
teacher started, whether it pushed. Writes DIR/continuous.json, DIR/quality_over_spans.png and
prints a Markdown table per data set with the means over the spans after the first two.

Each pipeline run takes what `recdistill run` takes on that data (MovieLens-100K: about 8 minutes
here from scratch), so the whole bench is hours on two cores; --last-span shortens it.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional

from tfx_pipeline import next_span

POLICIES = ("warm", "scratch", "frozen", "ease", "trending")
PIPELINE_POLICIES = ("warm", "scratch", "frozen")


def view(data_dir: str, k: int, into: str) -> str:
    """A directory holding spans 1..k of data_dir (symbolic links): the data as it stood after span k."""
    shutil.rmtree(into, ignore_errors=True)
    os.makedirs(into)
    for span in range(1, k + 1):
        os.symlink(os.path.abspath(os.path.join(data_dir, f"span-{span}")), os.path.join(into, f"span-{span}"))
    return into


def run_pipeline(data: str, output: str, config: Optional[str]) -> Dict:
    """`recdistill run` in a fresh process; {"seconds", "report"} (report: its report.json, or None)."""
    command = [sys.executable, "-m", "tfx_pipeline.cli", "run", "--data", data, "--output", output]
    command += ["--config", config] if config else []
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = round(time.monotonic() - started, 1)
    if result.returncode != 0:
        raise RuntimeError(f"recdistill run on {data} failed: {result.stderr.strip()[-2000:]}")
    with open(os.path.join(output, "report", "report.json")) as f:
        return {"seconds": seconds, "report": json.load(f)}


def served(output: str) -> Optional[str]:
    """The latest pushed mobile version of a run directory (None before any push)."""
    base = os.path.join(output, "mobile")
    versions = sorted((int(v) for v in os.listdir(base) if v.isdigit()), reverse=True) if os.path.isdir(base) else []
    return os.path.join(base, str(versions[0])) if versions else None


def bench_data(name: str, data_dir: str, out: str, policies, config: Optional[str], window: int, last_span: int,
               ease_l2: float, trending_days: int, first_span: int = 2) -> List[Dict]:
    rows, frozen, last_scratch, first_run = [], None, None, None
    if first_span > 2:  # resumed: the run directories of the spans before are where they were left
        frozen = served(os.path.join(out, f"{name}-scratch-2"))
        last_scratch = next((served(os.path.join(out, f"{name}-scratch-{k}")) for k in range(first_span - 1, 1, -1)
                             if served(os.path.join(out, f"{name}-scratch-{k}"))), None)
    for k in range(first_span, last_span):
        dataset = next_span.next_span_dataset(data_dir, k, range(1, k + 1))
        spans_in_window = range(max(1, k - window + 1), k + 1)
        here = view(data_dir, k, os.path.join(out, f"{name}-data-{k}"))
        for policy in policies:
            row = {"data": name, "trained_to": k, "tested_on": k + 1, "policy": policy}
            if policy in ("warm", "scratch"):
                output = os.path.join(out, f"{name}-warm" if policy == "warm" else f"{name}-scratch-{k}")
                if policy == "scratch" and first_run is not None and first_run["k"] == k:
                    # The first span: both policies run on the same data and config into an empty
                    # directory, the same run; it ran once, for the warm policy.
                    row.update({key: first_run["row"][key] for key in ("seconds", "pushed", "decision", "teacher")},
                               same_run_as="warm")
                    model = first_run["model"]
                else:
                    if policy == "scratch":
                        shutil.rmtree(output, ignore_errors=True)
                    first = not os.path.exists(output)
                    ran = run_pipeline(here, output, config)
                    report = ran["report"]
                    row.update(seconds=ran["seconds"], pushed=bool(report.get("pushed", {}).get("mobile")),
                               decision=(report.get("drift") or {}).get("decision"),
                               teacher=((report.get("warm_start") or {}).get("teacher") or {}).get("reason"))
                    model = served(output)  # a version directory: later pushes add others beside it
                    if policy == "warm" and first:
                        first_run = {"k": k, "row": row, "model": model}
                if policy == "scratch":
                    model = last_scratch = model or last_scratch  # a refused candidate: the last push serves
                    frozen = model if k == 2 else frozen
                row["ndcg@10"] = next_span.tflite_ndcg(model, dataset) if model else None
            elif policy == "frozen":
                row["ndcg@10"] = next_span.tflite_ndcg(frozen, dataset) if frozen else None
            elif policy == "ease":
                started = time.monotonic()
                window_rows = next_span.window_indices(dataset, data_dir, spans_in_window)
                row["ndcg@10"] = next_span.ease_ndcg(dataset, window_rows["users"], window_rows["items"], ease_l2)
                row["seconds"] = round(time.monotonic() - started, 1)
            else:
                row["ndcg@10"] = next_span.trending_ndcg(dataset, trending_days)
            if row.get("ndcg@10") is not None:
                row["ndcg@10"] = round(row["ndcg@10"], 4)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def summary(rows: List[Dict], skip: int = 2) -> Dict[str, Dict]:
    """Per data set and policy: mean ndcg@10 and seconds over the spans tested after the first `skip`
    trained ones (trained_to > skip), and the ratios the issue asks for, each over the spans where
    both policies have a figure (a policy with nothing served yet has none)."""
    out: Dict[str, Dict] = {}
    for name in sorted({r["data"] for r in rows}):
        means = {}
        for policy in POLICIES:
            mine = [r for r in rows if r["data"] == name and r["policy"] == policy and r["trained_to"] > skip
                    and r.get("ndcg@10") is not None]
            if mine:
                seconds = [r["seconds"] for r in mine if r.get("seconds") is not None]
                means[policy] = {"ndcg@10": round(sum(r["ndcg@10"] for r in mine) / len(mine), 4),
                                 "seconds": round(sum(seconds) / len(seconds), 1) if seconds else None,
                                 "spans": len(mine)}
        ratios = {}
        for other in ("scratch", "frozen", "ease", "trending"):
            pairs = _paired(rows, name, "warm", other, skip)
            if pairs and sum(b["ndcg@10"] for _, b in pairs):
                ratios[f"warm/{other} ndcg@10"] = round(sum(a["ndcg@10"] for a, _ in pairs)
                                                        / sum(b["ndcg@10"] for _, b in pairs), 3)
            if other == "scratch" and pairs and all(a.get("seconds") and b.get("seconds") for a, b in pairs):
                ratios["warm/scratch seconds"] = round(sum(a["seconds"] for a, _ in pairs)
                                                       / sum(b["seconds"] for _, b in pairs), 3)
        out[name] = {"means": means, "ratios": ratios}
    return out


def _paired(rows: List[Dict], name: str, first: str, second: str, skip: int) -> List[tuple]:
    """(first's row, second's row) of the spans after `skip` where both have an ndcg@10."""
    def of(policy):
        return {r["trained_to"]: r for r in rows if r["data"] == name and r["policy"] == policy
                and r["trained_to"] > skip and r.get("ndcg@10") is not None}
    mine, theirs = of(first), of(second)
    return [(mine[k], theirs[k]) for k in sorted(set(mine) & set(theirs))]


def plot(rows: List[Dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = sorted({r["data"] for r in rows})
    figure, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
    for axis, name in zip(axes[0], names):
        for policy in POLICIES:
            mine = [r for r in rows if r["data"] == name and r["policy"] == policy and r.get("ndcg@10") is not None]
            if mine:
                axis.plot([r["tested_on"] for r in mine], [r["ndcg@10"] for r in mine], marker="o", label=policy)
        axis.set_title(f"{name}: next-span ndcg@10")
        axis.set_xlabel("span tested on")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # spans are whole numbers
        axis.legend()
    figure.tight_layout()
    figure.savefig(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfx_pipeline.bench_continuous", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True)
    parser.add_argument("--movielens", action="store_true", help="MovieLens-100K in 4-week spans")
    parser.add_argument("--synthetic", action="store_true", help="8 synthetic weekly spans, a shift at 5")
    parser.add_argument("--config", help="the pipeline's config for every run (default: the defaults)")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--last-span", type=int, default=0, help="test on spans up to this one (default: all)")
    parser.add_argument("--first-span", type=int, default=2,
                        help="train up to this span first (default 2; later: resume a bench in the same --output)")
    parser.add_argument("--window", type=int, default=4, help="the spans EASE is refit on (as spans.window)")
    parser.add_argument("--ease-l2", type=float, default=200.0)
    parser.add_argument("--trending-days", type=int, default=28)
    parser.add_argument("--synthetic-scale", type=float, default=1.0,
                        help="the synthetic spans' size: 2,000 users, 1,000 items, 160,000 interactions times this")
    args = parser.parse_args(argv)
    policies = [p for p in args.policies.split(",") if p]
    unknown = sorted(set(policies) - set(POLICIES))
    if unknown or ("frozen" in policies and "scratch" not in policies):
        parser.error(f"policies are {', '.join(POLICIES)} (frozen needs scratch), got {args.policies}")
    os.makedirs(args.output, exist_ok=True)
    data = {}
    if args.synthetic:
        from tfx_pipeline.datasets.synth_spans import write_synthetic_spans

        data["synthetic"] = os.path.join(args.output, "synthetic")
        if not os.path.isdir(os.path.join(data["synthetic"], "span-8")):
            scale = args.synthetic_scale
            write_synthetic_spans(data["synthetic"], spans=8, users=round(2000 * scale), items=round(1000 * scale),
                                  interactions=round(160_000 * scale), seed=0, shift_at=5)
    if args.movielens:
        from tfx_pipeline.datasets.movielens import prepare_movielens_100k
        from tfx_pipeline.datasets.time_spans import write_time_spans

        flat = prepare_movielens_100k(os.path.join(args.output, "movielens-flat"))
        data["movielens"] = os.path.join(args.output, "movielens")
        if not os.path.isdir(os.path.join(data["movielens"], "span-1")):
            write_time_spans(str(flat), data["movielens"], days=28)
    if not data:
        parser.error("name at least one data set: --movielens, --synthetic")
    rows = []
    for name, directory in data.items():
        spans = sorted(int(d.split("-")[1]) for d in os.listdir(directory) if d.startswith("span-"))
        last = min(spans[-1], args.last_span) if args.last_span else spans[-1]
        rows += bench_data(name, directory, args.output, policies, args.config, args.window, last, args.ease_l2,
                           args.trending_days, args.first_span)
    result = {"rows": rows, "summary": summary(rows)}
    with open(os.path.join(args.output, "continuous.json"), "w") as f:
        json.dump(result, f, indent=2)
    plot(rows, os.path.join(args.output, "quality_over_spans.png"))
    for name, found in result["summary"].items():
        print(f"\n{name}: means over the spans tested after the first two")
        print("| policy | ndcg@10 | seconds | spans |\n|---|---:|---:|---:|")
        for policy, m in found["means"].items():
            print(f"| {policy} | {m['ndcg@10']:.4f} | {m['seconds'] if m['seconds'] is not None else '-'} | {m['spans']} |")
        print(", ".join(f"{k} {v}" for k, v in found["ratios"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark (not a test): the compression frontier, rank x whole items x target sparsity x {float, int8}.

    make bench-compression   (= .venv/bin/python -m tfx_pipeline.bench_compression --movielens
                                --output runs/bench-compression)
    .venv/bin/python -m tfx_pipeline.bench_compression --run RUN_DIR --output DIR
        [--ranks none,16,8,4] [--full-rank-items 0,0.5] [--sparsities 0.6,0.75,0.9]

Takes a finished `recdistill run` directory (--run; --movielens runs `recdistill run` on
MovieLens-100K into DIR/movielens-run first, when it is not there) and compresses its KD student
again at every point, with the StudentCompressor's own code (components/compression/compress.py:
factorized to `rank` (models/factorization.py) after the `full-rank-items` most frequent items
(a share of the catalog or a count; kept whole: mixed dimensions), pruned to `target_sparsity` of every embedding
table, the scoring layers at the configuration's dense_sparsity, then QAT). Each point's float
TFLite (factorized and pruned, not quantized) and int8 TFLite are measured on the run's test split
as the evaluator measures the pushed model: ndcg@10, bytes, gzip bytes, LiteRT latency p50 (one
user per call, one thread). The uncompressed KD student's float TFLite is the reference.

`pick` is the int8 point of the smallest gzip size whose ndcg@10 is at least 0.984 x the
uncompressed student's (the push gate's 0.98 with headroom), on this one run. The default
(CompressionConfig.rank and full_rank_items) is the point of the smallest MovieLens-100K gzip size
among those that keep >= 0.984 x on both MovieLens-100K and 1M synthetic interactions (x the int8
model without factorization there), the larger catalog being the binding one: the figures are in
docs/student-and-compression.md ("Mixed dimensions").

Writes DIR/frontier.json and DIR/frontier.png (ndcg@10 against gzip bytes, one line per rank),
and prints a Markdown table.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

# The pick: the smallest int8 gzip size at >= this share of the uncompressed ndcg@10: the push gate's
# 0.98 (bless_tolerance 0.02) with 0.004 of headroom, so that the default is not refused by the noise
# of other data.
RULE_SHARE = 0.984


def artifact(run_dir: str, component: str, output: str) -> str:
    """The newest artifact directory of a component's output in a run's pipeline_root."""
    base = os.path.join(run_dir, "pipeline_root", component, output)
    ids = sorted((int(name) for name in os.listdir(base) if name.isdigit()), reverse=True) if os.path.isdir(base) else []
    if not ids:
        raise FileNotFoundError(f"{base}: no artifact; run `recdistill run` into {run_dir} first")
    return os.path.join(base, str(ids[0]))


def _share_or_count(text: str):
    """"0.5" or "1.0" a share of the catalog (a float), "2500" a count (an int)."""
    text = text.strip()
    return float(text) if any(mark in text.lower() for mark in ".e") else int(text)


def parse_ranks(text: str) -> List[Optional[int]]:
    return [None if value.strip().lower() == "none" else int(value) for value in text.split(",") if value.strip()]


def measure(path: str, dataset, evaluator, latest, params: int, difference=None) -> Dict:
    """The evaluator's entry for a TFLite file (ndcg@10, bytes, gzip bytes, latency); difference: the
    recency prior's test-start correction (components/evaluation/test_start_prior.py)."""
    from components.evaluation import evaluate

    entry = evaluate.tflite_entry(path, evaluator, latest, params, difference=difference)
    return {key: entry[key] for key in ("ndcg@10", "recall@10", "bytes", "gzip_bytes", "latency_ms_p50", "params")}


def frontier(run_dir: str, ranks: List[Optional[int]], sparsities: List[float], out: str,
             full_rank_items: List[float] = (0,)) -> Dict:
    import dataclasses

    from components.compression import compress
    from components.evaluation import test_start_prior
    from components.evaluation.protocol import TRAINING_SPLITS
    from components.teacher import training as teacher_training
    from models import artifacts, compression, deployable, mobile_export, recency_prior
    from models.foundation import signatures
    from models.retrieval_metrics import split_evaluator

    student_dir = artifact(run_dir, "StudentTrainer", "model")
    scored = artifact(run_dir, "TeacherScorer", "scored_examples")
    train_files = [os.path.join(scored, split, "*") for split in sorted(os.listdir(scored)) if split.startswith("Split-")]
    compressed_dir = artifact(run_dir, "StudentCompressor", "model")
    with open(os.path.join(compressed_dir, "compression.json")) as f:
        base = compression.CompressionConfig(**{k: v for k, v in json.load(f)["config"].items()
                                                if k in {x.name for x in dataclasses.fields(compression.CompressionConfig)}})
    points, reference = [], None
    # without a rank nothing is factorized, so the whole-items axis applies to ranked points only
    grid = [(rank, whole, share) for rank in ranks for whole in (full_rank_items if rank else [0])
            for share in sparsities]
    for rank, whole, share in grid:
        # the axis is the share kept whole as given: no coverage floor above it
        config = dataclasses.replace(base, rank=rank, full_rank_items=whole, full_rank_coverage=0.0,
                                     target_sparsity=share)
        done = compress.compress(train_files, student_dir, config)
        history = done.kd.config.history
        dataset = done.dataset
        evaluator = split_evaluator(dataset, TRAINING_SPLITS, "test")
        latest = teacher_training.latest_histories(dataset, history)
        params = done.log["factorization"]["params"]
        with open(os.path.join(student_dir, "training.json")) as f:  # the prior as of the test's start
            difference = test_start_prior.correction(os.path.join(student_dir, artifacts.SAVED_MODEL_DIR),
                                                     json.load(f)["student_kd"].get("recency_prior"), dataset)
        forms = {"float": (done.pruned, False), "int8": (done.quantized, True)}
        if reference is None:
            forms["uncompressed"] = (done.reference, False)
        for form, (model, int8) in forms.items():
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, signatures.TFLITE_FILE)
                content = mobile_export.convert(recency_prior.with_prior(model, done.prior), done.bins, history,
                                                int8=int8, num_users=dataset.num_users)
                with open(path, "wb") as f:
                    f.write(content)
                with open(os.path.join(tmp, signatures.METADATA), "w") as f:
                    json.dump({"history": history}, f)
                found = measure(path, dataset, evaluator, latest,
                                deployable.params(done.reference) if form == "uncompressed" else params, difference)
            row = {"rank": rank, "full_rank_items": whole, "target_sparsity": share,
                   "dense_sparsity": config.dense_sparsity, "form": form, **found,
                   "zero_share": mobile_export.zero_share(content)["zero_share"] if int8 else None}
            if form == "uncompressed":
                reference = {**row, "rank": None, "full_rank_items": 0, "target_sparsity": 0.0,
                             "dense_sparsity": 0.0}
                print(json.dumps(reference), flush=True)
                continue
            print(json.dumps(row), flush=True)
            points.append(row)
    result = {"run": run_dir, "reference": reference, "points": points, "pick": pick(points, reference)}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "frontier.json"), "w") as f:
        json.dump(result, f, indent=2)
    plot(result, os.path.join(out, "frontier.png"))
    return result


def pick(points: List[Dict], reference: Optional[Dict], share: float = RULE_SHARE) -> Optional[Dict]:
    """The int8 point of the smallest gzip bytes with ndcg@10 >= share x the uncompressed student's."""
    if not reference:
        return None
    good = [p for p in points if p["form"] == "int8" and p["ndcg@10"] >= share * reference["ndcg@10"]]
    return min(good, key=lambda p: (p["gzip_bytes"], -p["ndcg@10"])) if good else None


def _line(point: Dict) -> tuple:
    return point["rank"] or 0, point.get("full_rank_items") or 0


def _rank_label(point: Dict) -> str:
    """"rank 8" or "rank 8, first 0.25 whole" (mixed dimensions) or "rank full"."""
    whole = point.get("full_rank_items") or 0
    return f"rank {point['rank'] or 'full'}" + (f", first {whole} whole" if whole and point["rank"] else "")


def plot(result: Dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    # one color per (rank, whole items), full rank first
    lines = sorted({_line(p) for p in result["points"]}, key=lambda line: (-(line[0] or 10 ** 6), line[1]))
    colors = {line: plt.get_cmap("tab10")(i % 10) for i, line in enumerate(lines)}
    for line in lines:
        for form, marker in (("int8", "s"), ("float", "o")):
            mine = sorted((p for p in result["points"] if p["form"] == form and _line(p) == line),
                          key=lambda p: p["gzip_bytes"])
            if mine:
                ax.plot([p["gzip_bytes"] / 1024 for p in mine], [p["ndcg@10"] for p in mine], marker=marker,
                        color=colors[line], linestyle="-" if form == "int8" else ":",
                        label=f"{_rank_label(mine[0])}, {form}")
    ref = result.get("reference")
    if ref:
        ax.scatter([ref["gzip_bytes"] / 1024], [ref["ndcg@10"]], marker="*", s=120, color="black",
                   label="uncompressed (float)", zorder=5)
        ax.axhline(RULE_SHARE * ref["ndcg@10"], color="grey", linewidth=0.8, linestyle="--",
                   label=f"{RULE_SHARE} x uncompressed")
    ax.set_xscale("log")
    ax.set_xlabel("gzip KiB of the TFLite model (log)")
    ax.set_ylabel("test ndcg@10")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(result: Dict) -> str:
    ref = result["reference"]
    lines = ["| rank | items whole | target sparsity | form | ndcg@10 | x uncompressed | bytes | gzip bytes | x smaller (gzip) | p50 ms |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for p in [ref] + result["points"]:
        lines.append(f"| {p['rank'] or 'full'} | {p.get('full_rank_items') or 0} | {p['target_sparsity']} | {p['form']} | {p['ndcg@10']:.4f} | "
                     f"{p['ndcg@10'] / ref['ndcg@10']:.3f} | {p['bytes']:,} | {p['gzip_bytes']:,} | "
                     f"{ref['bytes'] / p['gzip_bytes']:.1f} | {p['latency_ms_p50']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfx_pipeline.bench_compression", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True)
    parser.add_argument("--run", help="a finished `recdistill run` output directory")
    parser.add_argument("--movielens", action="store_true", help="run MovieLens-100K into OUTPUT/movielens-run first")
    parser.add_argument("--ranks", default="none,16,8,4")
    parser.add_argument("--full-rank-items", default="0,0.5",
                        help="shares of the catalog (or counts) of the most frequent items kept whole")
    parser.add_argument("--sparsities", default="0.6,0.75,0.9", help="target sparsity of the embedding tables")
    args = parser.parse_args(argv)
    if bool(args.run) == bool(args.movielens):
        parser.error("name one of --run RUN_DIR, --movielens")
    from models.compression_config import full_rank_items_of

    try:  # every point's settings checked before the first point's minutes are spent
        ranks, sparsities = parse_ranks(args.ranks), [float(s) for s in args.sparsities.split(",")]
        whole = [_share_or_count(v) for v in args.full_rank_items.split(",") if v.strip()]
        for value in whole:
            full_rank_items_of(value, 1)
    except ValueError as error:
        parser.error(f"--ranks, --full-rank-items or --sparsities: {error}")
    run_dir = args.run
    if args.movielens:
        run_dir = os.path.join(args.output, "movielens-run")
        if not os.path.isdir(os.path.join(run_dir, "pipeline_root", "StudentCompressor")):
            subprocess.run([sys.executable, "-m", "tfx_pipeline.cli", "run", "--data", "movielens-100k",
                            "--output", run_dir], check=True)
    result = frontier(run_dir, ranks, sparsities, args.output, whole)
    print(table(result))
    chosen = result["pick"]
    print(f"\npick (int8, smallest gzip at >= {RULE_SHARE} x uncompressed ndcg@10): "
          + (f"{_rank_label(chosen)}, target sparsity {chosen['target_sparsity']}" if chosen else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

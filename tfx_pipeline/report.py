"""report.json and report.md of a run (keys: docs/design.md, "report.json"), and their printout."""

import errno
import os
from typing import Any, Dict, List, Optional

from models.foundation import storage
from tfx_pipeline import report_prior

MODEL_KEYS = ("popularity", "ease", "trending", "student_no_kd", "teacher", "student_kd", "student_compressed",
              "tflite_float", "tflite")
BASELINE_KEYS = ("popularity", "ease", "trending")  # "the strongest baseline" is the best of these
COLD_BASELINE_KEYS = ("random", "text_knn")  # the cold-item table's own baselines
COLD_METRIC_KEYS = ("ndcg@10", "recall@10", "top100_share")
METRIC_KEYS = ("recall@10", "ndcg@10", "recall@100", "precision@10", "params", "bytes", "gzip_bytes", "latency_ms_p50")
BEYOND_KEYS = ("coverage", "gini", "novelty", "diversity", "popular_share")  # models/beyond_accuracy.py
REPORT_DIR = "report"
SUMMARY_FILE = "summary.txt"  # the console summary a run prints, kept beside report.json


def build_report(
    dataset: str,
    split: Dict[str, Any],
    wall_seconds: Dict[str, float],
    data_quality: Optional[Dict[str, Any]],
    components: List[str],
    models: Optional[Dict[str, Any]] = None,
    curves: Optional[Dict[str, Any]] = None,
    blessing: Optional[Dict[str, Any]] = None,
    pushed: Optional[Dict[str, Optional[str]]] = None,
    compression: Optional[Dict[str, Any]] = None,
    baselines: Optional[Dict[str, Any]] = None,
    resources: Optional[Dict[str, Dict[str, Optional[float]]]] = None,
    peak_rss_mib: Optional[float] = None,
    cold_items: Optional[Dict[str, Any]] = None,
    drift: Optional[Dict[str, Any]] = None,
    warm_start: Optional[Dict[str, Any]] = None,
    recency_prior: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """A report of what ran; models that did not run are null, as keys that do not apply are.
    baselines: what the evaluator picked or skipped for ease and trending, and why.
    resources: {component: {"cpu_seconds", "peak_rss_mib"}} (progress.ComponentProgress.resources);
    peak_rss_mib: the largest resident set of the whole run, MiB.
    cold_items: the cold-item evaluation (components/evaluation/cold.py), None without one.
    drift: the drift check's drift.json; warm_start: {"teacher": where it started from and why,
    "students": where the students did and what they kept, "compression": its epochs}
    (input in spans only: both keys are absent otherwise).
    recency_prior: the KD student's (models/recency_prior.py): in the report when a weight (a known
    user's or a cold user's) is above 0."""
    entries = {key: (models or {}).get(key) for key in MODEL_KEYS}
    pushed = pushed or {}
    spanned = {"drift": drift, "warm_start": warm_start} if drift is not None else {}
    if recency_prior and max(recency_prior.get("weight", 0), recency_prior.get("cold_weight", 0)) > 0:
        # the deployed models carry it
        spanned["recency_prior"] = recency_prior
    return {
        "dataset": dataset,
        "split": split,
        "wall_seconds": wall_seconds,
        "resources": resources,
        "peak_rss_mib": peak_rss_mib,
        "data_quality": data_quality or {},
        "models": entries,
        "baselines": baselines,
        "vs_best_baseline": vs_best_baseline(entries),
        "blessed": bool(blessing and blessing.get("blessed")),
        "pushed": {"serving": pushed.get("serving"), "mobile": pushed.get("mobile")},
        "cold_items": _ordered_cold(cold_items),
        "blessing": blessing,
        "compression": _compression_summary(compression),
        "components": components,
        "training_curves": curves,
        **spanned,
    }


def vs_best_baseline(models: Dict[str, Optional[Dict[str, Any]]]) -> Optional[Dict[str, Any]]:
    """{"best": the baseline with the highest ndcg@10, "ndcg@10": {model: its ndcg@10 / the best's}}
    over the models that ran (None when no baseline has a positive ndcg@10)."""
    scored = {k: models[k]["ndcg@10"] for k in BASELINE_KEYS if models.get(k) and models[k].get("ndcg@10")}
    if not scored:
        return None
    best = max(scored, key=scored.get)  # the first in BASELINE_KEYS on a tie
    ratios = {name: round(m["ndcg@10"] / scored[best], 4) for name, m in models.items()
              if m and m.get("ndcg@10") is not None}
    return {"best": best, "ndcg@10": ratios}


def _ordered_cold(cold_items: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """report.json's "cold_items" with its models in the main table's order, then the cold baselines."""
    if not cold_items:
        return None
    models = cold_items.get("models") or {}
    order = [k for k in (*COLD_BASELINE_KEYS, *MODEL_KEYS) if k in models] + sorted(
        set(models) - set(MODEL_KEYS) - set(COLD_BASELINE_KEYS))
    return {**cold_items, "models": {name: models[name] for name in order}}


def _compression_summary(compression: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """What the compressor reports: settings, Keras sparsity per layer, int8 zeros, parity."""
    if not compression:
        return None
    return {"config": compression.get("config"), "sparsity": (compression.get("prune") or {}).get("sparsity"),
            "int8_zero_share": (compression.get("int8") or {}).get("zero_share"),
            "parity_top10_overlap": compression.get("parity_top10_overlap"),
            "factorization": _factorization(compression), "gentler": compression.get("gentler"),
            "seconds": {"prune": (compression.get("prune") or {}).get("seconds"),
                        "qat": (compression.get("qat") or {}).get("seconds")}}


def _factorization(compression: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """{"rank", "full_rank_items", "params", "params_uncompressed", "layers": {name: {"rank",
    "relative_error", "full_rank_rows" / "full_rank_columns"}}} (the settings as configured, the
    layers as built), or None when the compressor factorized nothing (models/factorization.py)."""
    found = compression.get("factorization") or {}
    if not found.get("layers"):
        return None
    return {"rank": found.get("rank"), "full_rank_items": found.get("full_rank_items"), "params": found.get("params"),
            "params_uncompressed": compression.get("params_uncompressed"), "layers": found["layers"]}


def read_report(output_dir: str) -> Dict[str, Any]:
    path = storage.join(output_dir, REPORT_DIR, "report.json")
    if not storage.exists(path):  # `recdistill report` catches FileNotFoundError (gs:// raises NotFoundError)
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    return storage.read_json(path)


def render(report: Dict[str, Any], markdown: bool = False) -> str:
    """The report as text tables (Markdown tables with markdown=True)."""
    lines = [f"# recdistill report: {report['dataset']}" if markdown else f"recdistill report: {report['dataset']}", ""]
    lines.append(split_line(report))
    lines += run_lines(report.get("run"))
    lines += drift_lines(report.get("drift"), report.get("warm_start"))
    if report.get("recency_prior"):
        lines.append(report_prior.line(report["recency_prior"]))
    lines.append("")
    quality_rows = [
        [file, _cell(entry.get("rows")), _cell(sum((entry.get("bad") or {}).values())),
         ", ".join(f"{reason} {n:,}" for reason, n in sorted((entry.get("bad") or {}).items())) or "-"]
        for file, entry in sorted((report.get("data_quality") or {}).items())
    ]
    lines += table(["file", "rows", "bad", "bad by reason"], quality_rows, markdown)
    lines.append("")
    lines += _component_table(report, markdown)
    versus = report.get("vs_best_baseline") or {"best": None, "ndcg@10": {}}
    models = [[name] + [_cell(m.get(k)) for k in METRIC_KEYS] + [_ratio(versus["ndcg@10"].get(name))]
              for name, m in report["models"].items() if m]
    if models:
        lines.append("")
        lines += table(["model", *METRIC_KEYS, f"ndcg@10 / {versus['best'] or 'best baseline'}"], models, markdown)
        lines += _beyond_lines(report["models"], markdown)
        lines += _baseline_lines(report.get("baselines"))
        gain = kd_gain(report["models"])
        if gain:
            lines += ["", gain]
        lines += compression_lines(report)
    lines += _cold_lines(report.get("cold_items"), markdown)
    return "\n".join(lines) + "\n"


def split_line(report: Dict[str, Any]) -> str:
    split = report.get("split") or {}
    counts = split.get("counts") or {}
    return (f"split: {split.get('method', '-')} (test share {split.get('test_share', '-')}, eval share "
            f"{split.get('eval_share', '-')}, seed {split.get('seed', '-')}); "
            + ", ".join(f"{name} {n:,}" for name, n in counts.items()))


def run_lines(run: Optional[Dict[str, Any]]) -> List[str]:
    """What produced the report (report.json "run": tfx_pipeline/run_metadata.py), in two lines."""
    if not run:
        return []
    versions, box = run.get("versions") or {}, run.get("machine") or {}
    commit = run.get("git_commit")
    lines = [f"run: recdistill {run.get('recdistill')} ({f'commit {commit[:12]}' + commit[40:] if commit else 'no git commit'}), "
             f"config {run.get('config_digest')}, TensorFlow {versions.get('tensorflow')}, TFX {versions.get('tfx')}, "
             f"{box.get('cores')} cores, {box.get('memory_gib')} GiB; {run.get('started')} to {run.get('ended')}"]
    inputs = run.get("inputs") or {}
    if inputs:
        lines.append("inputs: " + ", ".join(
            f"{name} {_cell(entry.get('rows'))} rows (sha256 {entry['sha256'][:12]})" if entry.get("sha256")
            else f"{name} absent"
            for name, entry in inputs.items()))
    return lines


def _beyond_lines(models: Dict[str, Any], markdown: bool) -> List[str]:
    """Each model's top 10 beyond accuracy (components/evaluation/beyond.py), when measured."""
    rows = [[name] + [_cell(m["beyond_accuracy"].get(k)) for k in BEYOND_KEYS]
            for name, m in models.items() if m and m.get("beyond_accuracy")]
    if not rows:
        return []
    lines = ["", "beyond accuracy of each top 10: catalog coverage, Gini index of the items recommended (0: even, "
                 "1: one item), novelty (mean -log2 of an item's share of training users), intra-list diversity "
                 "(1 - cosine of list features), share of the 10% most popular items", ""]
    return lines + table(["model", *(f"{k}@10" for k in BEYOND_KEYS)], rows, markdown)


def drift_lines(drift: Optional[Dict[str, Any]], warm_start: Optional[Dict[str, Any]]) -> List[str]:
    """The spans compared, the decision and why; where the teacher started from (docs/spans.md)."""
    if not drift:
        return []
    versus = f"span {drift['newest_span']} against span {drift['previous_span']}" if drift.get("previous_span") \
        else f"span {drift['newest_span']}"
    lines = [f"drift: {versus}: {drift['decision']} ({drift['reason']})"]
    started = (warm_start or {}).get("teacher")
    if started:
        kept = f" ({started['items_kept']:,} items kept, {started['items_new']:,} new)" if started.get("from") else ""
        if started.get("from") and started.get("rows_trained") is not None:
            kept += (f"; trained on the newest span: {started['users_trained']:,} users, "
                     f"{started['rows_trained']['final']:,} train and eval rows scored for the students")
        if started.get("from") and started.get("phase_one") is False:
            kept += f"; no phase one: {_epochs(started['epochs'])} on train and eval"
        lines.append(f"teacher: {started['reason']}{kept}")
    students = (warm_start or {}).get("students") or {}
    kd = students.get("student_kd") or {}
    if kd.get("started") == "warm":
        fresh = f", fresh features: {', '.join(kd['features_fresh'])}" if kd.get("features_fresh") else ""
        went = f"; no phase one: {_epochs(kd['epochs'])} on train and eval" if kd.get("phase_one") is False else ""
        lines.append(f"students: warm start ({kd['items_kept']:,} items and {kd['users_kept']:,} users kept, "
                     f"{kd['items_new']:,} and {kd['users_new']:,} new{fresh}){went}")
    elif students:
        lines.append(f"students: {kd.get('reason') or students.get('reason')}")
    compressed = (warm_start or {}).get("compression")
    if compressed:
        lines.append(f"compression: {compressed['started']}: {compressed['prune_epochs']} pruning and "
                     f"{compressed['qat_epochs']} QAT epochs")
    return lines


def _epochs(count: int) -> str:
    return f"{count} epoch" + ("" if count == 1 else "s")


def _cold_lines(cold_items: Optional[Dict[str, Any]], markdown: bool) -> List[str]:
    """The cold-item table: each model's ranking of the items held out of training."""
    if not cold_items or not cold_items.get("models"):
        return []
    models = cold_items["models"]
    any_entry = next(iter(models.values()))
    lines = ["", f"cold items: {cold_items['items']:,} items ({cold_items['share']:.1%} of the catalog) held out of "
                 f"training; {any_entry.get('users', 0):,} test users with {any_entry.get('positives', 0):,} cold "
                 "positives: ranked among the cold items (ndcg@10, recall@10) and in the whole catalog (top100_share)", ""]
    rows = [[name] + [_cell(entry.get(k)) for k in COLD_METRIC_KEYS] for name, entry in models.items() if entry]
    return lines + table(["model", *COLD_METRIC_KEYS], rows, markdown)


def _component_table(report: Dict[str, Any], markdown: bool) -> List[str]:
    """Wall seconds per component; CPU seconds and peak resident MiB too when the run measured them."""
    times, resources = report.get("wall_seconds") or {}, report.get("resources")
    if not resources:
        return table(["component", "wall s"], [[name, f"{s:.1f}"] for name, s in times.items()], markdown)
    rows = []
    for name, seconds in times.items():
        used = resources.get(name) or {}
        peak = report.get("peak_rss_mib") if name == "total" else used.get("peak_rss_mib")
        rows.append([name, f"{seconds:.1f}", _number(used.get("cpu_seconds"), ".1f"), _number(peak, ",.0f")])
    return table(["component", "wall s", "cpu s", "peak MiB"], rows, markdown)


def _number(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f} x"


def _baseline_lines(baselines: Optional[Dict[str, Any]]) -> List[str]:
    """How ease's l2 was picked and why a baseline is missing."""
    if not baselines:
        return []
    lines = []
    ease, trending = baselines.get("ease") or {}, baselines.get("trending") or {}
    if ease.get("skipped"):
        lines.append(f"ease: skipped: {ease['skipped']}")
    elif ease.get("l2") is not None:
        grid = ", ".join(f"{l2} {ndcg:.4f}" for l2, ndcg in (ease.get("grid") or {}).items())
        lines.append(f"ease: l2 {ease['l2']:g}, picked by eval ndcg@10 ({grid})")
    if trending.get("skipped"):
        lines.append(f"trending: skipped: {trending['skipped']}")
    elif trending:
        lines.append(f"trending: most interactions in the last {trending.get('days')} days of training")
    return [""] + lines if lines else []


def kd_gain(models: Dict[str, Any]) -> Optional[str]:
    kd, no_kd, teacher = models.get("student_kd"), models.get("student_no_kd"), models.get("teacher")
    if not (kd and no_kd and no_kd.get("ndcg@10")):
        return None
    line = f"distillation: student_kd ndcg@10 = {kd['ndcg@10'] / no_kd['ndcg@10']:.3f} x student_no_kd"
    if teacher and teacher.get("params") and kd.get("params"):
        line += f"; teacher params = {teacher['params'] / kd['params']:.0f} x student"
    return line


def compression_lines(report: Dict[str, Any]) -> List[str]:
    models, lines = report["models"], []
    tflite, before, kd = models.get("tflite"), models.get("tflite_float"), models.get("student_kd")
    if tflite and before and kd and kd.get("ndcg@10") and tflite.get("ndcg@10") is not None \
            and tflite.get("bytes") and before.get("bytes"):
        zeros = (report.get("compression") or {}).get("int8_zero_share")
        lines.append(f"compression: tflite ndcg@10 = {tflite['ndcg@10'] / kd['ndcg@10']:.3f} x student_kd; tflite bytes = "
                     f"{tflite['bytes'] / before['bytes']:.3f} x and gzip_bytes = {tflite['gzip_bytes'] / before['bytes']:.3f}"
                     f" x tflite_float bytes" + (f"; {zeros:.1%} of the int8 weights are zero" if zeros is not None else ""))
        lines.append(_techniques_line(report.get("compression") or {}, tflite, before))
        if tflite.get("params") and kd.get("params") and tflite["params"] > kd["params"]:
            lines.append(f"params of the deployed forms ({tflite['params']:,}) include the catalog's item embeddings, "
                         f"precomputed; the training form ({kd['params']:,}) computes them from the item features")
    blessing = report.get("blessing")
    if blessing:
        lines.append(f"{'blessed' if report.get('blessed') else 'not blessed'}: {blessing.get('reason')}")
        for kind, path in (report.get("pushed") or {}).items():
            lines.append(f"pushed {kind}: {path or '-'}")
    return [""] + lines if lines else []


def _factorized_layer(name: str, layer: Dict[str, Any]) -> str:
    """"scores rank 8 after its first 420 items whole (relative error 0.31)": mixed dimensions keep
    the most frequent items' rows (row 0, the unknown index, among them) or columns whole."""
    whole = layer.get("full_rank_columns")
    whole = whole if whole is not None else (layer["full_rank_rows"] - 1 if layer.get("full_rank_rows") else None)
    kept = f" after its first {whole:,} items whole" if whole else ""
    return f"{name} rank {layer['rank']}{kept} (relative error {layer['relative_error']:.2f})"


def _setting(attempt: Dict[str, Any]) -> str:
    rank = "no factorization" if attempt.get("rank") is None else f"rank {attempt['rank']}"
    return f"{rank}, sparsity {attempt['target_sparsity']:g} / {attempt['dense_sparsity']:g}:"


def _gentler_step(gentler: Dict[str, Any]) -> int:
    """The exported setting's place among CompressionConfig.gentler()'s: 0 for the configured one."""
    return int(gentler.get("started_at") or 0) + int(gentler.get("used") or 0)


def _techniques_line(compression: Dict[str, Any], tflite: Dict[str, Any], before: Dict[str, Any]) -> str:
    """What each compression technique did to the deployed model, in the order they are applied."""
    parts, gentler = [], compression.get("gentler") or {}
    factorized = compression.get("factorization")
    if factorized and factorized.get("params_uncompressed"):
        # each matrix's own rank: a user table trained as two factors (student.user_rank) keeps its
        # rank exactly (relative error 0) beside the compression's rank of the others
        ranks = ", ".join(_factorized_layer(name, layer) for name, layer in factorized["layers"].items())
        parts.append(f"factorization: {ranks}; {factorized['params_uncompressed']:,} -> {factorized['params']:,} "
                     f"weights ({factorized['params'] / factorized['params_uncompressed']:.2f} x)")
    else:
        parts.append("factorization: none" if _gentler_step(gentler) else "factorization: none (compression.rank)")
    if _gentler_step(gentler):  # the compressor exported a setting gentler than the configured one (min_kept)
        tried = gentler["attempts"][:gentler["used"] + 1]
        kept = ", ".join(f"{_setting(a)} {a['kept']:.3f}" for a in tried if a.get("kept") is not None)
        carried = "started at the setting the served model shipped; " if gentler.get("started_at") else ""
        parts.insert(0, f"gentler than configured ({carried}the eval split's ndcg@10 kept of student_kd: {kept}; "
                        f"compression.min_kept {gentler['min_kept']})")
    sparsity = (compression.get("sparsity") or {}).get("all")
    if sparsity is not None:
        parts.append(f"pruning: {sparsity:.0%} of the weights zero")
    parts.append(f"int8: a byte a weight instead of four; together {tflite['bytes'] / before['bytes']:.3f} x the "
                 f"uncompressed float TFLite's bytes, gzip {tflite['gzip_bytes'] / before['bytes']:.3f} x")
    return "compression techniques: " + "; ".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(header: List[str], rows: List[List[str]], markdown: bool) -> List[str]:
    if markdown:
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
            "| " + " | ".join(r) + " |" for r in rows
        ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    fmt = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]

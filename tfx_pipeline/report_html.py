"""report/index.html: the page a practitioner opens first. One self-contained file (plots inline as
PNG data, no script, no network), one table per question: which model is best, beyond accuracy,
size and speed, cold items, data quality, time per component, and what produced the run.
Models by plain name with report.json's key beside them; sizes in MB, times in ms and s."""

import base64
import html
from typing import Any, Dict, List, Optional, Sequence

from tfx_pipeline import report, report_names

HTML_FILE = "index.html"
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 78em;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; } tr.best td { font-weight: bold; }
.key { color: #777; font-family: monospace; } .note { color: #555; font-size: 0.9em; }
.verdict { font-size: 1.05em; background: #f1f7ee; padding: 0.6em 0.9em; border-left: 4px solid #5a5; }
.verdict.no { background: #fbf0ef; border-left-color: #c55; }
img { max-width: 100%; } table.facts td { text-align: left; }
"""


def render(data: Dict[str, Any], plots: Dict[str, bytes]) -> str:
    """The page; plots: {file name: PNG bytes} (tfx_pipeline/report_plots.py), shown inline."""
    models = {k: m for k, m in data["models"].items() if m}
    parts = [f"<h1>recdistill report: {_e(data['dataset'])}</h1>", _verdict(data)]
    parts += _section("Which model is best? Test ranking quality", _quality_table(data, models),
                      "ndcg@10, recall@10, precision@10: the whole catalog ranked for each test user, their training "
                      "items left out; the ratio is to the strongest baseline.")
    parts += _section("Beyond accuracy of each top 10", _beyond_table(models),
                      "coverage: share of the catalog recommended to anyone; Gini: 0 even, 1 one item; novelty: mean "
                      "-log2 of an item's share of training users; diversity: 1 - cosine of list features; popular "
                      "share: the 10% most popular items' share of the lists.")
    parts += _section("Size and speed", _size_table(models) + _image(plots, "quality_vs_bytes.png", "quality against size"),
                      "latency: one user per call, one thread, this machine; the plot draws the baselines as lines.")
    parts += _section("Cold items", _cold_table(data.get("cold_items")), "")
    parts += _section("Data quality", _data_table(data.get("data_quality") or {}), report.split_line(data))
    parts += _section("Time per component", _time_table(data), "")
    parts += _section("Training", _image(plots, "training_curves.png", "training curves"),
                      "each model's loss on its own axes (the objectives differ), then the validation ndcg@10.")
    parts += _section("Compression, drift and the push", _lines(_story(data)), "")
    parts += _section("What produced this run", _run_table(data.get("run")), "")
    body = "\n".join(part for part in parts if part)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>recdistill report: {_e(data['dataset'])}</title><style>{_STYLE}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")


def _verdict(data: Dict[str, Any]) -> str:
    models, versus = data["models"], data.get("vs_best_baseline") or {}
    deployed = models.get("tflite")
    if not deployed or deployed.get("ndcg@10") is None:
        return ""
    best = versus.get("best")
    ratio = (versus.get("ndcg@10") or {}).get("tflite")
    against = f" = {ratio:.3f} x {report_names.name(best)}, the strongest baseline" if best and ratio else ""
    pushed = data.get("pushed") or {}
    where = ", ".join(f"{kind} {path}" for kind, path in pushed.items() if path) or "nothing pushed"
    blessed = bool(data.get("blessed"))
    return (f'<p class="verdict{"" if blessed else " no"}">{_e(report_names.label("tflite"))}: ndcg@10 '
            f"{deployed['ndcg@10']:.4f}{_e(against)}, {_mb(deployed.get('bytes'))} MB "
            f"({_mb(deployed.get('gzip_bytes'))} MB gzipped). {'Blessed' if blessed else 'Not blessed'}: "
            f"{_e((data.get('blessing') or {}).get('reason') or '-')}; {_e(where)}.</p>")


def _quality_table(data, models) -> str:
    versus = data.get("vs_best_baseline") or {}
    ratios, best = versus.get("ndcg@10") or {}, versus.get("best")
    top = max((k for k in models if k not in report_names.BASELINES and models[k].get("ndcg@10") is not None),
              key=lambda k: models[k]["ndcg@10"], default=None)
    rows = [([_model_cell(k), _f(m.get("ndcg@10")), _x(ratios.get(k)), _f(m.get("recall@10")),
              _f(m.get("precision@10")), _f(m.get("recall@100"))], k == top) for k, m in models.items()]
    return _table(["model", "ndcg@10", f"x {report_names.name(best) if best else 'best baseline'}", "recall@10",
                   "precision@10", "recall@100"], rows)


def _beyond_table(models) -> str:
    rows = [([_model_cell(k)] + [_f(m["beyond_accuracy"].get(key)) for key in report.BEYOND_KEYS], False)
            for k, m in models.items() if m.get("beyond_accuracy")]
    return _table(["model", "coverage@10", "Gini@10", "novelty@10", "diversity@10", "popular share@10"], rows)


def _size_table(models) -> str:
    base = (models.get("tflite_float") or {}).get("bytes")
    rows = [([_model_cell(k), f"{m['params']:,}" if m.get("params") else "-", _mb(m.get("bytes")),
              _mb(m.get("gzip_bytes")), _f(m.get("latency_ms_p50"), ".3f"),
              _x(m["bytes"] / base if base and m.get("bytes") else None)], False)
            for k, m in models.items() if m.get("bytes") or m.get("params")]
    return _table(["model", "parameters", "MB", "MB gzipped", "latency ms (p50)", "x float TFLite bytes"], rows)


def _cold_table(cold: Optional[Dict[str, Any]]) -> str:
    if not cold or not cold.get("models"):
        return ""
    rows = [([_model_cell(k)] + [_f(m.get(key)) for key in report.COLD_METRIC_KEYS], False)
            for k, m in cold["models"].items() if m]
    share = cold.get("share")
    caption = (f"{_count(cold.get('items'))} items ({'-' if share is None else format(share, '.1%')} of the catalog) "
               "held out of training, ranked among the cold items (ndcg@10, recall@10) and in the whole catalog "
               "(top-100 share).")
    return f'<p class="note">{_e(caption)}</p>' + _table(["model", "ndcg@10", "recall@10", "top-100 share"], rows)


def _data_table(quality: Dict[str, Any]) -> str:
    rows = [([_e(name), _count(q.get("rows")), _count(sum((q.get("bad") or {}).values())),
              _e(", ".join(f"{reason} {_count(n)}" for reason, n in sorted((q.get("bad") or {}).items())) or "-")], False)
            for name, q in sorted(quality.items()) if isinstance(q, dict)]
    return _table(["file", "rows", "bad rows", "bad by reason"], rows)


def _time_table(data) -> str:
    wall, used = data.get("wall_seconds") or {}, data.get("resources") or {}
    total = wall.get("total")
    rows = []
    for name, seconds in wall.items():
        peak = data.get("peak_rss_mib") if name == "total" else (used.get(name) or {}).get("peak_rss_mib")
        rows.append(([_e(name), f"{seconds:,.1f}", f"{seconds / total:.0%}" if total else "-",
                      _f((used.get(name) or {}).get("cpu_seconds"), ",.1f"), _f(peak, ",.0f")], name == "total"))
    return _table(["component", "wall s", "share", "CPU s", "peak MiB"], rows)


def _story(data) -> List[str]:
    """The report's own lines on compression, the push and drift (tfx_pipeline/report.py)."""
    lines = report.drift_lines(data.get("drift"), data.get("warm_start"))
    if any(data["models"].get(k) for k in report.MODEL_KEYS):
        gain = report.kd_gain(data["models"])
        lines += [gain] if gain else []
        lines += [line for line in report.compression_lines(data) if line]
    return lines


def _run_table(run: Optional[Dict[str, Any]]) -> str:
    if not run:
        return ""
    versions, box = run.get("versions") or {}, run.get("machine") or {}
    facts = [("recdistill", run.get("recdistill")), ("git commit", run.get("git_commit") or "none"),
             ("config digest", run.get("config_digest")),
             ("seeds", ", ".join(f"{k} {v}" for k, v in (run.get("seeds") or {}).items())),
             ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
             ("machine", f"{box.get('cores')} cores, {box.get('memory_gib')} GiB, {box.get('platform')}"),
             ("started, ended", f"{run.get('started')}, {run.get('ended')}")]
    table = _table(["", ""], [([_e(k), _e(str(v))], False) for k, v in facts], show_header=False, css="facts")
    inputs = [([_e(name), f"{i['rows']:,}" if i.get("rows") is not None else "-", _mb(i.get("bytes")),
                f'<span class="key">{_e((i.get("sha256") or "absent")[:16])}</span>'], False)
              for name, i in (run.get("inputs") or {}).items()]
    return table + _table(["input file", "rows", "MB", "sha256"], inputs) + \
        '<p class="note">every setting is in report.json, "run" / "config"</p>'


def _section(title: str, content: str, note: str) -> List[str]:
    if not content:
        return []
    return [f"<h2>{_e(title)}</h2>", content] + ([f'<p class="note">{_e(note)}</p>'] if note else [])


def _table(header: Sequence[str], rows, show_header: bool = True, css: str = "") -> str:
    """rows: (cells, bold): cells are HTML already (escaped where they hold text)."""
    if not rows:
        return ""
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" if show_header else ""
    body = "".join(f'<tr{" class=best" if best else ""}>' + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"
                   for cells, best in rows)
    return f'<table{f" class={css}" if css else ""}>{head}{body}</table>'


def _model_cell(key: str) -> str:
    return f'{_e(report_names.name(key))} <span class="key">- {_e(key)}</span>'


def _image(plots: Dict[str, bytes], name: str, alt: str) -> str:
    if name not in plots:
        return ""
    return f'<p><img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(plots[name]).decode()}"></p>'


def _lines(lines: List[str]) -> str:
    return "".join(f"<p>{_e(line)}</p>" for line in lines)


def _f(value: Optional[float], spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _count(value) -> str:
    return "-" if value is None else f"{value:,}"


def _x(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f} x"


def _mb(value: Optional[float]) -> str:
    return "-" if value is None else f"{value / 1e6:.3f}" if value < 1e7 else f"{value / 1e6:,.1f}"


def _e(text: Any) -> str:
    return html.escape(str(text))

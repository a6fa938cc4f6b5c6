"""`recdistill report A B`: two runs side by side, B's deltas against A, and what differs between
them (settings, input files, code, libraries), from their report.json files."""

from typing import Any, Dict, List, Optional

from tfx_pipeline import report, run_metadata

QUALITY_KEYS = ("ndcg@10", "recall@10", "precision@10")
SIZE_KEYS = ("bytes", "gzip_bytes", "latency_ms_p50")
BEYOND_KEYS = ("coverage", "popular_share")


def render(name_a: str, a: Dict[str, Any], name_b: str, b: Dict[str, Any], markdown: bool = False) -> str:
    lines = [f"recdistill report: A {name_a} against B {name_b} (delta: B - A)", ""]
    for label, one in (("A", a), ("B", b)):
        lines += [f"{label}: {line}" for line in report.run_lines(one.get("run"))] or [f"{label}: no run metadata"]
    lines += [""] + what_differs(a, b)
    models = [name for name in report.MODEL_KEYS if (a["models"].get(name) or b["models"].get(name))]
    lines += ["", "quality on each run's own test split"]
    lines += report.table(["model", *_headers(QUALITY_KEYS)],
                           [[name] + _cells(a, b, name, QUALITY_KEYS) for name in models], markdown)
    sized = [name for name in models if any(_value(r, name, "bytes") is not None for r in (a, b))]
    if sized:
        lines += ["", "size and speed"]
        lines += report.table(["model", *_headers(SIZE_KEYS)],
                               [[name] + _cells(a, b, name, SIZE_KEYS) for name in sized], markdown)
    beyond = [name for name in models if any(_beyond(r, name) for r in (a, b))]
    if beyond:
        lines += ["", "beyond accuracy of each top 10"]
        lines += report.table(["model", *_headers(f"{k}@10" for k in BEYOND_KEYS)],
                               [[name] + _cells(a, b, name, BEYOND_KEYS, beyond=True) for name in beyond], markdown)
    lines += ["", "wall seconds per component"]
    components = list(dict.fromkeys([*(a.get("wall_seconds") or {}), *(b.get("wall_seconds") or {})]))
    lines += report.table(["component", "A", "B", "delta"], [
        [name, *_triple((a.get("wall_seconds") or {}).get(name), (b.get("wall_seconds") or {}).get(name), ".1f")]
        for name in components], markdown)
    lines += ["", f"blessed: A {_yes(a.get('blessed'))}, B {_yes(b.get('blessed'))}"]
    return "\n".join(lines) + "\n"


def what_differs(a: Dict[str, Any], b: Dict[str, Any]) -> List[str]:
    """The settings, input files, code and library versions that differ, one line each."""
    run_a, run_b = a.get("run"), b.get("run")
    data = [f"data: A {a.get('dataset')}, B {b.get('dataset')}"] if a.get("dataset") != b.get("dataset") else []
    if not (run_a and run_b):
        return data + ["what differs: unknown (a report without run metadata: written before it was recorded)"]
    lines = data + [f"setting {name}: A {_setting(left)}, B {_setting(right)}"
             for name, left, right in run_metadata.differences(run_a.get("config") or {}, run_b.get("config") or {})]
    if len(lines) == len(data):
        lines.append(f"settings: the same (config {run_a.get('config_digest')})")
    inputs_a, inputs_b = run_a.get("inputs") or {}, run_b.get("inputs") or {}
    changed = [name for name in sorted(set(inputs_a) | set(inputs_b))
               if (inputs_a.get(name) or {}).get("sha256") != (inputs_b.get(name) or {}).get("sha256")]
    lines.append(f"inputs that differ: {', '.join(changed)}" if changed else "inputs: the same files (sha256)")
    if run_a.get("git_commit") != run_b.get("git_commit"):
        lines.append(f"code: A {run_a.get('git_commit')}, B {run_b.get('git_commit')}")
    versions = run_metadata.differences(run_a.get("versions") or {}, run_b.get("versions") or {})
    lines += [f"library {name}: A {left}, B {right}" for name, left, right in versions]
    machines = run_metadata.differences(run_a.get("machine") or {}, run_b.get("machine") or {})
    lines += [f"machine {name}: A {left}, B {right}" for name, left, right in machines]
    return lines


def _headers(keys) -> List[str]:
    return [f"{key} {side}" for key in keys for side in ("A", "B", "delta")]


def _cells(a, b, name: str, keys, beyond: bool = False) -> List[str]:
    cells = []
    for key in keys:
        left, right = (_beyond(r, name).get(key) if beyond else _value(r, name, key) for r in (a, b))
        cells += _triple(left, right, ",.0f" if key in ("bytes", "gzip_bytes") else ".4f")
    return cells


def _triple(left: Optional[float], right: Optional[float], spec: str) -> List[str]:
    delta = "-" if left is None or right is None else format(right - left, "+" + spec)
    return [_format(left, spec), _format(right, spec), delta]


def _value(one: Dict[str, Any], name: str, key: str) -> Optional[float]:
    return (one["models"].get(name) or {}).get(key)


def _beyond(one: Dict[str, Any], name: str) -> Dict[str, Any]:
    return (one["models"].get(name) or {}).get("beyond_accuracy") or {}


def _format(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _setting(value: Any) -> str:
    return "-" if value is None else str(value)


def _yes(value: Any) -> str:
    return "yes" if value else "no"

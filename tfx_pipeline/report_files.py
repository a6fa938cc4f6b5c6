"""Writes a run's report/ directory: report.json, report.md, summary.txt, the plots and index.html
(tfx_pipeline/report.py renders the tables, report_plots.py the plots, report_html.py the page)."""

import json
import sys
from typing import Any, Dict

from models.foundation import storage
from tfx_pipeline import report_html, report_plots
from tfx_pipeline.report import REPORT_DIR, SUMMARY_FILE, render


def write_report(output_dir: str, report: Dict[str, Any]) -> str:
    directory = storage.join(output_dir, REPORT_DIR)
    storage.makedirs(directory)
    path = storage.join(directory, "report.json")
    _atomic_write(path, json.dumps(report, indent=2, sort_keys=False) + "\n")
    _atomic_write(storage.join(directory, "report.md"), render(report, markdown=True))
    _atomic_write(storage.join(directory, SUMMARY_FILE), render(report))
    plots = {}
    try:  # the tables are written already: a plot or the page that fails is a warning
        plots, problems = report_plots.render_plots(report["models"], report.get("training_curves"))
        for name, png in plots.items():
            storage.write_atomic(storage.join(directory, name), png)
        for problem in problems:
            print(f"recdistill: warning: report plot not written: {problem}", file=sys.stderr)
    except (ImportError, OSError) as error:
        print(f"recdistill: warning: report plots not written: {error}", file=sys.stderr)
    try:
        _atomic_write(storage.join(directory, report_html.HTML_FILE), report_html.render(report, plots))
    except (KeyError, TypeError, ValueError, AttributeError) as error:  # an older or hand-edited report.json
        print(f"recdistill: warning: report/{report_html.HTML_FILE} not written: {error!r}", file=sys.stderr)
    return path


def _atomic_write(path: str, text: str) -> None:
    storage.write_atomic(path, text.encode("utf-8"))

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
    try:
        plots = report_plots.render_plots(report["models"], report.get("training_curves"))
        for name, png in plots.items():
            storage.write_atomic(storage.join(directory, name), png)
    except (ImportError, OSError, ValueError, RuntimeError) as error:  # the tables are written already
        print(f"recdistill: warning: report plots not written: {error}", file=sys.stderr)
    _atomic_write(storage.join(directory, report_html.HTML_FILE), report_html.render(report, plots))
    return path


def _atomic_write(path: str, text: str) -> None:
    storage.write_atomic(path, text.encode("utf-8"))

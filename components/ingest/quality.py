"""Data-quality accounting: bad rows counted by file and reason, and the stop threshold.

The summary is a plain dict, the `data_quality` entry of report.json:
  {"<file name>": {"rows": int, "bad": {"<reason>": int, ...},
                   "first_bad": {"<reason>": {"line": int, "detail": str}, ...}}, ...}
"rows" counts every data row read (header and blank lines excluded); "bad" only the dropped ones.
"""

from typing import Dict, Iterable, Tuple

import apache_beam as beam

from components.ingest.csv_rows import BadRow


class DataQualityError(ValueError):
    """Too much of an input file is bad, or a file is unusable: the run stops (exit code 2)."""


def add_rows(summary: Dict, file: str, rows: int) -> None:
    summary.setdefault(file, {"rows": 0, "bad": {}, "first_bad": {}})["rows"] += rows


def add_bad(summary: Dict, bad: BadRow) -> None:
    entry = summary.setdefault(bad.file, {"rows": 0, "bad": {}, "first_bad": {}})
    entry["bad"][bad.reason] = entry["bad"].get(bad.reason, 0) + bad.lines
    first = entry["first_bad"].get(bad.reason)
    if first is None or bad.line < first["line"]:
        entry["first_bad"][bad.reason] = {"line": bad.line, "detail": bad.detail}


def merge(summaries: Iterable[Dict]) -> Dict:
    merged: Dict = {}
    for summary in summaries:
        for file, entry in summary.items():
            add_rows(merged, file, entry["rows"])
            for reason, count in entry["bad"].items():
                first = entry["first_bad"][reason]
                add_bad(merged, BadRow(file, first["line"], reason, first["detail"], count))
    return merged


def check(summary: Dict, max_bad_share: float) -> None:
    """Raises DataQualityError naming the file, a line and the reason when a file is too bad."""
    for file, entry in sorted(summary.items()):
        bad = sum(entry["bad"].values())
        rows = entry["rows"]
        if rows and bad / rows > max_bad_share:
            line, reason, detail = first_bad(entry)
            by_reason = ", ".join(f"{r} {n}" for r, n in sorted(entry["bad"].items()))
            raise DataQualityError(
                f"{file}: {bad} of {rows} rows ({bad / rows:.1%}) are bad, more than the "
                f"{max_bad_share:.1%} allowed (max_bad_share); first at line {line}: {detail} "
                f"[{reason}]; by reason: {by_reason}"
            )


def first_bad(entry: Dict) -> Tuple[int, str, str]:
    reason, first = min(entry["first_bad"].items(), key=lambda kv: kv[1]["line"])
    return first["line"], reason, first["detail"]


class SummarizeQuality(beam.CombineFn):
    """Combines BadRow elements and ("rows", file, count) tuples into one summary dict."""

    def create_accumulator(self):
        return {}

    def add_input(self, summary, element):
        if isinstance(element, BadRow):
            add_bad(summary, element)
        else:
            _, file, rows = element
            add_rows(summary, file, rows)
        return summary

    def merge_accumulators(self, accumulators):
        return merge(accumulators)

    def extract_output(self, summary):
        return summary

"""Item titles for printing recommendations: from the input's items.csv (DESIGN.md, "Input format")."""

import csv
import os
from typing import Dict, Optional


def default_items_csv(model_dir: str) -> Optional[str]:
    """<run>/input/items.csv for a model under <run>/mobile/<version> or <run>/serving/recdistill/<version>."""
    here = os.path.abspath(model_dir)
    for _ in range(4):
        here = os.path.dirname(here)
        candidate = os.path.join(here, "input", "items.csv")
        if os.path.isfile(candidate):
            return candidate
    return None


def newest_run_items_csv(runs_dir: str = "runs") -> Optional[str]:
    """The newest runs/<name>/input/items.csv under the current directory (`make run` writes there),
    for clients of a server, which answers with ids only."""
    import glob

    found = glob.glob(os.path.join(runs_dir, "*", "input", "items.csv"))
    return max(found, key=os.path.getmtime) if found else None


def load_titles(items_csv: Optional[str]) -> Dict[str, str]:
    """{item_id: title}; empty when there is no file (ids are printed alone then)."""
    if not items_csv or not os.path.isfile(items_csv):
        return {}
    with open(items_csv, encoding="utf-8", newline="") as f:
        return {row.get("item_id", ""): row.get("title", "") for row in csv.DictReader(f)}

"""Item titles for printing recommendations: from the input's items.csv (docs/data.md, "Input format")."""

import csv
import io
import os
from typing import Dict, Optional

from models.foundation import storage


def default_items_csv(model_dir: str) -> Optional[str]:
    """<run>/input/items.csv for a model under <run>/mobile/<version> or <run>/serving/recdistill/<version>."""
    here = storage.absolute(model_dir)
    for _ in range(4):
        here = storage.dirname(here)
        if storage.is_uri(model_dir) and not storage.is_uri(here):  # climbed past the bucket
            break
        candidate = storage.join(here, "input", "items.csv")
        if storage.isfile(candidate):
            return candidate
    return None


def newest_run_items_csv(runs_dir: str = "runs") -> Optional[str]:
    """The newest runs/<name>/input/items.csv under the current directory (`make run` writes there),
    for clients of a server, which answers with ids only."""
    import glob

    found = glob.glob(os.path.join(runs_dir, "*", "input", "items.csv"))
    return max(found, key=os.path.getmtime) if found else None


def load_titles(items_csv: Optional[str]) -> Dict[str, str]:
    """{item_id: title}; empty when there is no file (ids are printed alone then). Raises ValueError
    naming the file when it is not UTF-8 text or not CSV (a command checks --items exists first)."""
    if not items_csv or not storage.isfile(items_csv):
        return {}
    data = storage.read_bytes(items_csv)
    try:
        text = data.decode("utf-8-sig")  # as ingestion reads it: a byte order mark is dropped
    except UnicodeDecodeError as error:
        raise ValueError(f"{items_csv}: not UTF-8 text (byte {error.start}); items.csv files are UTF-8") from None
    try:
        # StringIO's default newline="\n" leaves "\r\n" to the csv module, as open(newline="") did.
        return {row.get("item_id") or "": row.get("title") or "" for row in csv.DictReader(io.StringIO(text))}
    except csv.Error as error:
        raise ValueError(f"{items_csv}: not a CSV file ({error})") from None

"""End to end with data in spans: `recdistill run` up to the drift check on synthetic weekly spans,
a rerun without a new span answered from the cache, and a new span with an abrupt taste shift
flagged (docs/spans.md)."""

import json
import re
import shutil

import pytest

from tests.conftest import recdistill
from tfx_pipeline.datasets.synth_spans import write_synthetic_spans

pytestmark = pytest.mark.e2e  # three runs of ExampleGen and the statistics (about 90 s here)

CONFIG = "spans: {window: 2}\n"


def test_spans_are_ingested_compared_cached_and_a_shift_is_flagged(tmp_path):
    data, later = tmp_path / "data", tmp_path / "later"
    write_synthetic_spans(data, spans=4, users=1200, items=300, interactions=16000, seed=0, shift_at=4)
    shutil.move(str(data / "span-4"), str(later))  # span 4 arrives after the first runs
    (tmp_path / "c.yaml").write_text(CONFIG)
    run = ["run", "--data", str(data), "--output", str(tmp_path / "run"), "--config", str(tmp_path / "c.yaml"),
           "--until", "DriftCheck"]

    first = recdistill(*run)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    # The window: spans 2 and 3's interactions; every span's items and users.
    assert sorted(report["data_quality"]) == ["span-1/items.csv", "span-1/users.csv", "span-2/interactions.csv",
                                              "span-2/items.csv", "span-2/users.csv", "span-3/interactions.csv",
                                              "span-3/items.csv", "span-3/users.csv"]
    assert report["split"]["method"] == "newest_span"
    drift = report["drift"]
    assert (drift["newest_span"], drift["previous_span"], drift["decision"]) == (3, 2, "warm"), drift["reason"]
    assert {d["feature"] for d in drift["distances"]} == {"item_genres", "item_id", "user_id", "rating"}
    assert "drift: span 3 against span 2: warm" in first.stdout

    again = recdistill(*run)  # no new span: every component from the cache
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("(cached)") == len(report["components"])

    shutil.move(str(later), str(data / "span-4"))  # the shifted span arrives
    shifted = recdistill(*run)
    assert shifted.returncode == 0, shifted.stderr[-3000:]
    drift = json.loads((tmp_path / "run" / "report" / "report.json").read_text())["drift"]
    assert (drift["newest_span"], drift["previous_span"], drift["decision"]) == (4, 3, "scratch")
    genres = next(d for d in drift["distances"] if d["feature"] == "item_genres")
    assert genres["over"] and "item_genres L-infinity" in drift["reason"]
    assert "[InteractionsExampleGen] finished" in shifted.stdout and \
        not re.search(r"^\[InteractionsExampleGen\] finished in [0-9.]+ s \(cached\)$", shifted.stdout, re.M)

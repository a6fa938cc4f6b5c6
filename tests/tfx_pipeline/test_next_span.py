"""The continuous bench's parts: flat files cut into time spans, the next-span dataset and its
baselines by hand, and the bench itself with its numpy policies."""

import json
import math
import os

import numpy as np
import pytest

from tfx_pipeline import bench_continuous, next_span
from tfx_pipeline.datasets.time_spans import DAY, write_time_spans


def _flat(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    # day 0: u1 i1, u2 i1; day 3: u1 i2; day 8: u3 i3, u1 i3; i4 never interacted with
    (flat / "interactions.csv").write_text("user_id,item_id,timestamp,rating\n"
                                           f"u1,i2,{3 * DAY},4\nu1,i1,0,5\nu2,i1,{DAY // 2},3\n"
                                           f"u3,i3,{8 * DAY},4\nu1,i3,{8 * DAY + 5},2\n")
    (flat / "items.csv").write_text("item_id,title\ni1,One\ni2,Two\ni3,Three\ni4,Four\n")
    (flat / "users.csv").write_text("user_id,age\nu1,30\nu2,40\nu3,50\n")
    return flat


def test_flat_files_are_cut_into_spans_by_time_with_arrivals(tmp_path):
    out = tmp_path / "spans"
    assert write_time_spans(str(_flat(tmp_path)), str(out), days=7) == {"spans": 2, "days": 7, "interactions": [3, 2]}
    read = lambda span, name: (out / f"span-{span}" / name).read_text().splitlines()  # noqa: E731
    assert read(1, "interactions.csv") == ["user_id,item_id,timestamp,rating", "u1,i1,0,5", "u2,i1,43200,3",
                                           f"u1,i2,{3 * DAY},4"]
    assert read(2, "interactions.csv")[1:] == [f"u3,i3,{8 * DAY},4", f"u1,i3,{8 * DAY + 5},2"]
    assert read(1, "items.csv") == ["item_id,title", "i1,One", "i2,Two", "i4,Four"]  # i4: never seen, span 1
    assert read(2, "items.csv") == ["item_id,title", "i3,Three"] and read(2, "users.csv") == ["user_id,age", "u3,50"]


def test_the_next_span_dataset_and_trending_by_hand(tmp_path):
    out = tmp_path / "spans"
    write_time_spans(str(_flat(tmp_path)), str(out), days=7)
    dataset = next_span.next_span_dataset(str(out), 1, [1])
    assert dataset.user_ids == ["", "u1", "u2", "u3"] and dataset.item_ids == ["", "i1", "i2", "i3"]
    assert dataset.splits["train"].user.tolist() == [1, 2, 1] and dataset.splits["test"].item.tolist() == [3, 3]
    # Trending over the last 7 days of history: i1 twice, i2 once, i3 never. u1 saw i1 and i2, so its
    # ranking is i3 first (the only unseen item): a hit at rank 1. u3 has no history: i1, i2, i3,
    # the hit at rank 3: ndcg = 1 / log2(4) = 0.5. The mean over u1 and u3.
    assert next_span.trending_ndcg(dataset, days=7) == pytest.approx((1.0 + 1 / math.log2(4)) / 2)


@pytest.mark.slow  # 8 synthetic spans written, EASE refit 3 times (about 10 s)
def test_the_bench_runs_its_numpy_policies_and_summarises(tmp_path, capsys):
    assert bench_continuous.main(["--output", str(tmp_path), "--synthetic", "--policies", "ease,trending",
                                  "--last-span", "5"]) == 0
    result = json.loads((tmp_path / "continuous.json").read_text())
    assert [(r["trained_to"], r["policy"]) for r in result["rows"]] == [
        (k, p) for k in (2, 3, 4) for p in ("ease", "trending")]
    means = result["summary"]["synthetic"]["means"]
    assert means["ease"]["spans"] == 2  # spans trained to 3 and 4: after the first two
    expected = np.mean([r["ndcg@10"] for r in result["rows"] if r["policy"] == "ease" and r["trained_to"] > 2])
    assert means["ease"]["ndcg@10"] == pytest.approx(expected, abs=1e-4)
    assert means["ease"]["ndcg@10"] > means["trending"]["ndcg@10"]  # a personalised model beats the floor
    assert os.path.getsize(tmp_path / "quality_over_spans.png") > 1000
    assert "warm" not in means and "synthetic: means over the spans tested after the first two" in capsys.readouterr().out


def test_frozen_needs_the_scratch_runs(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench_continuous.main(["--output", str(tmp_path), "--synthetic", "--policies", "frozen"])
    assert "frozen needs scratch" in capsys.readouterr().err


def test_the_ratios_pair_the_spans_where_both_policies_served_a_model():
    rows = [{"data": "d", "trained_to": k, "policy": p, "ndcg@10": v, "seconds": s}
            for k, p, v, s in [(2, "warm", 0.5, 10), (2, "scratch", 0.5, 10),
                               (3, "warm", 0.2, 4), (3, "scratch", 0.25, 10),
                               (4, "warm", 0.3, 6), (4, "scratch", None, 12),  # nothing served: left out
                               (5, "warm", 0.1, 5), (5, "scratch", 0.15, 10), (5, "trending", 0.2, None)]]
    ratios = bench_continuous.summary(rows)["d"]["ratios"]
    assert ratios["warm/scratch ndcg@10"] == round((0.2 + 0.1) / (0.25 + 0.15), 3)  # spans 3 and 5
    assert ratios["warm/scratch seconds"] == round((4 + 5) / (10 + 10), 3)
    assert ratios["warm/trending ndcg@10"] == round(0.1 / 0.2, 3)  # span 5 alone


def test_the_first_span_runs_once_for_the_warm_and_scratch_policies(tmp_path, monkeypatch):
    """At span 2 both policies run `recdistill run` on the same data into an empty directory: the bench
    runs it once and the scratch policy (and frozen, its model) takes the warm run's. From span 3 on
    each policy runs its own."""
    from tfx_pipeline.datasets.synth_spans import write_synthetic_spans

    data = tmp_path / "data"
    write_synthetic_spans(data, spans=4, users=80, items=40, interactions=1600, seed=0)
    runs = []

    def run_pipeline(here, output, config):  # a pushed model per run: mobile/<n> in its directory
        runs.append((sorted(os.listdir(here)), os.path.basename(output)))
        version = len(os.listdir(os.path.join(output, "mobile"))) + 1 if os.path.isdir(output) else 1
        os.makedirs(os.path.join(output, "mobile", str(version)))
        return {"seconds": 10.0 * len(runs), "report": {"pushed": {"mobile": "x"}, "drift": {"decision": "warm"}}}

    monkeypatch.setattr(bench_continuous, "run_pipeline", run_pipeline)
    monkeypatch.setattr(next_span, "tflite_ndcg", lambda model, dataset: float(model.count(os.sep) + len(model)))
    rows = bench_continuous.bench_data("s", str(data), str(tmp_path / "out"), ("warm", "scratch", "frozen"), None,
                                       window=4, last_span=4, ease_l2=200.0, trending_days=28)
    assert runs == [(["span-1", "span-2"], "s-warm"),
                    (["span-1", "span-2", "span-3"], "s-warm"), (["span-1", "span-2", "span-3"], "s-scratch-3")]
    by = {(r["trained_to"], r["policy"]): r for r in rows}
    first = os.path.join(str(tmp_path / "out"), "s-warm", "mobile", "1")
    assert by[2, "scratch"]["same_run_as"] == "warm" and by[2, "scratch"]["seconds"] == by[2, "warm"]["seconds"] == 10
    assert by[2, "scratch"]["ndcg@10"] == by[2, "warm"]["ndcg@10"] == round(first.count(os.sep) + len(first), 4)
    assert by[3, "frozen"]["ndcg@10"] == by[2, "warm"]["ndcg@10"]  # the model served after span 2
    assert "same_run_as" not in by[3, "scratch"] and by[3, "scratch"]["seconds"] == 30

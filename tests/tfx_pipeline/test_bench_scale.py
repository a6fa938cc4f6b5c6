"""The scale bench's arithmetic and tables, on hand-made report.json files (no pipeline run)."""

import json
import math
import sys
from unittest import mock

import pytest

from tfx_pipeline import bench_scale


def test_growth_exponent_by_hand():
    assert bench_scale.growth_exponent(100_000, 10.0, 1_000_000, 100.0) == pytest.approx(1.0)  # 10 x rows, 10 x time
    assert bench_scale.growth_exponent(100_000, 8.0, 400_000, 64.0) == pytest.approx(1.5)  # log 8 / log 4
    assert bench_scale.growth_exponent(1, 5.0, 2, 5.0) == 0.0
    for undefined in [(1, 0.0, 2, 3.0), (1, None, 2, 3.0), (1, 3.0, 1, 4.0), (1, 3.0, 2, None)]:
        assert bench_scale.growth_exponent(*undefined) is None


def test_projection_by_hand():
    assert bench_scale.project(1_000_000, 100.0, 1.0, 10_000_000) == pytest.approx(1000.0)
    assert bench_scale.project(1_000_000, 50.0, 0.5, 100_000_000) == pytest.approx(500.0)  # 50 * sqrt(100)
    assert bench_scale.project(400_000, 64.0, 1.5, 1_600_000) == pytest.approx(512.0)     # 64 * 4 ** 1.5
    assert bench_scale.project(1, None, 1.0, 10) is None and bench_scale.project(1, 1.0, None, 10) is None


def _write_run(root, rows, report, process=None):
    directory = root / f"run-{rows}"
    (directory / "report").mkdir(parents=True)
    (directory / "report" / "report.json").write_text(json.dumps(report))
    if process:
        (directory / bench_scale.BENCH_FILE).write_text(json.dumps(process))


def _report(total, transform, cpu, peak, run_peak, trainer=None):
    wall = {"total": total, "Transform": transform, **({"Trainer": trainer} if trainer else {})}
    resources = {"Transform": {"cpu_seconds": cpu, "peak_rss_mib": peak}}
    if trainer:
        resources["Trainer"] = {"cpu_seconds": 1.0, "peak_rss_mib": 100.0}
    return {"dataset": "x", "wall_seconds": wall, "resources": resources, "peak_rss_mib": run_peak}


def test_from_runs_rebuilds_the_tables_and_scale_json(tmp_path, capsys):
    _write_run(tmp_path, 100_000, _report(20.0, 10.0, 4.0, 500.0, 800.0),
               {"wall_seconds": 30.0, "cpu_seconds": 25.0, "peak_rss_mib": 900.0})
    _write_run(tmp_path, 1_000_000, _report(200.0, 100.0, 40.0, 1000.0, 1600.0, trainer=7.0),
               {"wall_seconds": 300.0, "cpu_seconds": 250.0, "peak_rss_mib": 1800.0})
    (tmp_path / "run-5").mkdir()  # no report: not a finished run
    assert bench_scale.main(["--from-runs", "--output", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "scale.json").read_text())
    assert summary["sizes"] == [100_000, 1_000_000] and summary["targets"] == [10_000_000, 100_000_000]
    transform = summary["components"]["Transform"]
    # wall 10 -> 100 over 10 x rows: exponent 1, so 1,000 s at 10M and 10,000 s at 100M
    assert transform["wall_seconds"] == {"values": {"100000": 10.0, "1000000": 100.0},
                                         "exponents": {"100000->1000000": 1.0},
                                         "projected": {"10000000": 1000.0, "100000000": 10000.0}}
    # peak 500 -> 1000: exponent log 2 / log 10 = 0.301; 1000 * 10 ** 0.30103 = 2000, then 4000
    assert transform["peak_rss_mib"]["exponents"]["100000->1000000"] == round(math.log10(2), 3)
    assert transform["peak_rss_mib"]["projected"] == {"10000000": 2000.0, "100000000": 4000.0}
    assert summary["components"]["total"]["peak_rss_mib"]["values"] == {"100000": 800.0, "1000000": 1600.0}
    assert summary["components"]["total"]["cpu_seconds"]["values"] == {"100000": None, "1000000": None}
    assert summary["components"]["process"]["cpu_seconds"]["projected"]["10000000"] == 2500.0
    trainer = summary["components"]["Trainer"]["wall_seconds"]  # measured at one size only
    assert trainer["exponents"] == {"100000->1000000": None} and trainer["projected"]["10000000"] is None
    printed = capsys.readouterr().out
    assert ("| component | wall s @ 100,000 | wall s @ 1,000,000 | exponent 100,000->1,000,000 | "
            "wall s @ 10,000,000 (projected) | wall s @ 100,000,000 (projected) |") in printed
    assert "| Transform | 10.0 | 100.0 | 1.00 | 1,000 | 10,000 |" in printed
    assert "| Transform | 500.0 | 1,000.0 | 0.30 | 2,000 | 4,000 |" in printed
    assert "| Trainer | - | 7.0 | - | - | - |" in printed
    assert "| process | 25.0 | 250.0 | 1.00 | 2,500 | 25,000 |" in printed


def test_from_runs_without_runs_fails(tmp_path):
    assert bench_scale.main(["--from-runs", "--output", str(tmp_path), "--sizes", "100"]) == 2
    assert not (tmp_path / "scale.json").exists()


def test_bench_one_synthesises_runs_in_a_fresh_directory_and_keeps_the_measures(tmp_path):
    stale = tmp_path / "run-100000" / "metadata.sqlite"
    stale.parent.mkdir()
    stale.write_text("cached executions")
    commands = []

    def fake_measure(command):
        commands.append(command)
        assert not stale.exists()  # emptied first: no cached execution answers
        (tmp_path / "run-100000" / "report").mkdir(parents=True)
        (tmp_path / "run-100000" / "report" / "report.json").write_text(json.dumps(_report(3.0, 2.0, 1.5, 10.0, 12.0)))
        return {"returncode": 0, "wall_seconds": 5.0, "cpu_seconds": 4.0, "peak_rss_mib": 300.0}

    with mock.patch.object(bench_scale.subprocess, "run") as synth, \
            mock.patch.object(bench_scale, "_measure", side_effect=fake_measure):
        rows = bench_scale.bench_one(100_000, str(tmp_path), "/etc/cfg.yaml")
    data = str(tmp_path / "data-100000")
    assert synth.call_args.args[0] == [sys.executable, "-m", "tfx_pipeline.cli", "synth", "--users", "1000",
                                       "--items", "5000", "--interactions", "100000", "--output", data]
    assert commands == [[sys.executable, "-m", "tfx_pipeline.cli", "run", "--data", data,
                         "--output", str(tmp_path / "run-100000"), "--config", "/etc/cfg.yaml"]]
    assert rows["Transform"] == {"wall_seconds": 2.0, "cpu_seconds": 1.5, "peak_rss_mib": 10.0}
    assert rows["process"] == {"wall_seconds": 5.0, "cpu_seconds": 4.0, "peak_rss_mib": 300.0}


def test_measure_sees_the_wall_time_and_memory_of_a_child():
    code = "import time; block = b'x' * (80 * 2**20); time.sleep(1.5)"
    measured = bench_scale._measure([sys.executable, "-c", code])
    assert measured["returncode"] == 0 and 1.5 <= measured["wall_seconds"] < 10
    assert measured["peak_rss_mib"] >= 80 and measured["cpu_seconds"] >= 0

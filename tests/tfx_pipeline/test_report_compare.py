"""`recdistill report A B`: B's deltas against A, computed here by hand, and the settings that differ."""

import json

from tfx_pipeline import cli, run_metadata
from tfx_pipeline.config import PipelineConfig


def _write(directory, models, wall, config, inputs, blessed):
    run = run_metadata.describe(config, [], "2026-12-04T17:00:00Z", "2026-12-04T17:08:00Z")
    run["inputs"] = inputs
    report = {"dataset": "d", "models": models, "wall_seconds": wall, "blessed": blessed, "run": run}
    (directory / "report").mkdir(parents=True)
    (directory / "report" / "report.json").write_text(json.dumps(report))


def test_two_runs_side_by_side_with_deltas_and_the_settings_that_differ(tmp_path, capsys):
    import dataclasses

    same = {"interactions.csv": {"sha256": "1" * 64, "bytes": 10, "rows": 3}}
    seeded = dataclasses.replace(PipelineConfig(), teacher=dataclasses.replace(PipelineConfig().teacher, seed=7))
    _write(tmp_path / "a", {"ease": {"ndcg@10": 0.4, "recall@10": 0.3, "precision@10": 0.2},
                            "tflite": {"ndcg@10": 0.48, "recall@10": 0.31, "precision@10": 0.25, "bytes": 120000,
                                       "gzip_bytes": 50000, "latency_ms_p50": 0.5,
                                       "beyond_accuracy": {"coverage": 0.30, "popular_share": 0.5}}},
           {"total": 100.0, "Transform": 10.0}, PipelineConfig(), same, True)
    _write(tmp_path / "b", {"ease": {"ndcg@10": 0.4, "recall@10": 0.3, "precision@10": 0.2},
                            "tflite": {"ndcg@10": 0.45, "recall@10": 0.33, "precision@10": 0.25, "bytes": 121000,
                                       "gzip_bytes": 50000, "latency_ms_p50": 0.5,
                                       "beyond_accuracy": {"coverage": 0.35, "popular_share": 0.4}}},
           {"total": 90.5, "Transform": 12.0}, seeded, same, False)
    assert cli.main(["report", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():  # the first table's row of each model
        if line.split():
            rows.setdefault(line.split()[0], line.split())
    # ndcg@10 A, B, delta; recall@10 ...: 0.45 - 0.48 and 0.33 - 0.31 by hand
    assert rows["tflite"][1:7] == ["0.4800", "0.4500", "-0.0300", "0.3100", "0.3300", "+0.0200"]
    assert rows["ease"][3] == "+0.0000"
    assert [line for line in out.splitlines() if line.startswith("tflite")][1].split()[1:4] == ["120,000", "121,000",
                                                                                                 "+1,000"]
    assert [line for line in out.splitlines() if line.startswith("tflite")][2].split()[1:] == [
        "0.3000", "0.3500", "+0.0500", "0.5000", "0.4000", "-0.1000"]
    assert rows["total"][1:] == ["100.0", "90.5", "-9.5"]
    assert "setting teacher.seed: A 42, B 7" in out and "inputs: the same files (sha256)" in out
    assert "blessed: A yes, B no" in out


def test_a_missing_second_run_is_named(tmp_path, capsys):
    _write(tmp_path / "a", {}, {}, PipelineConfig(), {}, False)
    assert cli.main(["report", str(tmp_path / "a"), str(tmp_path / "absent")]) == 2
    assert "absent: no report/report.json" in capsys.readouterr().err


def test_an_empty_first_directory_is_named_not_a_crash(tmp_path, capsys):
    _write(tmp_path / "b", {}, {}, PipelineConfig(), {}, False)
    assert cli.main(["report", "", str(tmp_path / "b")]) == 2
    assert "no report/report.json" in capsys.readouterr().err

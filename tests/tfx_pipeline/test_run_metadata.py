"""report.json "run": input digests and row counts, the settings' digest and differences, seeds,
the git commit (tfx_pipeline/run_metadata.py)."""

import hashlib
import json
import subprocess

import pytest

from tfx_pipeline import report, run_metadata
from tfx_pipeline.config import PipelineConfig, load_config


def test_an_input_file_is_digested_and_its_records_counted_with_quoted_line_breaks(tmp_path):
    text = 'item_id,title,genres\r\n1,"Toy Story\nreprise",Animation\r\n2,Heat\u2028x,Action\n3,"a, b",Drama'
    path = tmp_path / "items.csv"
    path.write_bytes(text.encode())
    assert run_metadata.input_file(str(path)) == {
        "sha256": hashlib.sha256(text.encode()).hexdigest(), "bytes": len(text.encode()), "rows": 3}
    assert run_metadata.input_file(str(tmp_path / "absent.csv")) == {"sha256": None, "bytes": None, "rows": None}


@pytest.mark.parametrize("text, rows", [("a,b\r1,2\r3,4\r", 2), ("a,b\n1,2\n\n3,4\n\n", 2),
                                        ('a,b\r\n1,"x\ry"\r\n2,3', 2)])
def test_old_mac_line_ends_and_blank_lines_count_as_the_ingest_reads_them(tmp_path, text, rows):
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode())
    assert run_metadata.input_file(str(path)) == {"sha256": hashlib.sha256(text.encode()).hexdigest(),
                                                  "bytes": len(text.encode()), "rows": rows}


def test_equal_settings_have_equal_digests_and_a_change_is_named(tmp_path):
    (tmp_path / "a.yaml").write_text("student: {epochs: 3}\n")
    default = run_metadata.describe(PipelineConfig(), [], "t0", "t1")
    again = run_metadata.describe(PipelineConfig(), [], "t0", "t1")
    changed = run_metadata.describe(load_config(str(tmp_path / "a.yaml")), [], "t0", "t1")
    assert default["config_digest"] == again["config_digest"] != changed["config_digest"]
    assert json.loads(json.dumps(default)) == default  # JSON as it is
    old = default["config"]["student"]["epochs"]
    assert run_metadata.differences(default["config"], changed["config"]) == [("student.epochs", old, 3)]


def test_seeds_are_found_wherever_they_are():
    settings = {"seed": 1, "teacher": {"seed": 2, "dim": 3}, "split": {"shuffle_seed": 4}, "a": [1]}
    assert run_metadata.seeds(settings) == {"seed": 1, "teacher.seed": 2, "split.shuffle_seed": 4}


def test_the_git_commit_and_whether_tracked_files_changed(tmp_path):
    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True).stdout

    assert run_metadata.git_commit(str(tmp_path)) is None  # not a checkout
    git("init", "-q")
    (tmp_path / "f").write_text("1")
    git("add", "f")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = git("rev-parse", "HEAD").strip()
    assert run_metadata.git_commit(str(tmp_path)) == head
    (tmp_path / "f").write_text("2")
    assert run_metadata.git_commit(str(tmp_path)) == head + "+dirty"


def test_the_report_names_what_produced_it():
    run = {"recdistill": "0.1.0", "git_commit": "a" * 40 + "+dirty", "config_digest": "0123456789abcdef",
           "versions": {"tensorflow": "2.16.2", "tfx": "1.16.0"}, "machine": {"cores": 2, "memory_gib": 23.4},
           "started": "2026-12-04T17:00:00Z", "ended": "2026-12-04T17:08:00Z",
           "inputs": {"interactions.csv": {"sha256": "f" * 64, "bytes": 10, "rows": 1000}}}
    lines = report.run_lines(run)
    assert lines[0] == ("run: recdistill 0.1.0 (commit aaaaaaaaaaaa+dirty), config 0123456789abcdef, TensorFlow 2.16.2, "
                        "TFX 1.16.0, 2 cores, 23.4 GiB; 2026-12-04T17:00:00Z to 2026-12-04T17:08:00Z")
    assert lines[1] == "inputs: interactions.csv 1,000 rows (sha256 ffffffffffff)"
    assert report.run_lines(None) == []

"""Bad settings and arguments: one line on stderr naming the setting, file or flag, exit 2, and
nothing started (the pipeline runner is replaced by one that fails the test if it is reached)."""

import json

import pytest

from tfx_pipeline import cli


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("recdistill: error: ")
    return lines[0][len("recdistill: error: "):]


@pytest.fixture
def no_pipeline(monkeypatch):
    """run_local replaced: reaching it means the checks let the run start."""
    from tfx_pipeline import local_runner

    def reached(*args, **kwargs):
        raise ValueError("the pipeline would start")

    monkeypatch.setattr(local_runner, "run_local", reached)


@pytest.fixture
def data_dir(write_input, tmp_path):
    return write_input(tmp_path / "data", "user_id,item_id,timestamp\nu1,i1,1\n")  # items: title, year, genres


@pytest.mark.parametrize("text, expected", [
    ("pipeline_name: 5\n", "pipeline_name must be 1 to 63 letters"),
    ("max_bad_share: lots\n", "max_bad_share must be a share in [0, 1), got 'lots'"),
    ("max_tokens: -1\n", "max_tokens must be a positive integer, got -1"),
    ("numeric_buckets: -1\n", "numeric_buckets must be a positive integer, got -1"),
    ("text_length: -1\n", "text_length must be an integer from 3 to 512, got -1"),
    ("beam_workers: 2.5\n", "beam_workers must be a positive integer, got 2.5"),
    ("item_text_columns: [summary]\n", "item_text_columns: 'summary' is not a column of items.csv"),
])
def test_run_refuses_a_bad_config_before_the_pipeline_starts(no_pipeline, data_dir, tmp_path, capsys, text, expected):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    code = cli.main(["run", "--data", data_dir, "--output", str(tmp_path / "out"), "--config", str(config)])
    line = _error_line(capsys)
    assert code == 2 and line.startswith(f"{config}: ") and expected in line, line


def test_a_config_that_is_not_utf8_is_named(no_pipeline, data_dir, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_bytes(b"pipeline_name: caf\xe9\n")
    assert cli.main(["run", "--data", data_dir, "--output", str(tmp_path / "out"), "--config", str(config)]) == 2
    assert _error_line(capsys) == f"{config}: not UTF-8 text (byte 18); the config file must be UTF-8"


def test_a_good_config_reaches_the_pipeline(no_pipeline, data_dir, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("item_text_columns: [title, year]\nbeam_workers: 2\n")
    assert cli.main(["run", "--data", data_dir, "--output", str(tmp_path / "out"), "--config", str(config)]) == 2
    assert _error_line(capsys) == "the pipeline would start"


def test_movielens_columns_are_checked_too(no_pipeline, tmp_path, capsys):
    """The built-in dataset is converted first (as the run would), then its columns are checked."""
    config = tmp_path / "c.yaml"
    config.write_text("item_text_columns: [title, plot]\n")
    code = cli.main(["run", "--data", "movielens-100k", "--output", str(tmp_path / "out"), "--config", str(config)])
    line = _error_line(capsys)
    assert code == 2 and line.startswith(f"{config}: item_text_columns: 'plot' is not a column of items.csv"), line
    assert "items.csv: title, year, genres" in line


def test_report_of_a_broken_report_file_is_one_line(tmp_path, capsys):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.json").write_bytes(b"{\"split\": \xff")
    assert cli.main(["report", str(tmp_path)]) == 2
    assert _error_line(capsys).startswith(f"{tmp_path / 'report' / 'report.json'}: not a report (")
    (tmp_path / "report" / "report.json").write_text(json.dumps({"split": 1})[:-3])
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "not a report" in _error_line(capsys)


def test_synth_refuses_a_negative_seed(tmp_path, capsys):
    args = ["synth", "--users", "3", "--items", "3", "--interactions", "5", "--output", str(tmp_path / "s")]
    assert cli.main(args + ["--seed", "-1"]) == 2
    assert "--seed not negative" in _error_line(capsys)


@pytest.mark.parametrize("args, flag", [
    (["run", "--output", "o"], "--data"),
    (["tflite-predict", "--model", "m", "--user-id", "u", "--k", "many"], "--k"),
    (["synth", "--users", "2.5", "--items", "3", "--interactions", "5", "--output", "o"], "--users"),
    (["compile", "--runner", "argo", "--output", "p.json"], "--runner"),
    (["report"], "DIR"),
])
def test_a_bad_flag_is_one_line_naming_it(capsys, args, flag):
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert exit_.value.code == 2 and line.startswith(f"recdistill {args[0]}: error: ") and flag in line, line


def test_query_names_an_items_file_that_is_not_utf8_before_asking_the_server(tmp_path, capsys):
    items = tmp_path / "items.csv"
    items.write_bytes(b"item_id,title\n1,caf\xe9\n")
    # Port 1 on loopback: nothing listens there, so an answer about the server would mean the file was not checked first.
    assert cli.main(["query", "--target", "127.0.0.1:1", "--user-id", "1", "--items", str(items)]) == 2
    line = _error_line(capsys)
    assert str(items) in line and "UTF-8" in line


@pytest.mark.slow  # a fresh interpreter (about 2 s here)
def test_a_bad_flag_data_directory_or_setting_is_answered_before_tensorflow_is_imported(tmp_path):
    """Each case in one fresh interpreter: exit 2, one line, and neither TensorFlow nor TFX loaded."""
    import os
    import subprocess
    import sys

    (tmp_path / "data").mkdir()
    bad = {"teacher.yaml": "teacher: {dim: 10, heads: 3}\n", "unknown.yaml": "colour: blue\n",
           "student.yaml": "student: {dim: 0}\n", "rank.yaml": "compression: {rank: 2.5}\n"}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
    run = ["run", "--output", str(tmp_path / "out")]
    cases = [run + ["--data", str(tmp_path / "absent")], ["run", "--dta", "x"], run]
    cases += [run + ["--data", str(tmp_path / "data"), "--config", str(tmp_path / name)] for name in bad]
    cases += [run + ["--data", str(tmp_path / "data"), "--config", str(tmp_path / "missing.yaml")]]
    cases += [["compile", "--output", str(tmp_path / "p.json"), "--strict"], ["query", "--k", "0"]]
    code = f"""
import contextlib, io, sys
from tfx_pipeline.cli import main
for args in {cases!r}:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exit:
            code = exit.code
    lines = err.getvalue().strip().splitlines()
    loaded = [name for name in ("tensorflow", "tfx", "apache_beam") if name in sys.modules]
    assert code == 2 and len(lines) == 1 and not loaded, (args, code, lines, loaded)
"""
    # as a user runs it: without the tests' storage emulator (its credentials' set-up loads Beam)
    env = {key: value for key, value in os.environ.items() if key != "STORAGE_EMULATOR_HOST"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]

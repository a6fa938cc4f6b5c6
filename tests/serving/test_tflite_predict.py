"""`recdistill tflite-predict` on a tiny converted model: ids through the vocabularies, titles, errors."""

import numpy as np
import pytest
import tensorflow as tf

from serving import catalog, tflite_predict
from tfx_pipeline import cli


@pytest.fixture(scope="module")
def mobile_dir(tmp_path_factory):
    from tests.conftest import write_tiny_mobile_run

    return write_tiny_mobile_run(tmp_path_factory.mktemp("run"))


def test_ids_map_through_the_vocabularies_and_history_items_are_left_out(mobile_dir):
    directory, toy, model = mobile_dir
    ranked = tflite_predict.recommend(str(directory), "u4", ["i7", "i2", "no-such-item"], k=5)
    users, items = np.array([4]), np.array([[7, 2, 0, 0]])
    expected = model.score(tf.constant(users), tf.constant(items)).numpy()[0]
    expected[[0, 7, 2]] = -np.inf  # OOV and the history are not recommended
    assert [item for item, _ in ranked] == [toy.item_ids[i] for i in np.argsort(-expected, kind="stable")[:5]]
    np.testing.assert_allclose([s for _, s in ranked], np.sort(expected)[::-1][:5], rtol=1e-4, atol=1e-4)
    assert len(tflite_predict.recommend(str(directory), "a-new-user", [], k=3)) == 3  # served, not rejected


def test_the_command_prints_titles_and_reports_a_wrong_directory(mobile_dir, capsys, tmp_path):
    directory, _, _ = mobile_dir
    assert catalog.default_items_csv(str(directory)).endswith("input/items.csv")
    assert cli.main(["tflite-predict", "--model", str(directory), "--user-id", "u1", "--history", "i3", "--k", "2"]) == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("  1  i") and "Title " in lines[0]
    assert cli.main(["tflite-predict", "--model", str(tmp_path), "--user-id", "u1"]) == 2
    assert "no model.tflite" in capsys.readouterr().err


def _one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


@pytest.mark.parametrize("content", [b"not a flatbuffer at all", b""])
def test_a_broken_model_file_is_named(mobile_dir, capsys, tmp_path, content):
    import shutil

    directory, _, _ = mobile_dir
    copy = tmp_path / "mobile" / "1"
    shutil.copytree(directory, copy)
    (copy / "model.tflite").write_bytes(content)
    assert cli.main(["tflite-predict", "--model", str(copy), "--user-id", "u1"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"recdistill: error: {copy / 'model.tflite'}: not a recdistill TFLite model"), line


def test_items_flag_missing_or_not_utf8_is_named(mobile_dir, capsys, tmp_path):
    directory, _, _ = mobile_dir
    missing = tmp_path / "missing.csv"
    assert cli.main(["tflite-predict", "--model", str(directory), "--user-id", "u1", "--items", str(missing)]) == 2
    assert _one_error_line(capsys) == f"recdistill: error: --items {missing}: no such file"
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("item_id,title\ni1,Café\n".encode("latin-1"))
    assert cli.main(["tflite-predict", "--model", str(directory), "--user-id", "u1", "--items", str(latin1)]) == 2
    assert _one_error_line(capsys) == f"recdistill: error: {latin1}: not UTF-8 text (byte 20); items.csv files are UTF-8"
    assert capsys.readouterr().out == ""

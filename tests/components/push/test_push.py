"""Atomic, versioned pushes (components/push) and the pusher's blessing gate."""

import json
import os
import shutil
from unittest import mock

import pytest
from tfx.types import standard_artifacts

from components.push import push as push_lib
from components.push.component import ModelPusher
from models.foundation import signatures

PUSH = ModelPusher.EXECUTOR_SPEC.executor_class._FUNCTION  # the component's Python function


def _model_dir(root, content="v1"):
    model = root / "model"
    (model / "Format-Serving" / "variables").mkdir(parents=True, exist_ok=True)
    (model / "Format-Serving" / "saved_model.pb").write_text(content)
    (model / "Format-Serving" / "variables" / "variables.index").write_text(content * 3)
    (model / "mobile").mkdir(exist_ok=True)
    (model / "mobile" / signatures.TFLITE_FILE).write_text(content)
    (model / "mobile" / signatures.METADATA).write_text(json.dumps({"version": None, "metrics": None}))
    return model


def _artifacts(model_dir, blessed, tmp_path):
    model = standard_artifacts.Model()
    model.uri = str(model_dir)
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    blessing.set_string_custom_property("reason", "test")
    blessing.set_string_custom_property("metrics", json.dumps({"ndcg@10": 0.5}))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    return model, blessing, pushed


def test_versions_increase_and_identical_content_is_not_pushed_twice(tmp_path):
    base = tmp_path / "serving" / "recdistill"
    source = _model_dir(tmp_path) / "Format-Serving"
    assert push_lib.push(str(source), str(base))[::2] == (1, True)
    assert push_lib.push(str(source), str(base))[::2] == (1, False)  # a cached rerun: same files
    (source / "saved_model.pb").write_text("v2")
    version, path, new = push_lib.push(str(source), str(base))
    assert (version, new) == (2, True) and open(os.path.join(path, "saved_model.pb")).read() == "v2"
    assert sorted(os.listdir(base)) == ["1", "2"]


def test_the_model_that_the_latest_version_extends_is_not_pushed_over_it(tmp_path):
    base = tmp_path / "serving" / "recdistill"
    source = _model_dir(tmp_path) / "Format-Serving"
    push_lib.push(str(source), str(base))

    def extension(of, content):  # as `recdistill add-items` writes one: items appended, the base named
        directory = tmp_path / f"extension-{content}"
        shutil.copytree(of, directory)
        (directory / "saved_model.pb").write_text(content)
        (directory / push_lib.EXTENDS_FILE).write_text(push_lib.extends_marker(str(of)))
        return str(directory)

    assert push_lib.push(extension(base / "1", "v1 + items"), str(base))[::2] == (2, True)
    assert push_lib.push(str(source), str(base))[::2] == (2, False)  # a rerun blessing v1's model again
    assert push_lib.push(extension(base / "2", "v1 + more items"), str(base))[::2] == (3, True)
    assert push_lib.push(str(source), str(base))[::2] == (3, False)  # the extension of an extension names v1's
    (source / "saved_model.pb").write_text("another model")
    assert push_lib.push(str(source), str(base))[::2] == (4, True)


def test_an_interrupted_push_leaves_no_version_and_no_staging(tmp_path):
    base = tmp_path / "serving" / "recdistill"
    source = _model_dir(tmp_path) / "Format-Serving"

    def copy_half_then_fail(src, dst, skip=()):
        os.makedirs(dst)
        shutil.copy(os.path.join(src, "saved_model.pb"), dst)  # half a model is on disk
        raise OSError("disk full")

    with mock.patch.object(push_lib.storage, "copy_tree", side_effect=copy_half_then_fail):
        with pytest.raises(OSError, match="disk full"):
            push_lib.push(str(source), str(base))
    assert os.listdir(base) == []
    assert push_lib.latest_version(str(base)) is None


def test_a_push_built_on_a_version_that_is_no_longer_the_latest_publishes_nothing(tmp_path):
    base = tmp_path / "serving" / "recdistill"
    push_lib.push(str(_model_dir(tmp_path) / "Format-Serving"), str(base))
    push_lib.push(str(_model_dir(tmp_path / "other", "v2") / "Format-Serving"), str(base))  # came meanwhile
    with pytest.raises(push_lib.PushConflict) as raised:
        push_lib.push(str(_model_dir(tmp_path / "mine", "v1 + items") / "Format-Serving"), str(base), built_on=1)
    assert str(raised.value) == f"{base}: version 2 appeared while this push was built; rerun"
    assert sorted(os.listdir(base)) == ["1", "2"]  # nothing published, no staging, no lock left
    assert (base / "2" / "saved_model.pb").read_text() == "v2"
    empty = tmp_path / "mobile"  # a first push (built on no version) finds that another came first
    push_lib.push(str(_model_dir(tmp_path / "first", "v0") / "mobile"), str(empty))
    with pytest.raises(push_lib.PushConflict, match="version 1 appeared while this push was built; rerun"):
        push_lib.push(str(_model_dir(tmp_path / "second", "w0") / "mobile"), str(empty), built_on=None)
    assert sorted(os.listdir(empty)) == ["1"]
    version, _, new = push_lib.push(str(_model_dir(tmp_path / "mine", "v2 + items") / "Format-Serving"), str(base),
                                    built_on=2)
    assert (version, new) == (3, True)


def test_a_killed_pushs_staging_is_ignored_as_a_version_and_cleaned_up(tmp_path):
    base = tmp_path / "mobile"
    stale = base / f"{push_lib.STAGING_PREFIX}1-999999999"  # a process that no longer exists
    stale.mkdir(parents=True)
    (stale / "half").write_text("x")
    assert push_lib.versions(str(base)) == []  # never mistaken for a version
    push_lib.push(str(_model_dir(tmp_path) / "mobile"), str(base))
    assert sorted(os.listdir(base)) == ["1"]


def test_no_push_when_not_blessed(tmp_path):
    model, blessing, pushed = _artifacts(_model_dir(tmp_path), blessed=False, tmp_path=tmp_path)
    destination = tmp_path / "out" / "serving" / "recdistill"
    PUSH(model=model, blessing=blessing, kind="serving", destination=str(destination), run_token="t", pushed_model=pushed)
    assert pushed.get_int_custom_property("pushed") == 0
    assert not destination.exists()


def test_blessed_pushes_write_serving_files_and_stamp_mobile_metadata(tmp_path):
    model, blessing, pushed = _artifacts(_model_dir(tmp_path), blessed=True, tmp_path=tmp_path)
    serving = tmp_path / "out" / "serving" / "recdistill"
    PUSH(model=model, blessing=blessing, kind="serving", destination=str(serving), run_token="t", pushed_model=pushed)
    assert pushed.get_int_custom_property("pushed") == 1 and pushed.get_int_custom_property("pushed_version") == 1
    assert (serving / "1" / "saved_model.pb").exists()
    assert (serving.parent / signatures.MODELS_CONFIG).exists() and (serving.parent / signatures.BATCHING_PARAMETERS).exists()

    mobile = tmp_path / "out" / "mobile"
    _, _, pushed_mobile = _artifacts(model.uri, True, tmp_path)
    pushed_mobile.uri = str(tmp_path / "pushed_mobile")
    PUSH(model=model, blessing=blessing, kind="mobile", destination=str(mobile), run_token="t", pushed_model=pushed_mobile)
    metadata = json.loads((mobile / "1" / signatures.METADATA).read_text())
    assert metadata["version"] == 1 and metadata["metrics"] == {"ndcg@10": 0.5}
    # the source artifact is untouched: the stamp is written into the pushed copy only
    assert json.loads((tmp_path / "model" / "mobile" / signatures.METADATA).read_text())["version"] is None
    PUSH(model=model, blessing=blessing, kind="mobile", destination=str(mobile), run_token="t", pushed_model=pushed_mobile)
    assert sorted(os.listdir(mobile)) == ["1"]  # same model again: not a new version

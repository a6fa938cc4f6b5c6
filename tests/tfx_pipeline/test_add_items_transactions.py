"""`recdistill add-items` as a transaction, on copies of the session's tiny finished run
(tests/conftest.py `finished_run`): two add-items racing, add-items racing a pipeline push, a
copied run extended in the copy only, and a corrupt latest version refused in one line.

Races are made deterministic by running the other command where one add-items has picked the
versions it extends and built its models, and is about to publish them (components/push/push.py's
`publish`). Real add-items runs cost 10-25 s each: three run to their publishing step here.
"""

import contextlib
import csv
import io
import os
import shutil
from unittest import mock

import pytest

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

from components.push import push as push_lib  # noqa: E402
from models.foundation import signatures  # noqa: E402

pytestmark = pytest.mark.e2e
SERVING = ("serving", signatures.MODEL_NAME)
RERUN = "appeared while this push was built; rerun"


def _cli(*args):
    """(exit code, stdout, stderr) of `recdistill ARGS` run in this process."""
    from tfx_pipeline import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(arg) for arg in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def copied_run(finished_run, tmp_path):
    """(the original run directory, a copy of it in tmp_path)."""
    base, _, _ = finished_run
    copy = tmp_path / "copied-run"
    shutil.copytree(base / "run", copy)
    return base / "run", copy


def _items_csv(path, ids, catalog_csv):
    """NEW.csv: catalog items' title, year and genres under new ids."""
    with open(catalog_csv, newline="", encoding="utf-8") as f:
        catalog = list(csv.DictReader(f))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["item_id", "title", "year", "genres"])
        for item_id, source in zip(ids, catalog):
            writer.writerow([item_id, source["title"], source["year"], source["genres"]])
    return path


def _tree(directory):
    """{relative path: (size, mtime_ns)} of everything under directory."""
    found = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(root, name)
            status = os.lstat(path)
            found[os.path.relpath(path, directory)] = (status.st_size if name in files else 0, status.st_mtime_ns)
    return found


def _versions(run):
    return sorted(os.listdir(run.joinpath(*SERVING))), sorted(os.listdir(run / "mobile"))


def _served(run, item_id):
    """The versions (serving, mobile) that serve item_id: in the SavedModel's ids, in the TFLite vocabulary."""
    serving = [v for v in os.listdir(run.joinpath(*SERVING)) if v.isdigit() and
               item_id.encode() in (run.joinpath(*SERVING, v, "saved_model.pb")).read_bytes()]
    mobile = [v for v in os.listdir(run / "mobile") if v.isdigit() and
              item_id in (run / "mobile" / v / signatures.ITEM_VOCAB).read_text(encoding="utf-8").split("\n")]
    return sorted(serving), sorted(mobile)


@contextlib.contextmanager
def _when_publishing(action):
    """Runs `action` once, when the next add-items is about to publish what it built (publishes
    inside `action` go straight through); yields the list that receives action's result."""
    publish, started, results = push_lib.publish, [], []

    def action_first(*args, **kwargs):
        if not started:
            started.append(True)
            results.append(action())
        return publish(*args, **kwargs)

    with mock.patch.object(push_lib, "publish", side_effect=action_first):
        yield results
    assert results, "add-items never reached its publishing step"


def test_two_add_items_racing_on_a_copied_run_one_publishes_one_exits_2_and_nothing_leaves_the_copy(
        copied_run, finished_run, tmp_path):
    original, copy = copied_run
    catalog = finished_run[0] / "data" / "items.csv"
    first = _items_csv(tmp_path / "FIRST.csv", ["first-1", "first-2"], catalog)
    second = _items_csv(tmp_path / "SECOND.csv", ["second-1"], catalog)
    before = _tree(original)
    with _when_publishing(lambda: _cli("add-items", "--run", copy, "--items", second)) as other:
        code, out, err = _cli("add-items", "--run", copy, "--items", first)
    (second_code, second_out, second_err), = other
    assert second_code == 0, second_err[-3000:]
    assert f"serving version 2: {copy.joinpath(*SERVING, '2')}" in second_out
    assert f"mobile version 2: {copy / 'mobile' / '2'}" in second_out
    assert code == 2 and "Traceback" not in err and out == ""
    (line,) = err.strip().splitlines()
    assert line == f"recdistill: error: {copy.joinpath(*SERVING)}: version 2 {RERUN}"
    assert _versions(copy) == (["1", "2"], ["1", "2"])  # nothing of the loser, no staging, no lock
    assert _served(copy, "second-1") == (["2"], ["2"])
    assert _served(copy, "first-1") == _served(copy, "first-2") == ([], [])
    assert _tree(original) == before  # the original run: not a file written, changed or added


def test_add_items_racing_a_pipeline_push_of_another_model_exits_2_and_publishes_nothing(
        copied_run, finished_run, tmp_path):
    from components.push.component import ModelPusher

    _, copy = copied_run
    (compressed,) = (copy / "pipeline_root" / "StudentCompressor" / "model").iterdir()
    retrained = tmp_path / "retrained"  # another model, as a new run's compressor would write it
    shutil.copytree(compressed, retrained)
    (retrained / "Format-Serving" / "assets.extra").mkdir(exist_ok=True)
    (retrained / "Format-Serving" / "assets.extra" / "retrained.txt").write_text("another model")
    (retrained / "mobile" / "retrained.txt").write_text("another model")
    items = _items_csv(tmp_path / "NEW.csv", ["late-1"], finished_run[0] / "data" / "items.csv")

    def pipeline_pushers():
        from tfx.types import standard_artifacts

        pushed = {}
        for kind, destination in (("serving", copy.joinpath(*SERVING)), ("mobile", copy / "mobile")):
            model, blessing, pushed_model = (standard_artifacts.Model(), standard_artifacts.ModelBlessing(),
                                             standard_artifacts.PushedModel())
            model.uri, pushed_model.uri = str(retrained), str(tmp_path / f"pushed-{kind}")
            blessing.set_int_custom_property("blessed", 1)
            ModelPusher.EXECUTOR_SPEC.executor_class._FUNCTION(
                model=model, blessing=blessing, kind=kind, destination=str(destination), run_token="t",
                pushed_model=pushed_model)
            pushed[kind] = pushed_model.get_int_custom_property("pushed_version")
        return pushed

    with _when_publishing(pipeline_pushers) as pushed:
        code, out, err = _cli("add-items", "--run", copy, "--items", items)
    assert pushed == [{"serving": 2, "mobile": 2}]  # the pipeline's pushers pair their numbers
    assert code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line == f"recdistill: error: {copy.joinpath(*SERVING)}: version 2 {RERUN}"
    assert _versions(copy) == (["1", "2"], ["1", "2"])
    assert _served(copy, "late-1") == ([], [])
    assert (copy.joinpath(*SERVING, "2", "assets.extra", "retrained.txt")).exists()


def test_a_copied_runs_lineage_is_read_from_the_copy(copied_run):
    from tfx_pipeline import pushed_lineage

    original, copy = copied_run
    lineage = pushed_lineage.read(str(copy))
    paths = (lineage.student_dir, lineage.transform_graph_dir, lineage.examples_dir, lineage.serving_destination,
             lineage.mobile_destination)
    assert all(path.startswith(str(copy) + os.sep) and os.path.exists(path) for path in paths), paths
    assert lineage.written_in == str(original)
    assert lineage.serving_destination == str(copy.joinpath(*SERVING, "1"))
    assert pushed_lineage.read(str(original)).written_in is None  # the original: its own paths


def test_a_run_that_pushed_outside_its_directory_needs_push_root(copied_run, finished_run, tmp_path):
    original, _ = copied_run
    metadata_only = tmp_path / "metadata-only"  # its pushes (and artifacts) are not under it
    metadata_only.mkdir()
    shutil.copy(original / "metadata.sqlite", metadata_only)
    items = _items_csv(tmp_path / "NEW.csv", ["x-1"], finished_run[0] / "data" / "items.csv")
    before = _tree(original)
    code, _, err = _cli("add-items", "--run", metadata_only, "--items", items)
    assert code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line == (f"recdistill: error: {original.joinpath(*SERVING, '1')}: the run pushed outside --run "
                    f"{metadata_only}; add-items writes there only when --push-root names it")
    assert _tree(original) == before


@pytest.mark.parametrize("kind", ["serving", "mobile"])
def test_a_corrupt_latest_version_is_refused_in_one_line_naming_it(copied_run, finished_run, tmp_path, kind):
    _, copy = copied_run
    base = copy.joinpath(*SERVING) if kind == "serving" else copy / "mobile"
    shutil.copytree(base / "1", base / "2")
    broken = base / "2" / ("saved_model.pb" if kind == "serving" else signatures.TFLITE_FILE)
    broken.write_bytes(broken.read_bytes()[: len(broken.read_bytes()) // 3])  # cut short: a copy gone wrong
    items = _items_csv(tmp_path / "NEW.csv", ["x-1"], finished_run[0] / "data" / "items.csv")
    code, out, err = _cli("add-items", "--run", copy, "--items", items)
    assert code == 2 and "Traceback" not in err and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(f"recdistill: error: {base / '2'}: the latest {kind} version cannot be ")
    assert line.endswith("; fix or remove it, then rerun")
    assert _versions(copy) == ((["1", "2"], ["1"]) if kind == "serving" else (["1"], ["1", "2"]))

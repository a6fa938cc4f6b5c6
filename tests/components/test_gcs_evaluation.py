"""The evaluation, the report and `recdistill tflite-predict` on gs:// (a storage emulator): the
same figures, files and answers as on a local directory."""

import gzip
import json
import os
import uuid
from unittest import mock

import numpy as np
import pytest
from tfx.types import standard_artifacts

from components.evaluation import blessing, evaluate, protocol
from components.evaluation.component import ModelEvaluator
from components.teacher import training
from models import artifacts
from models.foundation import signatures
from models.interaction_data import save_dataset
from models.retrieval_metrics import split_evaluator
from serving import catalog, tflite_predict
from tfx_pipeline import cli, mlmd_outputs, report, report_files
from models.foundation import storage


def _local_sizes(path, exclude=None):
    """protocol.sizes as it was written with os.walk and open, to compare with."""
    skip = os.path.join(path, exclude) if exclude else None
    files = [path] if os.path.isfile(path) else [
        os.path.join(d, f) for d, _, names in os.walk(path) for f in names if not (skip and d.startswith(skip))]
    zipped = 0
    for name in files:
        with open(name, "rb") as f:
            zipped += len(gzip.compress(f.read(), 6))
    return sum(os.path.getsize(f) for f in files), zipped


def test_sizes_on_gcs_equal_the_local_figures(tmp_path, gcs_root):
    rng = np.random.default_rng(0)
    local = tmp_path / "model"
    for relative, size in (("saved_model.pb", 3000), ("variables/variables.data-00000-of-00001", 50_000),
                           ("variables/variables.index", 200), ("weights/w.h5", 9000), ("weightsextra/x", 70),
                           ("assets/empty.txt", 0)):
        (local / relative).parent.mkdir(parents=True, exist_ok=True)
        # half random, half zeros: gzip_bytes differs from bytes
        (local / relative).write_bytes(rng.integers(0, 256, size // 2, np.uint8).tobytes() + bytes(size - size // 2))
    remote = storage.join(gcs_root, "model")
    storage.copy_tree(str(local), remote)
    for exclude in (None, "weights"):
        expected = _local_sizes(str(local), exclude)
        assert protocol.sizes(str(local), exclude) == expected
        assert protocol.sizes(remote, exclude) == expected
    single = ("variables", "variables.index")
    assert protocol.sizes(storage.join(remote, *single)) == _local_sizes(str(local.joinpath(*single)))
    assert _local_sizes(str(local), "weights")[0] == 53_200  # weights/ and weightsextra/ left out, as before


def _report():
    model = {"recall@10": 0.1, "ndcg@10": 0.3, "recall@100": 0.5, "precision@10": 0.2, "params": 100,
             "bytes": 1000, "gzip_bytes": 500, "latency_ms_p50": 0.3}
    curves = {"teacher": {"loss": [3.0, 2.0], "val_loss": [3.1, 2.5]},
              "student_kd": {"loss": [2.0, 1.0], "val_ndcg@10": [0.1, 0.2]}}
    return report.build_report("toy", {"method": "temporal"}, {"total": 1.0}, {}, ["A"],
                               {"popularity": {**model, "ndcg@10": 0.2}, "student_kd": model}, curves)


def test_report_round_trip_on_gcs_writes_the_local_bytes(tmp_path, gcs_root):
    built = _report()
    assert report_files.write_report(gcs_root, built) == storage.join(gcs_root, "report", "report.json")
    assert report.read_report(gcs_root) == json.loads(json.dumps(built))
    report_files.write_report(str(tmp_path), built)
    names = ["report.json", "report.md", "summary.txt", "index.html", "quality_vs_bytes.png", "training_curves.png"]
    assert storage.listdir(storage.join(gcs_root, "report")) == sorted(os.listdir(tmp_path / "report")) == sorted(names)
    for name in names:
        assert storage.read_bytes(storage.join(gcs_root, "report", name)) == (tmp_path / "report" / name).read_bytes()
    with pytest.raises(FileNotFoundError):  # `recdistill report` turns this into its message
        report.read_report(storage.join(gcs_root, "nothing"))


def test_mlmd_json_files_are_read_from_gcs(gcs_root):
    storage.write_json(storage.join(gcs_root, "compressed", "compression.json"), {"config": {"a": 1}})
    assert mlmd_outputs.read_json_file(storage.join(gcs_root, "compressed"), "compression.json") == {"config": {"a": 1}}
    assert mlmd_outputs.read_json_file(storage.join(gcs_root, "compressed"), "absent.json") is None


def test_the_evaluator_writes_its_results_and_blessing_to_gcs(gcs_root):
    inputs = {}
    for name, kind, artifact_id in (("teacher", standard_artifacts.Model, 1), ("student", standard_artifacts.Model, 2),
                                    ("compressed", standard_artifacts.Model, 3),
                                    ("evaluation", standard_artifacts.ModelEvaluation, 4),
                                    ("blessing", standard_artifacts.ModelBlessing, 5)):
        inputs[name] = kind()
        inputs[name].uri, inputs[name].id = storage.join(gcs_root, name), artifact_id
    results = {"popularity": {"ndcg@10": 0.10}, "ease": None, "trending": None,
               "student_kd": {"ndcg@10": 0.21}, "tflite": {"ndcg@10": 0.05}}
    function = ModelEvaluator.EXECUTOR_SPEC.executor_class._FUNCTION
    with mock.patch.object(evaluate, "evaluate_all", return_value=(results, {}, None)), \
            mock.patch.object(evaluate, "write_curves", return_value={}):
        function(tolerance=0.02, margin=0.05, split_method="stratified", trending_days=7, ease_max_items=500,
                 code_digest="d", **inputs)
    written = storage.read_text(storage.join(gcs_root, "evaluation", artifacts.EVALUATION_FILE))
    assert written == json.dumps(results, indent=2)
    reason = inputs["blessing"].get_string_custom_property("reason")
    assert storage.read_text(storage.join(gcs_root, "blessing", "NOT_BLESSED")) == reason + "\n"


def test_curves_are_read_and_written_on_gcs(tmp_path, gcs_root):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / artifacts.TRAINING_FILE).write_text(json.dumps({"loss": [2.0], "val_loss": [2.5]}))
    student = storage.join(gcs_root, "student")
    storage.write_json(storage.join(student, artifacts.TRAINING_FILE),
                       {name: {"loss": [1.0], "val_ndcg@10": [0.2]} for name in evaluate.STUDENT_DIRS})
    path = storage.join(gcs_root, "evaluation", artifacts.CURVES_FILE)
    curves = evaluate.write_curves(str(teacher), student, path)
    assert storage.read_text(path) == json.dumps(curves, indent=2) and curves["teacher"]["val_loss"] == [2.5]


@pytest.fixture(scope="module")
def mobile(tmp_path_factory, gcs_emulator):
    """(local run dir, the same run on gs://, toy dataset): a tiny float TFLite model in mobile/1."""
    from tests.conftest import write_tiny_mobile_run

    run = tmp_path_factory.mktemp("run")
    _, toy, _ = write_tiny_mobile_run(run, newline="\r\n")
    remote = f"{gcs_emulator}/{uuid.uuid4().hex[:12]}/run"
    storage.copy_tree(str(run), remote)
    return str(run), remote, toy


def test_tflite_predict_reads_the_model_vocabularies_and_titles_from_gcs(mobile, capsys):
    local, remote, _ = mobile
    model = storage.join(remote, "mobile", "1")
    ranked = tflite_predict.recommend(model, "u4", ["i7", "i2"], k=5)
    assert ranked == tflite_predict.recommend(os.path.join(local, "mobile", "1"), "u4", ["i7", "i2"], k=5)
    assert tflite_predict.metadata(model)["history"] > 0
    assert catalog.default_items_csv(model) == storage.join(remote, "input", "items.csv")
    titles = catalog.load_titles(catalog.default_items_csv(model))
    assert titles == catalog.load_titles(os.path.join(local, "input", "items.csv")) and titles["i3"] == "Title i3"
    assert cli.main(["tflite-predict", "--model", model, "--user-id", "u4", "--history", "i7,i2", "--k", "2"]) == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert len(lines) == 2 and ranked[0][0] in lines[0] and f"Title {ranked[0][0]}" in lines[0]
    assert cli.main(["tflite-predict", "--model", storage.join(remote, "nothing"), "--user-id", "u1"]) == 2
    assert "no model.tflite" in capsys.readouterr().err


def test_tflite_evaluation_and_the_blessing_baseline_on_gcs(mobile, tmp_path):
    local, remote, toy = mobile
    local_file = os.path.join(local, "mobile", "1", signatures.TFLITE_FILE)
    remote_file = storage.join(remote, "mobile", "1", signatures.TFLITE_FILE)
    evaluator = split_evaluator(toy, protocol.TRAINING_SPLITS, "test")
    history = tflite_predict.metadata(os.path.dirname(local_file))["history"]
    latest = training.latest_histories(toy, history)
    on_gcs, on_disk = (evaluate.tflite_entry(f, evaluator, latest, 10) for f in (remote_file, local_file))
    on_gcs.pop("latency_ms_p50"), on_disk.pop("latency_ms_p50")
    assert on_gcs == on_disk and on_gcs["bytes"] == os.path.getsize(local_file)
    ndcg = evaluate.tflite_ndcg(local_file, toy)
    assert evaluate.tflite_ndcg(remote_file, toy) == ndcg
    # The last blessed model on gs:// (its mobile/ dir), the teacher's dataset here: same vocabularies.
    baseline = storage.join(remote, "baseline")
    storage.copy_tree(os.path.dirname(local_file), storage.join(baseline, artifacts.MOBILE_DIR))
    save_dataset(toy, str(tmp_path / artifacts.DATASET_FILE))
    served = blessing.served_on_test(baseline, str(tmp_path))
    assert (served.ndcg, served.how) == (ndcg, "on this test split")

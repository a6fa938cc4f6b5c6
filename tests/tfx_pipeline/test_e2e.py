"""End to end: the `recdistill` command on tiny synthetic data, the whole DAG with a tiny BERT."""

import glob
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from models import artifacts, feature_tables
from models.student import StudentConfig
from tests.conftest import recdistill  # the finished_run fixture is there too (session-scoped)
from tfx_pipeline.datasets.synth import write_synthetic

pytestmark = pytest.mark.e2e
LITERT_ONLY = """
import sys
sys.modules["tensorflow"] = None  # any import of TensorFlow now fails
import numpy as np
from ai_edge_litert.interpreter import Interpreter
runner = Interpreter(model_path=sys.argv[1]).get_signature_runner("serving_default")
history = runner.get_input_details()["history"]["shape"][1]
out = runner(user_index=np.array([1], np.int32), history=np.zeros([1, history], np.int32))
assert "tensorflow" not in sys.modules or sys.modules["tensorflow"] is None
print(out["item_indices"].shape[1])
"""


def test_run_through_transform_counts_bad_rows_by_reason(finished_run):
    base, synth, result = finished_run
    report = json.loads((base / "run" / "report" / "report.json").read_text())
    quality = report["data_quality"]["interactions.csv"]
    assert quality["rows"] == 2500
    assert quality["bad"] == synth["bad"] and len(synth["bad"]) == 4
    counts = report["split"]["counts"]
    assert sum(counts.values()) == 2500 - sum(synth["bad"].values())
    assert report["split"]["method"] == "temporal"
    assert set(report["wall_seconds"]) >= {"total", "InteractionsExampleGen", "Transform"}
    assert "[Transform] finished" in result.stdout and "bad_timestamp" in result.stdout
    assert "Traceback" not in result.stderr


def test_teacher_and_popularity_are_evaluated_and_scored(finished_run):
    base, _, _ = finished_run
    report = json.loads((base / "run" / "report" / "report.json").read_text())
    for name in ("popularity", "teacher", "student_no_kd", "student_kd"):
        entry = report["models"][name]
        assert 0 <= entry["ndcg@10"] <= 1 and 0 <= entry["recall@100"] <= 1 and entry["bytes"] > 0
        assert entry["params"] > 0 and entry["latency_ms_p50"] > 0
    (scored_dir,) = glob.glob(str(base / "run" / "pipeline_root" / "TeacherScorer" / "scored_examples" / "*"))
    files = glob.glob(os.path.join(scored_dir, "Split-train", "*.gz"))
    assert sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP")) == report["split"]["counts"]["train"]
    final = glob.glob(os.path.join(scored_dir, "Split-final", "*.gz"))  # the refit's rows: train and eval
    counts = report["split"]["counts"]
    assert sum(1 for _ in tf.data.TFRecordDataset(final, compression_type="GZIP")) == counts["train"] + counts["eval"]


def test_students_are_distilled_logged_and_plotted(finished_run):
    base, _, _ = finished_run
    run = base / "run"
    (model_dir,) = glob.glob(str(run / "pipeline_root" / "StudentTrainer" / "model" / "*"))
    summary = json.loads(open(os.path.join(model_dir, "training.json")).read())
    assert summary["student_kd"]["beta"] == StudentConfig().beta > 0 and summary["student_no_kd"]["beta"] == 0.0
    assert summary["student_no_kd"]["gamma"] == 0.0
    assert len(summary["student_kd"]["val_ndcg@10"]) == len(summary["student_kd"]["loss"]) >= 1
    for name in ("student_kd", "student_no_kd"):  # refit on train + eval for the epochs phase one chose
        refit = summary[name]["refit"]
        assert refit["epochs"] == summary[name]["best_epoch"] == len(refit["loss"])
    assert summary["refit_rows"] > summary["rows"]
    (run_dir,) = glob.glob(str(run / "pipeline_root" / "StudentTrainer" / "model_run" / "*"))
    for name in ("student_kd", "student_no_kd"):  # TensorBoard event files of both students
        assert glob.glob(os.path.join(run_dir, name, "**", "events.out.tfevents.*"), recursive=True)
    assert glob.glob(str(run / "pipeline_root" / "TeacherTrainer" / "model" / "*" / "logs" / "**" / "events.*"),
                     recursive=True)
    (teacher_dir,) = glob.glob(str(run / "pipeline_root" / "TeacherTrainer" / "model" / "*"))
    tables = feature_tables.load_from(teacher_dir)
    assert set(tables["item"]) >= {"item_genres_indices", "item_title_tokens"} and "user_age_bucket" in tables["user"]
    for side in ("user", "item"):
        for name, table in tables[side].items():
            assert not table[0].any() and table[1:].any() and table.max() < tables["size"][name], name
    report_dir = run / "report"
    for plot in ("quality_vs_bytes.png", "training_curves.png"):
        assert (report_dir / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (report_dir / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "int8 TFLite (phone)" in page
    markdown = (report_dir / "report.md").read_text()
    assert "| student_kd |" in markdown and "distillation: student_kd ndcg@10 =" in markdown


def test_the_compressed_student_is_evaluated_blessed_and_pushed(finished_run):
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow_serving.apis import prediction_log_pb2
    from tensorflow_serving.config import model_server_config_pb2

    base, _, _ = finished_run
    run = base / "run"
    report = json.loads((run / "report" / "report.json").read_text())
    for name in ("student_compressed", "tflite_float", "tflite"):
        entry = report["models"][name]
        assert 0 <= entry["ndcg@10"] <= 1 and entry["bytes"] > 0 and entry["latency_ms_p50"] > 0, name
    assert report["models"]["tflite"]["bytes"] < report["models"]["tflite_float"]["bytes"]
    assert report["blessed"] is True and report["compression"]["int8_zero_share"] > 0.15
    # The compressor's own check: settings tried in order until one kept min_kept of the KD student's
    # eval ndcg@10, or all three and the best exported.
    gentler = report["compression"]["gentler"]
    kept = [attempt["kept"] for attempt in gentler["attempts"]]
    assert 1 <= len(kept) <= 3 and all(0 <= share for share in kept) and gentler["min_kept"] == 0.99
    assert all(share < 0.99 for share in kept[:-1])
    assert gentler["used"] == (len(kept) - 1 if kept[-1] >= 0.99 else int(np.argmax(kept)))
    factorized = report["compression"]["factorization"]  # a user table trained as two factors stays two
    assert factorized is None or factorized["rank"] == gentler["attempts"][gentler["used"]]["rank"]
    assert report["pushed"] == {"serving": str(run / "serving" / "recdistill" / "1"), "mobile": str(run / "mobile" / "1")}

    config = text_format.Parse((run / "serving" / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    assert config.model_config_list.config[0].name == "recdistill"
    warmup = glob.glob(str(run / "serving" / "recdistill" / "1" / "assets.extra" / "tf_serving_warmup_requests"))
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(warmup)]
    assert logs and all(log.predict_log.request.model_spec.name == "recdistill" for log in logs)

    serve = tf.saved_model.load(str(run / "serving" / "recdistill" / "1")).signatures["serving_default"]
    users = (run / "mobile" / "1" / "user_vocab.txt").read_text().split("\n")
    history = serve.structured_input_signature[1]["history"].shape[1]
    out = serve(user_id=tf.constant([users[1], "no-such-user"]), history=tf.constant([[""] * history] * 2))
    assert out["item_ids"].shape[0] == 2 and out["scores"].dtype == tf.float32

    metadata = json.loads((run / "mobile" / "1" / "metadata.json").read_text())
    assert metadata["version"] == 1 and metadata["metrics"]["ndcg@10"] == report["models"]["tflite"]["ndcg@10"]
    lite = Interpreter(model_path=str(run / "mobile" / "1" / "model.tflite"))
    runner = lite.get_signature_runner("serving_default")
    result = runner(user_index=np.array([1], np.int32), history=np.zeros([1, metadata["history"]], np.int32))
    assert result["item_indices"].shape == (1, metadata["k"]) and 0 not in result["item_indices"]
    # A phone has LiteRT and no TensorFlow: the model must run where importing TensorFlow fails.
    standalone = subprocess.run([sys.executable, "-c", LITERT_ONLY, str(run / "mobile" / "1" / "model.tflite")],
                                capture_output=True, text=True, timeout=120)
    assert standalone.returncode == 0 and standalone.stdout.strip() == str(metadata["k"]), standalone.stderr[-2000:]


def test_the_examples_match_the_split_counts_and_transform_keeps_its_graph_alone(finished_run):
    """The teacher reads ExampleGen's examples through Transform's graph: Transform writes no
    transformed examples and no analyzer cache (nothing reads them; tfx_pipeline/pipeline.py)."""
    base, _, _ = finished_run
    report = json.loads((base / "run" / "report" / "report.json").read_text())
    (examples_dir,) = glob.glob(str(base / "run" / "pipeline_root" / "InteractionsExampleGen" / "examples" / "*"))
    for split, expected in report["split"]["counts"].items():
        files = glob.glob(os.path.join(examples_dir, f"Split-{split}", "*.gz"))
        count = sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))
        assert count == expected, split
    outputs = [name for name in os.listdir(base / "run" / "pipeline_root" / "Transform") if not name.startswith(".")]
    assert outputs == ["transform_graph"]  # (.system is TFX's own)


def test_rerun_is_answered_from_the_cache(finished_run):
    base, _, _ = finished_run
    result = recdistill("run", "--data", str(base / "data"), "--output", str(base / "run"), "--config", str(base / "tiny.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    finished = [line for line in result.stdout.splitlines() if "finished in" in line]
    # The resolver (never cached: it queries ML Metadata) now finds the first run's blessed model,
    # so the evaluator runs again with it as its baseline (as TFX's Evaluator does) and the
    # pushers get an identical model: no new version.
    rerun = {"LatestBlessedModelResolver", "ModelEvaluator", "ServingPusher", "MobilePusher"}
    assert len(finished) == 14
    assert all("(cached)" in line for line in finished if not any(f"[{c}]" in line for c in rerun))
    assert os.listdir(base / "run" / "serving" / "recdistill") == ["1"] and os.listdir(base / "run" / "mobile") == ["1"]


def test_too_many_bad_rows_stop_with_one_line_naming_file_and_line(tmp_path):
    write_synthetic(tmp_path / "data", users=50, items=40, interactions=1000, seed=2, bad_share=0.1)
    result = recdistill("run", "--data", str(tmp_path / "data"), "--output", str(tmp_path / "run"), "--until", "Transform")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "interactions.csv" in line and "line " in line and "100 of 1000 rows" in line


def test_schema_drift_is_stopped_by_the_validation_gate(finished_run, tmp_path):
    base, _, _ = finished_run
    (schema_file,) = glob.glob(str(base / "run" / "pipeline_root" / "SchemaGen" / "schema" / "*" / "schema.pbtxt"))
    schema = text_format.Parse(open(schema_file).read(), schema_pb2.Schema())
    rating = next(f for f in schema.feature if f.name == "rating")
    rating.float_domain.max = 2.0  # a curated schema that this data breaks: ratings go up to 5
    curated = tmp_path / "schema.pbtxt"
    curated.write_text(text_format.MessageToString(schema))
    (tmp_path / "config.yaml").write_text(f"schema_path: {curated}\n")
    result = recdistill("run", "--data", str(base / "data"), "--output", str(tmp_path / "run"),
                        "--config", str(tmp_path / "config.yaml"), "--until", "Transform")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "ValidationGate: ExampleValidator found" in result.stderr and "'rating'" in result.stderr
    assert "[Transform]" not in result.stdout


def test_report_command(finished_run, tmp_path):
    base, _, run = finished_run
    result = recdistill("report", str(base / "run"))
    assert result.returncode == 0 and "interactions.csv" in result.stdout and "Transform" in result.stdout
    # the console summary is kept beside report.json; the run ends naming its long log
    assert (base / "run" / "report" / "summary.txt").read_text() == result.stdout
    log = run.stdout.strip().splitlines()[-1]
    assert log == f"log: {base / 'run' / 'logs' / 'pipeline.log'}" and (base / "run" / "logs" / "pipeline.log").is_file()
    missing = recdistill("report", str(tmp_path))
    assert missing.returncode == 2 and "no report" in missing.stderr
    # what produced it: each input file's digest and rows (counted here by lines: the tiny data has no
    # quoted line breaks), the settings given, their digest, the times
    meta = json.loads((base / "run" / "report" / "report.json").read_text())["run"]
    for name in ("interactions.csv", "users.csv", "items.csv"):
        raw = (base / "data" / name).read_bytes()
        assert meta["inputs"][name] == {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw),
                                        "rows": len(raw.decode().splitlines()) - 1}, name
    assert meta["config"]["teacher"]["dim"] == 8 and meta["config"]["student"]["epochs"] == 2
    assert meta["seeds"]["teacher.seed"] == meta["config"]["teacher"]["seed"]
    assert meta["config_digest"] == hashlib.sha256(json.dumps(meta["config"], sort_keys=True).encode()).hexdigest()[:16]
    assert meta["versions"]["tensorflow"] == tf.__version__ and meta["started"] <= meta["ended"]
    assert f"run: recdistill {meta['recdistill']}" in result.stdout


def test_bad_arguments_exit_2_without_traceback(tmp_path, capsys):
    """In-process (a subprocess costs ~10 s of imports here): each answer is one line, exit 2."""
    from tfx_pipeline.cli import main

    def run(*args):
        code = main(["run", "--output", str(tmp_path / "o"), *args])
        return code, capsys.readouterr().err

    code, err = run("--data", str(tmp_path / "absent"))
    assert code == 2 and "absent" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "c.yaml").write_text("colour: blue\n")
    os.makedirs(tmp_path / "d")
    code, err = run("--data", str(tmp_path / "d"), "--config", str(tmp_path / "c.yaml"))
    assert code == 2 and "unknown setting" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "t.yaml").write_text("teacher: {dim: 10, heads: 3}\n")  # a bad teacher setting: one line
    code, err = run("--data", str(tmp_path / "d"), "--config", str(tmp_path / "t.yaml"))
    assert code == 2 and "multiple of heads" in err and len(err.strip().splitlines()) == 1
    code, err = run("--data", str(tmp_path / "d"))
    assert code == 2 and "interactions.csv" in err and "not found" in err and "Traceback" not in err


def _test_ndcg_by_hand(saved_model_dir, dataset, history):
    """ndcg@10 on the test split written out here (not models/retrieval_metrics.py): the model's
    "score" endpoint ranks every item for each test user; item 0 and the user's train and eval
    items are not ranked, equal scores go lower index first, relevance is binary."""
    import math

    from components.teacher import training

    seen, relevant = {}, {}
    for split, pairs in (("train", seen), ("eval", seen), ("test", relevant)):
        for user, item in zip(dataset.splits[split].user.tolist(), dataset.splits[split].item.tolist()):
            pairs.setdefault(user, set() if split == "test" else {0}).add(item)
    relevant.pop(0, None)  # an unknown user has nothing to rank by
    users = np.array(sorted(relevant), np.int64)
    latest = training.latest_histories(dataset, history)  # the model's input, as the bench gives it
    model = tf.saved_model.load(saved_model_dir)  # held: a temporary's variables would be freed mid-call
    scores = model.score(tf.constant(users), tf.constant(latest[users])).numpy()
    values = []
    for user, row in zip(users.tolist(), scores):
        ranking = sorted((i for i in range(len(row)) if i not in seen.get(user, {0})), key=lambda i: (-row[i], i))
        dcg = sum(1 / math.log2(rank + 2) for rank, item in enumerate(ranking[:10]) if item in relevant[user])
        values.append(dcg / sum(1 / math.log2(rank + 2) for rank in range(min(len(relevant[user]), 10))))
    return sum(values) / len(values)


def test_quality_bench_on_the_finished_run(finished_run, tmp_path, monkeypatch):
    """The bench's mechanics on the tiny run (its figures mean nothing at this size): every model,
    the grid (of one entry here), written as it goes; the teacher's and the KD student's figures are
    the test ndcg@10 of the models it trained, recomputed here from their rankings."""
    from components.teacher import training
    from models import interaction_data
    from tfx_pipeline import bench_quality

    base, _, _ = finished_run
    monkeypatch.setattr(bench_quality, "GRID", [{"learning_rate": 1e-2, "dim": 8}])
    out = tmp_path / "quality.json"
    bench_quality.main(["--run", str(base / "run"), "--seeds", "1", "--out", str(out)])
    results = json.loads(out.read_text())["run"]
    assert results["split"] == "temporal" and len(results["grid"]) == 1
    assert set(results["models"]) == {"teacher", "teacher_no_text", "teacher_no_bert", "student_kd", "student_no_kd",
                                      "student_no_kd_best"}
    for figures in results["models"].values():
        assert list(figures) == ["1"]
    teacher_dir = bench_quality.artifact_dir(str(base / "run"), artifacts.TEACHER_TRAINER)
    student_dir = bench_quality.artifact_dir(str(base / "run"), artifacts.STUDENT_TRAINER)
    dataset = interaction_data.load_dataset(os.path.join(teacher_dir, artifacts.DATASET_FILE))
    with open(os.path.join(student_dir, artifacts.TRAINING_FILE)) as f:
        histories = {"teacher": training.read_summary(teacher_dir)["config"]["history"],
                     "student_kd": json.load(f)["config"]["history"]}
    trained = tmp_path / "quality-run"  # the bench's models: <name>-<seed> beside --out
    for name, saved_model in (("teacher", trained / "teacher-1" / artifacts.SAVED_MODEL_DIR),
                              ("student_kd", trained / "student_kd-1")):
        expected = _test_ndcg_by_hand(str(saved_model), dataset, histories[name])
        assert results["models"][name]["1"] == pytest.approx(expected, abs=1e-4), name
    # --models retrains the models named and keeps the others' figures.
    stored = json.loads(out.read_text())
    stored["run"]["models"]["student_no_kd"]["1"] = 0.123
    stored["run"]["models"]["teacher_no_bert"]["1"] = 0.456
    out.write_text(json.dumps(stored))
    bench_quality.main(["--run", str(base / "run"), "--seeds", "1", "--out", str(out), "--models", "teacher_no_bert"])
    again = json.loads(out.read_text())["run"]["models"]
    assert again["student_no_kd"]["1"] == 0.123
    assert again["teacher_no_bert"]["1"] == results["models"]["teacher_no_bert"]["1"]  # retrained, reproduced


def test_quality_bench_table_by_hand():
    from tfx_pipeline.bench_quality import table

    results = {"ml": {"split": "stratified", "models": {"teacher": {"1": 0.5, "2": 0.3}, "student_kd": {"1": 0.25}}}}
    assert table(results).splitlines() == [
        "| model | ml (stratified) |", "|---|---:|",
        "| teacher | 0.4000 ± 0.1000 (n=2) |", "| student_kd | 0.2500 ± 0.0000 (n=1) |"]


def test_the_whole_dag_on_gcs_answers_as_the_local_run(finished_run, gcs_root):
    """Data, pipeline root and push root on gs:// (a storage emulator); ML Metadata and the report
    stay local. The models pushed to gs:// load from there and answer as the local run's do."""
    from serving import tflite_predict
    from models.foundation import storage

    base, _, _ = finished_run
    data, root, models = (storage.join(gcs_root, name) for name in ("data", "root", "models"))
    storage.copy_tree(str(base / "data"), data)
    # The teacher scores in-process here, with two Beam workers in the local run: its scores depend
    # only on the seed, the split and the row (components/teacher/scoring.py), so the runs still agree.
    (base / "tiny-gcs.yaml").write_text((base / "tiny.yaml").read_text() + "scoring_workers: 1\n")
    result = recdistill("run", "--data", data, "--output", str(base / "gcs_run"), "--config", str(base / "tiny-gcs.yaml"),
                        "--pipeline-root", root, "--push-root", models, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    local = json.loads((base / "run" / "report" / "report.json").read_text())
    remote = json.loads((base / "gcs_run" / "report" / "report.json").read_text())
    assert remote["split"]["counts"] == local["split"]["counts"]
    for name, entry in local["models"].items():
        assert remote["models"][name]["ndcg@10"] == pytest.approx(entry["ndcg@10"], abs=1e-4), name
    serving, mobile = storage.join(models, "serving", "recdistill", "1"), storage.join(models, "mobile", "1")
    assert remote["pushed"] == {"serving": serving, "mobile": mobile}
    assert not (base / "gcs_run" / "pipeline_root").exists() and "Transform" in storage.listdir(root)
    assert storage.exists(storage.join(models, "serving", "models.config"))

    users = storage.read_text(storage.join(mobile, "user_vocab.txt")).split("\n")[1:4]
    items = storage.read_text(storage.join(mobile, "item_vocab.txt")).split("\n")[1:3]
    histories = [[items[0]], items, []]
    remote_serve = tf.saved_model.load(serving).signatures["serving_default"]
    local_serve = tf.saved_model.load(str(base / "run" / "serving" / "recdistill" / "1")).signatures["serving_default"]
    width = remote_serve.structured_input_signature[1]["history"].shape[1]
    rows = tf.constant([h[:width] + [""] * (width - len(h[:width])) for h in histories])
    got, want = (f(user_id=tf.constant(users), history=rows) for f in (remote_serve, local_serve))
    assert got["item_ids"].numpy().tolist() == want["item_ids"].numpy().tolist()
    np.testing.assert_allclose(got["scores"].numpy(), want["scores"].numpy(), atol=1e-5)
    for user, history in zip(users, histories):
        assert tflite_predict.recommend(mobile, user, history, 5) == \
            tflite_predict.recommend(str(base / "run" / "mobile" / "1"), user, history, 5)

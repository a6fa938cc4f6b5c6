"""End to end, two spans apart: the whole DAG on spans 1-2, then again when span 3 arrives, twice:
first with a deliberately weakened candidate, which pushes nothing, then as configured. The
candidates' teacher, students and compression start from the blessed first run's (the weakened run
was not blessed, so the second candidate starts from the same model and TFX's cache answers its
teacher and students); the items and users that first appear in span 3 are ranked by the model
pushed after it (and not by the one before); `add-items` extends the warm-started run
(docs/spans.md)."""

import csv
import json
import re
import shutil

import numpy as np
import pytest

from models.foundation import signatures
from models.foundation.tflite_runner import TFLiteRanker
from models.vocabulary_file import read_vocabulary
from tests.conftest import TINY_CONFIG, recdistill
from tfx_pipeline.datasets.synth_spans import write_synthetic_spans

pytestmark = pytest.mark.e2e  # three runs of the tiny DAG, the last mostly from the cache (about 4 minutes here)

# Tiny spans measure large distances by chance alone: the bounds are opened so that the later runs
# warm-start (the decision itself is tested in test_spans_e2e.py). The teacher scores in-process
# here (scoring_workers: 1); the finished run (tests/conftest.py) scores with two Beam workers.
TINY_COMPRESSION = "compression: {prune_epochs: 1, ramp_epochs: 1, qat_epochs: 1}"
CONFIG = TINY_CONFIG.replace(
    "student: {dim: 8, history: 4, epochs: 2, batch_size: 256}",
    "student: {dim: 8, history: 4, epochs: 2, batch_size: 256, warm_epochs: 1}").replace(
    TINY_COMPRESSION,
    "compression: {prune_epochs: 2, ramp_epochs: 1, qat_epochs: 1, warm_prune_epochs: 1, warm_ramp_epochs: 1}") + """
spans: {window: 2}
drift: {categorical: {item_genres: 1.0, item_id: 1.0, user_id: 1.0}, numeric: {rating: 1.0}, min_ratio: 0.01,
        max_ratio: 100}
scoring_workers: 1
"""
assert "warm_epochs: 1" in CONFIG and "warm_prune_epochs: 1" in CONFIG
# The weakened candidate: its int8 model pruned to 99% zeros (the compressor's own check, which would
# prune it gentler, off: min_kept 0), and a gate that tolerates 2% and asks
# for 5% over the newest span's popularity and trending. On 62 test users the paired comparison with
# its own KD student can call a shortfall of 12% noise; a model of 99% zeros ranks as popularity does.
WEAKENED = CONFIG.replace("compression: {prune_epochs: 2,",
                          "compression: {target_sparsity: 0.99, dense_sparsity: 0.99, min_kept: 0, prune_epochs: 2,"
                          ).replace("bless_tolerance: 0.9", "bless_tolerance: 0.02").replace(
                          "bless_margin: -0.9", "bless_margin: 0.05")
assert WEAKENED.count("0.99") == 2 and "bless_tolerance: 0.02" in WEAKENED and "bless_margin: 0.05" in WEAKENED


def _ids(path, column):
    with open(path, newline="", encoding="utf-8") as f:
        return [row[column] for row in csv.DictReader(f)]


def _latest_mobile(root):
    versions = sorted(int(path.name) for path in (root / "mobile").iterdir() if path.name.isdigit())
    return root / "mobile" / str(versions[-1])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """(base, the configured second run, its report, (the weakened run, its report, (the mobile
    versions before it, after it)))."""
    base = tmp_path_factory.mktemp("warm")
    data, later = base / "data", base / "later"
    write_synthetic_spans(data, spans=3, users=120, items=80, interactions=2400, seed=3)
    shutil.move(str(data / "span-3"), str(later))
    (base / "c.yaml").write_text(CONFIG)
    (base / "weak.yaml").write_text(WEAKENED)
    run = ["run", "--data", str(data), "--output", str(base / "run")]

    def report():
        return json.loads((base / "run" / "report" / "report.json").read_text())

    first = recdistill(*run, "--config", str(base / "c.yaml"))
    assert first.returncode == 0, first.stderr[-3000:]
    before = _latest_mobile(base / "run")
    shutil.copytree(before, base / "served-before")
    shutil.move(str(later), str(data / "span-3"))
    versions = sorted((base / "run" / "mobile").iterdir())
    weakened = recdistill(*run, "--config", str(base / "weak.yaml"))
    assert weakened.returncode == 0, weakened.stderr[-3000:]
    weakened_report, after = report(), sorted((base / "run" / "mobile").iterdir())
    second = recdistill(*run, "--config", str(base / "c.yaml"))
    assert second.returncode == 0, second.stderr[-3000:]
    return base, second, report(), (weakened, weakened_report, (versions, after))


def test_the_second_run_starts_every_model_from_the_blessed_first(two_runs):
    _, second, report, _ = two_runs
    assert report["drift"]["decision"] == "warm", report["drift"]["reason"]
    started = report["warm_start"]
    assert started["teacher"]["from"] and started["teacher"]["items_kept"] > 0
    for name in ("student_kd", "student_no_kd"):
        student = started["students"][name]
        assert student["started"] == "warm" and student["items_kept"] > 0 and student["users_kept"] > 0
        assert student["items_new"] > 0 and student["users_new"] > 0  # span 3's own
    # no phase one (teacher.warm_start.phase_one: false): one training on train + eval each
    assert started["teacher"]["phase_one"] is False and started["students"]["student_kd"]["phase_one"] is False
    assert started["students"]["student_kd"]["epochs"] == 1  # student.warm_epochs
    assert started["compression"] == {"started": "warm", "prune_epochs": 1, "qat_epochs": 1}
    assert "students: warm start (" in second.stdout and "compression: warm: 1 pruning and 1 QAT epochs" in second.stdout
    assert "; no phase one: 1 epoch on train and eval" in second.stdout
    assert report["pushed"]["mobile"], report["blessing"]


def test_the_recency_prior_of_the_warm_run_is_picked_on_the_served_models_backtest(two_runs):
    base, _, _, _ = two_runs
    trained = sorted((base / "run" / "pipeline_root" / "StudentTrainer" / "model").glob("*/training.json"),
                     key=lambda path: int(path.parent.name))[-1]  # span 3's students
    for name in ("student_kd", "student_no_kd"):
        prior = json.loads(trained.read_text())[name]["recency_prior"]
        # span 3's users: those of spans 1-2 come back, the others are new (write_synthetic_spans)
        assert prior["backtest"]["known"]["users"] > 0 and prior["backtest"]["cold"]["users"] > 0
        for key, group in (("weight", "known"), ("cold_weight", "cold")):
            picked = prior["backtest"][group]
            if prior["picked_on"][key] == "backtest":
                assert prior[key] == picked["weight"] and picked["users"] >= 20
                assert picked["ndcg@10"][str(picked["best"])] == max(picked["ndcg@10"].values())
                # the best, where it beats the largest weight beyond the noise of six comparisons (Bonferroni,
                # one-sided 5%: 2.394 standard errors); else the largest
                assert picked["paired"]["z"] == 2.394 and len(picked["ndcg@10"]) == 7
                assert picked["weight"] == (picked["best"] if picked["paired"]["mean"] > 2.394 * picked["paired"][
                    "standard_error"] else max(float(w) for w in picked["ndcg@10"]))
            else:
                assert picked["users"] < 20 and "weight" not in picked


def test_the_pushed_prior_counts_to_the_push_and_the_test_figures_count_to_the_tests_start(two_runs):
    base, _, report, _ = two_runs
    from components.evaluation import cold as cold_lib
    from components.evaluation.protocol import TRAINING_SPLITS
    from components.teacher import training
    from models.interaction_data import load_dataset
    from models.retrieval_metrics import split_evaluator
    import tensorflow as tf

    student = max((base / "run" / "pipeline_root" / "StudentTrainer" / "model").iterdir(), key=lambda p: int(p.name))
    dataset = load_dataset(str(student / "dataset.npz"))
    summary = json.loads((student / "training.json").read_text())
    picked = summary["student_kd"]["recency_prior"]
    exported = np.load(student / "Format-Serving" / "recency_prior.npy")

    def by_hand(splits):  # log(1 + interactions in the `days` before the latest one), numpy alone
        items = np.concatenate([dataset.splits[s].item for s in splits])
        stamps = np.concatenate([dataset.splits[s].timestamp for s in splits])
        recent = stamps >= stamps.max() - picked["days"] * 86400
        prior = np.log1p(np.bincount(items[recent], minlength=dataset.num_items))
        return np.stack([picked["weight"] * prior, picked["cold_weight"] * prior])

    np.testing.assert_allclose(exported, by_hand(("train", "eval", "test")), rtol=1e-5, atol=1e-5)
    at_start = by_hand(("train", "eval"))
    assert not np.allclose(exported, at_start)  # the test's week moved it
    assert picked["counted_to"]["exported"] > picked["counted_to"]["test_figures"]
    # the report's student_kd figure is the model's ranking with the prior counted to the test's start
    model = tf.saved_model.load(str(student / "Format-Serving"))
    latest = training.latest_histories(dataset, summary["config"]["history"])

    def at_test_start(users):
        scores = model.score(tf.constant(users, tf.int64), tf.constant(latest[users])).numpy()
        cold = (users == 0) & ~(latest[users] > 0).any(axis=1)
        return scores - exported[cold.astype(int)] + at_start[cold.astype(int)]

    evaluator = cold_lib.evaluator_for(dataset, split_evaluator(dataset, TRAINING_SPLITS, "test"))
    assert report["models"]["student_kd"]["ndcg@10"] == pytest.approx(
        evaluator.evaluate(at_test_start, ks=(10,))["ndcg@10"], abs=1e-4)
    # and the compressor records the prior the pushed models add (a later run's served model)
    compressed = max((base / "run" / "pipeline_root" / "StudentCompressor" / "model").iterdir(),
                     key=lambda p: int(p.name))
    recorded = json.loads((compressed / "compression.json").read_text())["recency_prior"]
    assert recorded == {key: picked[key] for key in ("weight", "cold_weight", "days", "counted_to")}


def test_the_warm_compression_starts_at_the_setting_the_served_model_shipped(two_runs):
    base, _, report, _ = two_runs
    runs = sorted((base / "run" / "pipeline_root" / "StudentCompressor" / "model").glob("*/compression.json"),
                  key=lambda path: int(path.parent.name))
    served = json.loads(runs[0].read_text())["gentler"]  # span 2's, the model served when span 3 came
    shipped = served["attempts"][served["used"]]
    warm = report["compression"]["gentler"]
    setting = ("rank", "target_sparsity", "dense_sparsity")
    assert [warm["attempts"][0][key] for key in setting] == [shipped[key] for key in setting]
    assert warm["started_at"] == served.get("started_at", 0) + served["used"]


def test_items_and_users_new_in_span_3_are_ranked_by_the_model_pushed_after_it(two_runs):
    base, _, _, _ = two_runs
    span = base / "data" / "span-3"
    new_items, new_users = _ids(span / "items.csv", "item_id"), _ids(span / "users.csv", "user_id")
    assert new_items and new_users
    before = base / "served-before"
    assert not set(new_items) & set(read_vocabulary(str(before / signatures.ITEM_VOCAB)))
    mobile = _latest_mobile(base / "run")
    items = read_vocabulary(str(mobile / signatures.ITEM_VOCAB))
    users = read_vocabulary(str(mobile / signatures.USER_VOCAB))
    index = {item: i for i, item in enumerate(items)}
    assert set(new_items) <= set(items)  # the catalog: every item of every span
    # the user index: users with interactions in the training share (the rest of span 3's are the
    # newest span's held-out test users, ranked from their histories as unknown users)
    trained_new_users = set(new_users) & set(users)
    assert len(trained_new_users) >= len(new_users) // 2, (len(trained_new_users), len(new_users))
    history = json.loads((mobile / signatures.METADATA).read_text())["history"]
    ranker = TFLiteRanker(str(mobile / signatures.TFLITE_FILE), full_scores=True)
    # a new user, by its own row, with a history of new items: every new item has a finite score,
    # and its ranking is not the unknown user's
    counts = {}
    for user in _ids(span / "interactions.csv", "user_id"):
        counts[user] = counts.get(user, 0) + 1
    newcomer = users.index(max(trained_new_users, key=lambda user: counts.get(user, 0)))
    recent = np.zeros(history, np.int64)
    recent[:min(history, len(new_items))] = [index[i] for i in new_items[:history]]
    scores = ranker.all_scores(newcomer, recent)
    assert np.isfinite(scores[[index[i] for i in new_items]]).all()
    ranked, _ = ranker.rank(newcomer, recent)
    unknown, _ = ranker.rank(0, recent)
    assert not np.array_equal(ranked, unknown)
    assert set(ranked.tolist()) & {index[i] for i in new_items}  # the full ranking holds them


def test_add_items_extends_the_warm_started_run(two_runs, tmp_path):
    base, _, _, _ = two_runs
    root = tmp_path / "push"
    for name in ("serving", "mobile"):
        shutil.copytree(base / "run" / name, root / name)
    source = next(csv.DictReader(open(base / "data" / "span-1" / "items.csv", newline="", encoding="utf-8")))
    items_csv = tmp_path / "NEW.csv"
    columns = list(source)
    with open(items_csv, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerow({**source, "item_id": "brand-new"})
    added = recdistill("add-items", "--run", str(base / "run"), "--items", str(items_csv), "--push-root", str(root))
    assert added.returncode == 0, added.stderr[-3000:]
    mobile = _latest_mobile(root)
    assert "brand-new" in read_vocabulary(str(mobile / signatures.ITEM_VOCAB))
    assert mobile != root / "mobile" / _latest_mobile(base / "run").name


def test_a_weakened_candidate_on_the_same_spans_pushes_nothing_and_the_report_says_why(two_runs):
    """The weakened candidate's int8 model is pruned to 99% zeros; the gate compares it on the newest
    span's test with its own student and the served model, and the served model stays."""
    _, _, _, (run, report, (before, after)) = two_runs
    assert not report["blessed"] and report["pushed"] == {"serving": None, "mobile": None}
    assert report["blessing"]["reason"].startswith("tflite ndcg@10 ")
    assert f"not blessed: {report['blessing']['reason']}" in run.stdout
    assert after == before and (before[0].parent / "1").is_dir()  # the first run's model stays served


def test_the_configured_candidate_after_the_weakened_one_reuses_its_teacher_and_students(two_runs):
    """Both candidates start from the first run's blessed model: TFX's cache answers the second's
    teacher, scorer and students, and only compression and what follows run again."""
    _, second, _, _ = two_runs
    def cached(component):  # its seconds as printed: 0.1 on a busy machine
        return re.search(rf"^\[{component}\] finished in [0-9.]+ s \(cached\)$", second.stdout, re.M) is not None

    for component in ("TeacherTrainer", "TeacherScorer", "StudentTrainer"):
        assert cached(component), component
    assert not cached("StudentCompressor")

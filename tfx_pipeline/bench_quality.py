"""Benchmark (not a test): the quality bench of the teacher, its ablations and the students.

    make bench-quality   (= .venv/bin/python -m tfx_pipeline.bench_quality --movielens runs/bench)
    .venv/bin/python -m tfx_pipeline.bench_quality --run DIR [--run DIR ...]
        [--seeds 42,43,44] [--out runs/bench/quality.json] [--models teacher,student_kd,...]
        [--teacher '{"learning_rate": 0.001}']

--movielens DIR first runs the pipeline on MovieLens-100K twice (skipped where a run is there):
the built-in split (DIR/ms, as `make run`) and the same data given as a user's own, with the
per-user temporal split (DIR/temporal); then benches both. Each --run is a finished `recdistill
run` output; its TeacherTrainer artifact holds the dataset
(index spaces and splits) and the Transform feature tables, so every model here sees exactly the
pipeline's data and split. For every seed it trains, with the run's own settings and that seed:
    teacher          the pipeline's teacher (EASE wide part + BERT encoder over the item sequence)
    teacher_no_text  the same without the pretrained MiniLM text in the item vectors
    teacher_no_bert  the wide part alone (no BERT encoder)
    student_kd       distilled from `teacher` (TeacherScorer's code on Beam's local runner)
    student_no_kd    its twin on the hard loss alone (same seed, same settings)
    student_no_kd_best  the best no-KD student of GRID, picked once by eval ndcg@10 with the first
                     seed (phase one only), then trained (with the refit) for every seed
and ranks the test split as the evaluator does (models/retrieval_metrics.py). It prints a table
of test ndcg@10, mean and standard deviation over the seeds, and writes every figure to --out
after each model (a long bench leaves what it finished). --models retrains only the models named
and keeps the others' figures already in --out (a new teacher does not change the no-KD students,
which never read its labels: they need not be trained again). --teacher overrides the run's
teacher settings (a JSON mapping; a nested section, e.g. {"cloze": {"gate": 1}}, merged into the
run's) for every teacher the bench trains.
"""

import argparse
import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
from models import artifacts  # noqa: E402

# The no-KD students' tuning grid: the budget the KD student got (its own settings) and more.
GRID = [{"hard_negatives": negatives, "learning_rate": rate, "dim": dim}
        for negatives in ("full", "in_batch") for rate in (1e-3, 3e-3) for dim in (32, 64)]
TEACHERS = {"teacher": {}, "teacher_no_text": {"use_text": False}, "teacher_no_bert": {"use_bert": False}}
STUDENTS = ["student_kd", "student_no_kd", "student_no_kd_best"]


def artifact_dir(run: str, component: str) -> str:
    """The newest artifact of a component in a run's pipeline root (…/<Component>/model/<id>)."""
    found = glob.glob(os.path.join(run, "pipeline_root", component, "model", "*", artifacts.TRAINING_FILE))
    if not found:
        raise SystemExit(f"{run}: no {component} model (run `recdistill run` first)")
    return os.path.dirname(max(found, key=lambda p: int(p.split(os.sep)[-2])))


def test_ndcg(path: str, endpoint: str, latest: np.ndarray, evaluator, difference=None) -> float:
    """difference: a student's recency prior correction to the test's start (components/evaluation/test_start_prior.py)."""
    import tensorflow as tf

    from components.evaluation import test_start_prior

    model = tf.saved_model.load(path)
    score = getattr(model, endpoint)
    return round(float(evaluator.evaluate(test_start_prior.corrected(
        lambda users: score(tf.constant(users, tf.int64), tf.constant(latest[users])).numpy(), difference, latest),
        ks=(10,))["ndcg@10"]), 4)


class Bench:
    def __init__(self, run: str, out_dir: str):
        from components.teacher import training
        from models import feature_tables, interaction_data
        from models.retrieval_metrics import split_evaluator

        self.run, self.out_dir = run, out_dir
        self.teacher_dir = artifact_dir(run, artifacts.TEACHER_TRAINER)
        student_dir = artifact_dir(run, artifacts.STUDENT_TRAINER)
        self.student_summary = _read(os.path.join(student_dir, artifacts.TRAINING_FILE))
        self.teacher_summary = training.read_summary(self.teacher_dir)
        self.dataset = interaction_data.load_dataset(os.path.join(self.teacher_dir, artifacts.DATASET_FILE))
        self.tables = feature_tables.load_from(self.teacher_dir)
        self.test = split_evaluator(self.dataset, ["train", "eval"], "test")
        self.valid = split_evaluator(self.dataset, ["train"], "eval")
        self.item_text = None
        self.split = _read(os.path.join(run, "report", "report.json"))["split"]["method"]

    def teacher(self, name: str, seed: int) -> (str, float):
        from components.teacher import training

        out = os.path.join(self.out_dir, f"{name}-{seed}")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        shutil.copy(os.path.join(self.teacher_dir, artifacts.FEATURES_FILE), out)
        config = {**self.teacher_summary["config"], **TEACHERS[name], "seed": seed}
        settings = {"encoder": self.teacher_summary["encoder"], "teacher": config}
        if self.item_text is None:
            self.item_text = training.encoder_for(settings, self.dataset).encode(self.dataset.item_texts)
        training.fit_and_export(self.dataset, out, settings, item_text=self.item_text)
        latest = training.latest_histories(self.dataset, config["history"])
        return out, test_ndcg(os.path.join(out, artifacts.SAVED_MODEL_DIR), "score", latest, self.test)

    def score(self, teacher_dir: str, seed: int) -> List[str]:
        import apache_beam as beam

        from components.teacher import scoring

        out = teacher_dir + "-scored"
        shutil.rmtree(out, ignore_errors=True)
        with beam.Pipeline() as p:
            scoring.score_training_rows(p, teacher_dir, out, negatives=50, seed=seed)
        return [os.path.join(out, f"Split-{s}", "*") for s in scoring.SCORED_SPLITS]

    def student(self, files: List[str], overrides: Dict, seed: int, name: str, phase_one_only=False) -> Dict:
        from components.evaluation import test_start_prior
        from components.student import distill
        from components.teacher import training
        from models import student

        config = student.StudentConfig(**{**self.student_summary["config"], **overrides, "seed": seed})
        if phase_one_only:
            config = dataclasses.replace(config, refit=False)
        data = distill.training_rows(files, config, self.dataset)
        out = os.path.join(self.out_dir, f"{name}-{seed}")
        curves = distill.train_student(config, self.dataset, self.tables, data, self.valid, out)
        latest = training.latest_histories(self.dataset, config.history)
        difference = test_start_prior.correction(out, curves.get("recency_prior"), self.dataset)  # split in time
        return {"test": test_ndcg(out, "score", latest, self.test, difference), "val": max(curves["val_ndcg@10"]),
                "params": curves["params"]}


def movielens_runs(root: str) -> List[str]:
    """DIR/ms and DIR/temporal: MovieLens-100K through `recdistill run`, both splits."""
    from tfx_pipeline.datasets.movielens import prepare_movielens_100k

    data = str(prepare_movielens_100k(os.path.join(root, "movielens-100k-data")))
    runs = []
    for name, source in (("ms", "movielens-100k"), ("temporal", data)):
        out = os.path.join(root, name)
        if not os.path.exists(os.path.join(out, "report", "report.json")):
            print(f"recdistill run --data {source} --output {out}", flush=True)
            result = subprocess.run([sys.executable, "-m", "tfx_pipeline.cli", "run", "--data", source, "--output", out])
            if result.returncode != 0:
                raise SystemExit(f"the run of {source} failed (exit {result.returncode})")
        runs.append(out)
    return runs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], help="a finished recdistill run's output")
    parser.add_argument("--movielens", help="run MovieLens-100K (both splits) into this directory, then bench it")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--out", default="runs/bench/quality.json")
    parser.add_argument("--teacher", default="{}", help="teacher settings over the run's (a JSON mapping)")
    parser.add_argument("--models", default=",".join(list(TEACHERS) + STUDENTS),
                        help="the models to (re)train; the others' figures in --out are kept")
    args = parser.parse_args(argv)
    wanted = set(args.models.split(","))
    unknown = wanted - set(TEACHERS) - set(STUDENTS)
    if unknown:
        parser.error(f"unknown model(s): {', '.join(sorted(unknown))}")
    if args.movielens:
        args.run += movielens_runs(args.movielens)
    if not args.run:
        parser.error("give --run DIR or --movielens DIR")
    seeds = [int(s) for s in args.seeds.split(",")]
    results = _read(args.out) if os.path.exists(args.out) else {}
    for run in args.run:
        key = os.path.basename(os.path.normpath(run))
        bench = Bench(run, os.path.join(os.path.dirname(args.out) or ".", "quality-" + key))
        config = bench.teacher_summary["config"]
        for name, value in json.loads(args.teacher).items():  # a nested section ({"cloze": {...}}) is merged
            nested = isinstance(value, dict) and isinstance(config.get(name), dict)
            config[name] = {**config[name], **value} if nested else value
        figures = results.setdefault(key, {"split": bench.split, "models": {}, "grid": {}})
        save = lambda: _write(args.out, results)  # noqa: E731
        for seed in seeds:
            files = None
            for name in TEACHERS:
                if name not in wanted and not (name == "teacher" and wanted & set(STUDENTS)):
                    continue
                started = time.monotonic()
                teacher_dir, ndcg = bench.teacher(name, seed)
                figures["models"].setdefault(name, {})[str(seed)] = ndcg
                print(f"{key} seed {seed} {name}: test ndcg@10 {ndcg} ({time.monotonic() - started:.0f} s)", flush=True)
                if name == "teacher":
                    files = bench.score(teacher_dir, seed)
                save()
            if not figures["grid"] and "student_no_kd_best" in wanted:  # the no-KD grid, once, on eval
                for overrides in GRID:
                    result = bench.student(files, {**overrides, "beta": 0.0, "gamma": 0.0}, seed, "grid",
                                           phase_one_only=True)
                    figures["grid"][json.dumps(overrides, sort_keys=True)] = result["val"]
                    print(f"{key} grid {overrides}: eval ndcg@10 {result['val']}", flush=True)
                save()
            best = json.loads(max(figures["grid"], key=figures["grid"].get)) if figures["grid"] else {}
            for name, overrides in (("student_kd", {}), ("student_no_kd", {"beta": 0.0, "gamma": 0.0}),
                                    ("student_no_kd_best", {**best, "beta": 0.0, "gamma": 0.0})):
                if name not in wanted:
                    continue
                result = bench.student(files, overrides, seed, name)
                figures["models"].setdefault(name, {})[str(seed)] = result["test"]
                print(f"{key} seed {seed} {name}: test ndcg@10 {result['test']}", flush=True)
                save()
    print(table(results))


def table(results: Dict) -> str:
    """Markdown: one row per model, one column per run (mean ± standard deviation over seeds)."""
    runs = list(results)
    names = list(dict.fromkeys(n for r in runs for n in results[r]["models"]))
    lines = ["| model | " + " | ".join(f"{r} ({results[r]['split']})" for r in runs) + " |",
             "|---|" + "---:|" * len(runs)]
    for name in names:
        cells = []
        for r in runs:
            values = list(results[r]["models"].get(name, {}).values())
            cells.append(f"{np.mean(values):.4f} ± {np.std(values):.4f} (n={len(values)})" if values else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _read(path: str) -> Dict:
    with open(path) as f:
        return json.load(f)


def _write(path: str, value: Dict) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=2)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()

"""ModelEvaluator's wiring: settings reach the evaluation, baselines and blessing reach ML Metadata."""

import json
from unittest import mock

from tfx.types import standard_artifacts

from components.evaluation import evaluate
from components.evaluation.baselines import BaselineSettings
from components.evaluation.component import ModelEvaluator

EVALUATE = ModelEvaluator.EXECUTOR_SPEC.executor_class._FUNCTION  # the component's Python function


def _artifact(kind, tmp_path, name, artifact_id):
    artifact = kind()
    artifact.uri = str(tmp_path / name)
    (tmp_path / name).mkdir()
    artifact.id = artifact_id
    return artifact


def _run(tmp_path, results, margin):
    baselines = {"ease": {"l2": 500.0, "grid": {"500": 0.3}, "skipped": None, "seconds": 1.0},
                 "trending": {"days": 7, "window_start": 100, "skipped": None}}
    evaluation = _artifact(standard_artifacts.ModelEvaluation, tmp_path, "evaluation", 4)
    blessing = _artifact(standard_artifacts.ModelBlessing, tmp_path, "blessing", 5)
    models = [_artifact(standard_artifacts.Model, tmp_path, name, i) for i, name in enumerate(("t", "s", "c"), 1)]
    with mock.patch.object(evaluate, "evaluate_all", return_value=(results, baselines, None)) as evaluate_all, \
            mock.patch.object(evaluate, "write_curves", return_value={}):
        EVALUATE(teacher=models[0], student=models[1], compressed=models[2], tolerance=0.02, margin=margin,
                 split_method="temporal", trending_days=7, ease_max_items=500, code_digest="d",
                 evaluation=evaluation, blessing=blessing)
    assert evaluate_all.call_args.args[3] == BaselineSettings(split_method="temporal", trending_days=7,
                                                              ease_max_items=500)
    assert json.loads(evaluation.get_string_custom_property("baselines")) == baselines
    return json.loads(evaluation.get_string_custom_property("blessing")), blessing


def test_the_margin_over_trending_decides_the_blessing(tmp_path):
    results = {"popularity": {"ndcg@10": 0.10}, "ease": None, "trending": {"ndcg@10": 0.20},
               "student_kd": {"ndcg@10": 0.21}, "tflite": {"ndcg@10": 0.21}}
    decision, blessing = _run(tmp_path, results, margin=0.1)
    assert not decision["blessed"] and blessing.get_int_custom_property("blessed") == 0
    assert blessing.get_string_custom_property("reason") == "tflite ndcg@10 0.2100 < 1.10 x trending 0.2000 = 0.2200"
    assert (tmp_path / "blessing" / "NOT_BLESSED").exists()


def test_a_model_beating_the_baselines_is_blessed(tmp_path):
    results = {"popularity": {"ndcg@10": 0.10}, "ease": None, "trending": {"ndcg@10": 0.20},
               "student_kd": {"ndcg@10": 0.21}, "tflite": {"ndcg@10": 0.21}}
    decision, blessing = _run(tmp_path, results, margin=0.05)
    assert decision["blessed"] and decision["non_personalized_ndcg@10"] == {"popularity": 0.10, "trending": 0.20}
    assert blessing.get_int_custom_property("current_model_id") == 3

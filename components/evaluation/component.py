"""ModelEvaluator: every model side by side on the test split, and the push gate.

The baselines (popularity, ease, trending: components/evaluation/baselines.py) are evaluated in
every run beside the learned models; split_method says whether trending applies (time-ordered
splits only), trending_days is its window and ease_max_items the largest catalog EASE is fit on.

The blessing (a ModelBlessing, as TFX's Evaluator writes it: custom properties `blessed` 0/1 and
`current_model_id`, so that LatestBlessedModelStrategy finds the last blessed model) says whether
the compressed student may be pushed: its int8 TFLite ndcg@10 must be at least (1 + margin) x
the best of popularity and trending, at least (1 - tolerance) x student_kd's, and at least
(1 - tolerance) x the last blessed model's (`baseline`, re-evaluated on this run's test split;
components/evaluation/blessing.py).
"""

import json
import os

from tfx.dsl.component.experimental import annotations, decorators  # what tfx.v1.dsl.components names
from tfx.types import standard_artifacts

from components.evaluation import blessing as blessing_lib
from components.evaluation import evaluate
from components.evaluation.baselines import BaselineSettings
from components.evaluation.protocol import take_per_user
from models import artifacts
from models.foundation import storage



@decorators.component
def ModelEvaluator(  # noqa: N802 (TFX names components like classes)
    teacher: annotations.InputArtifact[standard_artifacts.Model],
    student: annotations.InputArtifact[standard_artifacts.Model],
    compressed: annotations.InputArtifact[standard_artifacts.Model],
    tolerance: annotations.Parameter[float],
    margin: annotations.Parameter[float],
    split_method: annotations.Parameter[str],
    trending_days: annotations.Parameter[int],
    ease_max_items: annotations.Parameter[int],
    code_digest: annotations.Parameter[str],
    evaluation: annotations.OutputArtifact[standard_artifacts.ModelEvaluation],
    blessing: annotations.OutputArtifact[standard_artifacts.ModelBlessing],
    baseline: annotations.InputArtifact[standard_artifacts.Model] = None,
    baseline_blessing: annotations.InputArtifact[standard_artifacts.ModelBlessing] = None,
) -> None:
    """code_digest is not read: it makes TFX's cache miss when the evaluation code changes.
    baseline_blessing is not read either: the resolver pairs it with `baseline`, which it proves
    blessed; the baseline is evaluated again on this run's test split (blessing.py)."""
    del code_digest, baseline_blessing
    settings = BaselineSettings(split_method=split_method, trending_days=trending_days, ease_max_items=ease_max_items)
    results, baselines, cold_items = evaluate.evaluate_all(teacher.uri, student.uri, compressed.uri, settings)
    per_user = take_per_user(results)  # each test user's ndcg@10 of student_kd and tflite, for the gate alone
    storage.write_text(os.path.join(evaluation.uri, artifacts.EVALUATION_FILE), json.dumps(results, indent=2))
    curves = evaluate.write_curves(teacher.uri, student.uri, os.path.join(evaluation.uri, artifacts.CURVES_FILE))
    evaluation.set_string_custom_property("models", json.dumps(results, sort_keys=True))
    evaluation.set_string_custom_property("baselines", json.dumps(baselines, sort_keys=True))
    evaluation.set_string_custom_property("cold_items", json.dumps(cold_items, sort_keys=True))
    evaluation.set_string_custom_property("curves", json.dumps(curves, sort_keys=True))

    decision = blessing_lib.decide(results, tolerance, margin, baseline.uri if baseline is not None else None,
                                   teacher.uri, same_model=baseline is not None and baseline.id == compressed.id,
                                   per_user=per_user)
    blessing.set_int_custom_property("blessed", int(decision["blessed"]))
    blessing.set_int_custom_property("current_model_id", compressed.id)
    blessing.set_string_custom_property("current_model", compressed.uri)
    blessing.set_string_custom_property("reason", decision["reason"])
    blessing.set_string_custom_property("metrics", json.dumps(results.get("tflite")))
    evaluation.set_string_custom_property("blessing", json.dumps(decision, sort_keys=True))
    storage.write_text(os.path.join(blessing.uri, "BLESSED" if decision["blessed"] else "NOT_BLESSED"),
                       decision["reason"] + "\n")
    print(f"recdistill: {'blessed' if decision['blessed'] else 'not blessed'}: {decision['reason']}")

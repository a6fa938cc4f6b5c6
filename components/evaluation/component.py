"""ModelEvaluator: every model side by side on the test split (components/evaluation/evaluate.py)."""

import json
import os

from tfx import v1 as tfx
from tfx.types import standard_artifacts

from components.evaluation import evaluate

RESULTS_FILE = "models.json"


@tfx.dsl.components.component
def ModelEvaluator(  # noqa: N802 (TFX names components like classes)
    teacher: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    student: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    code_digest: tfx.dsl.components.Parameter[str],
    evaluation: tfx.dsl.components.OutputArtifact[standard_artifacts.ModelEvaluation],
) -> None:
    """code_digest is not read: it makes TFX's cache miss when the evaluation code changes."""
    del code_digest
    results = evaluate.evaluate_all(teacher.uri, student.uri)
    with open(os.path.join(evaluation.uri, RESULTS_FILE), "w") as f:
        json.dump(results, f, indent=2)
    curves = evaluate.write_curves(teacher.uri, student.uri, os.path.join(evaluation.uri, evaluate.CURVES_FILE))
    evaluation.set_string_custom_property("models", json.dumps(results, sort_keys=True))
    evaluation.set_string_custom_property("curves", json.dumps(curves, sort_keys=True))

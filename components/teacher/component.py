"""TeacherTrainer (the BERT teacher on ExampleGen's examples, in Transform's index space) and
TeacherScorer (its soft labels for every training interaction, on Beam)."""

import json

import apache_beam as beam
from tfx.dsl.component.experimental import annotations, decorators  # what tfx.v1.dsl.components names
from tfx.types import artifact_utils, standard_artifacts

from components.drift.component import DriftReport
from components.teacher import scoring, training
from models import settings_codec


@decorators.component
def TeacherTrainer(  # noqa: N802 (TFX names components like classes)
    examples: annotations.InputArtifact[standard_artifacts.Examples],
    catalog: annotations.InputArtifact[standard_artifacts.Examples],
    transform_graph: annotations.InputArtifact[standard_artifacts.TransformGraph],
    settings_json: annotations.Parameter[str],
    code_digest: annotations.Parameter[str],
    model: annotations.OutputArtifact[standard_artifacts.Model],
    warm_from: annotations.InputArtifact[standard_artifacts.Model] = None,
    drift: annotations.InputArtifact[DriftReport] = None,
) -> None:
    """Exports the teacher SavedModel, its dataset index and training.json into `model`.

    settings_json: training.TeacherTrainerSettings (models/settings_codec.py). code_digest is not
    read: it makes TFX's cache miss when the teacher's code changes. Data in spans: warm_from, the
    last blessed model (LatestBlessedModelResolver), and drift, the drift check's decision: a
    warm start when it says warm (training.warm_source)."""
    del code_digest
    import tensorflow_transform as tft

    vocab = tft.TFTransformOutput(transform_graph.uri)
    vocabularies = tuple(
        [v.decode("utf-8") for v in vocab.vocabulary_by_name(name)] for name in ("user_id", "item_id"))
    warm = None
    if drift is not None:
        warm = training.warm_source(warm_from.uri if warm_from is not None else None,
                                    drift.get_string_custom_property("decision"),
                                    drift.get_string_custom_property("reason"))
    summary = training.train_and_export(
        examples.uri, catalog.uri, transform_graph.uri, vocabularies, model.uri,
        settings_codec.from_json(training.TeacherTrainerSettings, settings_json), warm=warm)
    if warm is not None:
        model.set_string_custom_property("warm_start", summary["warm_start"]["reason"])
    for key in ("params", "epochs", "encoder"):
        value = summary[key]
        if isinstance(value, int):
            model.set_int_custom_property(key, value)
        else:
            model.set_string_custom_property(key, value)
    model.set_string_custom_property("seconds", json.dumps(summary["seconds"]))


@decorators.component(use_beam=True)
def TeacherScorer(  # noqa: N802
    teacher: annotations.InputArtifact[standard_artifacts.Model],
    negatives: annotations.Parameter[int],
    candidate_budget: annotations.Parameter[int],
    code_digest: annotations.Parameter[str],
    scored_examples: annotations.OutputArtifact[standard_artifacts.Examples],
    beam_pipeline: annotations.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Scores every training interaction's candidates with the teacher (components/teacher/scoring.py):
    `negatives` sampled and as many hard ones per row, fewer when the split's rows times the
    candidates would exceed `candidate_budget`.

    code_digest is not read: it makes TFX's cache miss when the scoring code changes.
    """
    del code_digest
    with beam_pipeline as p:
        negatives = scoring.score_training_rows(p, teacher.uri, scored_examples.uri, negatives,
                                                budget=candidate_budget)
    scored_examples.split_names = artifact_utils.encode_split_names(list(scoring.SCORED_SPLITS))
    scored_examples.set_string_custom_property("payload_format", "FORMAT_TF_EXAMPLE")
    scored_examples.set_int_custom_property("negatives", negatives)

"""The recdistill TFX DAG. This file only wires components; the work lives in components/."""

import dataclasses
import uuid
from typing import List, Optional

# The names tfx.v1 re-exports, from where they are defined: importing tfx.v1 also imports its
# Google Cloud extensions (google.cloud.aiplatform), about 2.5 s of every process's start.
from tfx import components as tfx_components
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration import metadata
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import trainer_pb2, transform_pb2
from tfx.types import Channel, standard_artifacts

import components.compression.trainer_module
import components.student.trainer_module
from models import artifacts, settings_codec
from components import transform_module
from components.drift.component import DriftCheck
from components.evaluation.component import ModelEvaluator
from components.push.component import ModelPusher
from components.ingest.beam_ingest import IngestSettings
from components.ingest.component import InteractionsExampleGen
from components.ingest.splits import TRAIN
from components.teacher.component import TeacherScorer, TeacherTrainer
from components.teacher.scoring import SCORED_SPLITS
from components.validation_gate import ValidationGate
from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.fingerprints import closure_digest
from models.foundation import storage

PREPROCESSING_FN = f"{transform_module.preprocessing_fn.__module__}.{transform_module.preprocessing_fn.__name__}"
_STUDENT_RUN = components.student.trainer_module.run_fn
_COMPRESSION_RUN = components.compression.trainer_module.run_fn
STUDENT_RUN_FN = f"{_STUDENT_RUN.__module__}.{_STUDENT_RUN.__name__}"
COMPRESSION_RUN_FN = f"{_COMPRESSION_RUN.__module__}.{_COMPRESSION_RUN.__name__}"


def create_pipeline(
    config: PipelineConfig,
    dataset: str,
    data_dir: str,
    data_fingerprint: str,
    pipeline_root: str,
    metadata_path: str,
    until: Optional[str] = None,
    push_root: Optional[str] = None,
    run_token: Optional[str] = None,
    spanned: bool = False,
    newest_span: Optional[int] = None,
) -> Pipeline:
    """The DAG for one dataset; with `until`, only the components up to that one.
    push_root: where serving/ and mobile/ are pushed (default: pipeline_root's parent).
    run_token: new in every run (default: a random one), so that the pushers always run: a push
    is idempotent, and a cached one would not notice a destination that was deleted or changed.
    spanned: data_dir holds spans (docs/spans.md): the drift check runs, the split is newest_span by
    default; newest_span: the span the local runner found (None: ExampleGen takes the newest it finds)."""
    push_root = push_root or storage.dirname(storage.absolute(pipeline_root))
    run_token = run_token or uuid.uuid4().hex
    components = _components(config, dataset, data_dir, data_fingerprint, push_root, run_token, spanned, newest_span)
    if until is not None:
        components = components[: component_index(components, until) + 1]
        for component in components:  # order-only edges to what `until` cut (ValidationGate -> Transform)
            for cut in [node for node in component.downstream_nodes if node not in components]:
                cut.remove_upstream_node(component)
    return Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=True,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(metadata_path),
        beam_pipeline_args=config.beam_pipeline_args(),
    )


def _components(config: PipelineConfig, dataset: str, data_dir: str, data_fingerprint: str, push_root: str,
                run_token: str, spanned: bool = False, newest_span: Optional[int] = None) -> List:
    split = config.split_spec(dataset, spanned)
    settings = IngestSettings(
        split=split,
        max_bad_share=config.max_bad_share,
        item_text_columns=config.item_text_columns,
        user_text_columns=config.user_text_columns,
        list_columns=config.list_columns,
        spans=config.spans,
        newest_span=newest_span,
    )
    example_gen = InteractionsExampleGen(
        input_dir=data_dir,
        input_fingerprint=f"{data_fingerprint}:{code_digest(InteractionsExampleGen)}",
        settings_json=settings_codec.to_json(settings),
    ).with_id(artifacts.EXAMPLE_GEN)
    statistics_gen = tfx_components.StatisticsGen(examples=example_gen.outputs["examples"])
    if config.schema_path:
        schema_gen = ImportSchemaGen(schema_file=config.schema_path)
    else:
        schema_gen = tfx_components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    example_validator = tfx_components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    validation_gate = ValidationGate(anomalies=example_validator.outputs["anomalies"],
                                     code_digest=code_digest(ValidationGate))
    transform = tfx_components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        # The digest is ignored by preprocessing_fn: it makes a changed module miss the cache.
        custom_config={**config.transform_config(), "code_digest": code_digest(transform_module.preprocessing_fn)},
        # The graph alone: the teacher reads ExampleGen's examples through it, so transformed copies
        # of every split (materialize) were written and never read, and so was an analyzer cache,
        # which only a Transform over several example artifacts (per-span inputs) would read back.
        splits_config=transform_pb2.SplitsConfig(analyze=[TRAIN]),
        materialize=False, disable_analyzer_cache=True,
        disable_statistics=True,
    )
    # Transform reads the examples directly; the gate only orders it after a clean validation.
    transform.add_upstream_node(validation_gate)
    drift = []
    if spanned:  # the newest span against the one before (components/drift/)
        span_statistics = tfx_components.StatisticsGen(examples=example_gen.outputs["span_pair"]
                                                       ).with_id(artifacts.SPAN_STATISTICS_GEN)
        drift = [span_statistics, DriftCheck(
            statistics=span_statistics.outputs["statistics"], schema=schema_gen.outputs["schema"],
            span_pair=example_gen.outputs["span_pair"], settings_json=settings_codec.to_json(config.drift),
            code_digest=code_digest(DriftCheck)).with_id(artifacts.DRIFT_CHECK)]
    latest_blessed = Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=Channel(type=standard_artifacts.Model),
        model_blessing=Channel(type=standard_artifacts.ModelBlessing),
    ).with_id(artifacts.BLESSED_RESOLVER)
    # Data in spans: the teacher starts from the last blessed run's when the drift check says warm.
    warm = {"warm_from": latest_blessed.outputs["model"], "drift": drift[-1].outputs["drift"]} if drift else {}
    teacher_code = code_digest(TeacherTrainer)  # the scorer is defined in the same module
    teacher_trainer = TeacherTrainer(
        examples=example_gen.outputs["examples"],
        catalog=example_gen.outputs["catalog"],
        transform_graph=transform.outputs["transform_graph"],
        settings_json=settings_codec.to_json(config.teacher_settings()), code_digest=teacher_code, **warm,
    ).with_id(artifacts.TEACHER_TRAINER)
    teacher_scorer = TeacherScorer(
        teacher=teacher_trainer.outputs["model"], negatives=config.scoring_negatives,
        candidate_budget=config.scoring_candidate_budget, code_digest=teacher_code,
    ).with_id(artifacts.TEACHER_SCORER)
    teacher_scorer.with_beam_pipeline_args(config.beam_pipeline_args(workers=config.scoring_workers))
    # The teacher is the student's base model: not to warm-start from (another architecture and
    # Keras), but its artifact holds the index spaces, feature tables and item embeddings (hints).
    student_trainer = tfx_components.Trainer(
        run_fn=STUDENT_RUN_FN,
        examples=teacher_scorer.outputs["scored_examples"],
        base_model=teacher_trainer.outputs["model"],
        # Split-train for phase one, Split-final for the refit (components/teacher/scoring.py); the
        # students validate on the dataset's eval split themselves, TFX's eval files go unread.
        train_args=trainer_pb2.TrainArgs(splits=list(SCORED_SPLITS)),
        eval_args=trainer_pb2.EvalArgs(splits=[TRAIN]),
        custom_config={"student": settings_codec.to_dict(_student_settings(config, split.method)),
                       "code_digest": code_digest(_STUDENT_RUN)},
    ).with_id(artifacts.STUDENT_TRAINER)
    # Compression fine-tunes the KD student (the base model) on the same scored examples.
    student_compressor = tfx_components.Trainer(
        run_fn=COMPRESSION_RUN_FN,
        examples=teacher_scorer.outputs["scored_examples"],
        base_model=student_trainer.outputs["model"],
        transform_graph=transform.outputs["transform_graph"],
        train_args=trainer_pb2.TrainArgs(splits=list(SCORED_SPLITS)),
        eval_args=trainer_pb2.EvalArgs(splits=[TRAIN]),
        custom_config={"compression": settings_codec.to_dict(config.compression),
                       "code_digest": code_digest(_COMPRESSION_RUN)},
    ).with_id(artifacts.STUDENT_COMPRESSOR)
    model_evaluator = ModelEvaluator(
        teacher=teacher_trainer.outputs["model"], student=student_trainer.outputs["model"],
        compressed=student_compressor.outputs["model"], baseline=latest_blessed.outputs["model"],
        baseline_blessing=latest_blessed.outputs["model_blessing"],
        tolerance=config.bless_tolerance, margin=config.bless_margin,
        split_method=split.method, trending_days=config.trending_days,
        ease_max_items=config.ease_max_items,
        code_digest=code_digest(ModelEvaluator)).with_id(artifacts.MODEL_EVALUATOR)
    # The pushers take no code digest: their run_token differs in every run, so they are never cached.
    # Where they publish under the push root: docs/design.md, "Outputs".
    pushers = [
        ModelPusher(model=student_compressor.outputs["model"], blessing=model_evaluator.outputs["blessing"],
                    kind=kind, destination=storage.join(push_root, *artifacts.PUSH_BASES[kind]), run_token=run_token,
                    ).with_id(artifacts.PUSHERS[kind])
        for kind in ("serving", "mobile")]
    # With spans the teacher reads the resolver, so it comes before it (--until cuts this list).
    early, late = ([latest_blessed], []) if drift else ([], [latest_blessed])
    return [example_gen, statistics_gen, schema_gen, example_validator, validation_gate, *drift, transform,
            *early, teacher_trainer, teacher_scorer, student_trainer, student_compressor, *late, model_evaluator,
            *pushers]


def code_digest(entry) -> str:
    """The cache key of the code a component runs: a digest of the module that defines `entry` (a
    component, whose executor is generated in its function's module, a run_fn or a preprocessing_fn)
    and of every project module it imports, however deeply (tfx_pipeline/fingerprints.py). Computed
    from the imports rather than listed, so a module a trainer reaches only through another (as the
    student reaches models/scored_rows.py) cannot be forgotten, and a change to one reruns exactly
    the components whose code reaches it."""
    return closure_digest(entry.__module__)


def component_ids(components: List) -> List[str]:
    return [c.id for c in components]


def component_index(components: List, name: str) -> int:
    """Position of the component called `name` (its id, or the end of it: "ExampleGen")."""
    ids = component_ids(components)
    lowered = [i.lower() for i in ids]
    if name.lower() in lowered:
        return lowered.index(name.lower())
    matches = [n for n, i in enumerate(lowered) if i.endswith(name.lower())]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(f"{name!r} is ambiguous: it matches {', '.join(ids[n] for n in matches)}")
    raise ValueError(f"no component {name!r} in the pipeline; components: {', '.join(ids)}")


def _student_settings(config: PipelineConfig, split_method: str):
    """config.student with recency_prior "auto" resolved: picked for a split in time (it has a "now";
    models/recency_prior.py), none otherwise."""
    from models import recency_prior

    return dataclasses.replace(config.student,
                               recency_prior=recency_prior.resolve(config.student.recency_prior, split_method))

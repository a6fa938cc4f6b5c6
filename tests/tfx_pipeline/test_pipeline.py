"""The DAG's shape: components, their order and edges, --until, a curated schema."""

import shutil

import pytest

from tfx_pipeline import config as config_lib, fingerprints
from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.pipeline import component_index, create_pipeline


def _pipeline(tmp_path, config=PipelineConfig(), until=None):
    return create_pipeline(config, "movielens-100k", str(tmp_path), "digest", str(tmp_path / "root"),
                           str(tmp_path / "m.sqlite"), until=until)


def _upstream(pipeline):
    return {c.id: sorted(u.id for u in c.upstream_nodes) for c in pipeline.components}


def test_components_and_edges(tmp_path):
    pipeline = _pipeline(tmp_path)
    assert sorted(c.id for c in pipeline.components) == sorted([
        "InteractionsExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "ValidationGate", "Transform",
        "TeacherTrainer", "TeacherScorer", "StudentTrainer", "StudentCompressor", "LatestBlessedModelResolver",
        "ModelEvaluator", "ServingPusher", "MobilePusher"])
    assert _upstream(pipeline) == {
        "InteractionsExampleGen": [],
        "StatisticsGen": ["InteractionsExampleGen"],
        "SchemaGen": ["StatisticsGen"],
        "ExampleValidator": ["SchemaGen", "StatisticsGen"],
        "ValidationGate": ["ExampleValidator"],
        "Transform": ["InteractionsExampleGen", "SchemaGen", "ValidationGate"],
        "TeacherTrainer": ["InteractionsExampleGen", "Transform"],
        "TeacherScorer": ["TeacherTrainer"],
        "StudentTrainer": ["TeacherScorer", "TeacherTrainer"],
        "StudentCompressor": ["StudentTrainer", "TeacherScorer", "Transform"],
        "LatestBlessedModelResolver": [],
        "ModelEvaluator": ["LatestBlessedModelResolver", "StudentCompressor", "StudentTrainer", "TeacherTrainer"],
        "ServingPusher": ["ModelEvaluator", "StudentCompressor"],
        "MobilePusher": ["ModelEvaluator", "StudentCompressor"],
    }
    assert pipeline.enable_cache
    assert "--direct_num_workers=1" in pipeline.beam_pipeline_args
    scorer = next(c for c in pipeline.components if c.id == "TeacherScorer")
    assert "--direct_num_workers=2" in scorer.executor_spec.beam_pipeline_args  # one teacher per worker


def test_the_direct_runner_skips_tfxs_sdist_and_another_runner_keeps_it():
    from tfx.utils import dependency_utils

    local = PipelineConfig().beam_pipeline_args()
    assert config_lib.DIRECT_STAGES_NOTHING in local
    # TFX would build its sdist (about 4 s, 52 MB in /tmp) without a dependency flag: with it, nothing
    assert dependency_utils.make_beam_dependency_flags(local) == local
    direct = PipelineConfig(beam_args=("--runner=DirectRunner",)).beam_pipeline_args()
    assert config_lib.DIRECT_STAGES_NOTHING in direct
    dataflow = PipelineConfig(beam_args=("--runner=DataflowRunner", "--project=p")).beam_pipeline_args()
    assert not any(arg.startswith("--extra_package") for arg in dataflow)  # TFX stages its sdist there


def test_example_gen_gets_the_benchmark_split_for_movielens(tmp_path):
    example_gen = _pipeline(tmp_path).components[0]
    settings = example_gen.exec_properties["settings_json"]
    assert '"method": "stratified"' in settings and '"seed": 42' in settings and '"test_share": 0.25' in settings


def test_data_in_spans_adds_the_drift_check_and_pins_the_newest_span(tmp_path):
    import json

    from components.drift.comparison import DriftSettings

    config = PipelineConfig(spans={"window": 3}, drift={"categorical": {"item_genres": 0.04}})
    pipeline = create_pipeline(config, "/data/weekly", str(tmp_path), "digest", str(tmp_path / "root"),
                               str(tmp_path / "m.sqlite"), spanned=True, newest_span=7)
    upstream = _upstream(pipeline)
    assert upstream["SpanStatisticsGen"] == ["InteractionsExampleGen"]
    assert upstream["DriftCheck"] == ["InteractionsExampleGen", "SchemaGen", "SpanStatisticsGen"]
    # the teacher starts from the last blessed run's when the drift check says warm
    assert upstream["TeacherTrainer"] == ["DriftCheck", "InteractionsExampleGen", "LatestBlessedModelResolver",
                                          "Transform"]
    ids = [c.id for c in pipeline.components]
    assert ids.index("DriftCheck") < ids.index("Transform")
    by_id = {c.id: c for c in pipeline.components}
    ingest = json.loads(by_id["InteractionsExampleGen"].exec_properties["settings_json"])
    assert ingest["newest_span"] == 7 and ingest["spans"] == {"window": 3, "pattern": "span-{SPAN}"}
    assert ingest["split"]["method"] == "newest_span"
    # the newest span's split is in time: the deployed student's recency prior is picked
    assert json.loads(by_id["StudentTrainer"].exec_properties["custom_config"])["student"]["recency_prior"] == "picked"
    drift = json.loads(by_id["DriftCheck"].exec_properties["settings_json"])
    assert drift == {**json.loads(json.dumps(DriftSettings().__dict__)), "categorical": {"item_genres": 0.04}}
    # flat data: neither
    assert not {"SpanStatisticsGen", "DriftCheck"} & {c.id for c in _pipeline(tmp_path).components}


def test_until_cuts_order_only_edges_too(tmp_path):
    # ValidationGate orders Transform without a channel: cut after the gate, the edge goes too.
    assert [c.id for c in _pipeline(tmp_path, until="ValidationGate").components][-1] == "ValidationGate"
    gate = _pipeline(tmp_path, until="ValidationGate").components[-1]
    assert not gate.downstream_nodes


def test_until_keeps_the_components_up_to_the_named_one(tmp_path):
    assert [c.id for c in _pipeline(tmp_path, until="SchemaGen").components] == [
        "InteractionsExampleGen", "StatisticsGen", "SchemaGen"]
    assert len(_pipeline(tmp_path, until="examplegen").components) == 1
    assert [c.id for c in _pipeline(tmp_path, until="TeacherTrainer").components][-1] == "TeacherTrainer"
    with pytest.raises(ValueError, match="'Trainer' is ambiguous: it matches TeacherTrainer, StudentTrainer"):
        _pipeline(tmp_path, until="Trainer")  # ambiguous: the teacher's or the student's
    with pytest.raises(ValueError, match="'Pusher' is ambiguous: it matches ServingPusher, MobilePusher"):
        _pipeline(tmp_path, until="Pusher")
    with pytest.raises(ValueError, match="no component 'InfraValidator'"):
        _pipeline(tmp_path, until="InfraValidator")


def test_student_trainer_is_a_tfx_trainer_with_the_student_config(tmp_path):
    pipeline = _pipeline(tmp_path, PipelineConfig(student={"beta": 0.5, "temperature": 3.0}))
    trainer = next(c for c in pipeline.components if c.id == "StudentTrainer")
    assert type(trainer).__name__ == "Trainer"
    assert trainer.exec_properties["run_fn"] == "components.student.trainer_module.run_fn"
    assert '"beta": 0.5' in trainer.exec_properties["custom_config"]
    assert '"temperature": 3.0' in trainer.exec_properties["custom_config"]


def test_compressor_gate_and_pushers_are_configured(tmp_path):
    config = PipelineConfig(compression={"target_sparsity": 0.5}, bless_tolerance=0.05)
    components = {c.id: c for c in _pipeline(tmp_path, config).components}
    compressor = components["StudentCompressor"]
    assert compressor.exec_properties["run_fn"] == "components.compression.trainer_module.run_fn"
    assert '"target_sparsity": 0.5' in compressor.exec_properties["custom_config"]
    assert components["ModelEvaluator"].exec_properties["tolerance"] == 0.05
    assert components["ModelEvaluator"].exec_properties["margin"] == 0.05  # bless_margin's default
    assert components["ServingPusher"].exec_properties["destination"] == str(tmp_path / "serving" / "recdistill")
    assert components["MobilePusher"].exec_properties["destination"] == str(tmp_path / "mobile")
    assert components["MobilePusher"].exec_properties["kind"] == "mobile"


def test_curated_schema_replaces_schema_gen(tmp_path):
    pipeline = _pipeline(tmp_path, PipelineConfig(schema_path=str(tmp_path / "schema.pbtxt")))
    ids = [c.id for c in pipeline.components]
    assert "ImportSchemaGen" in ids and "SchemaGen" not in ids


def test_component_index_needs_a_unique_match(tmp_path):
    components = _pipeline(tmp_path).components
    assert components[component_index(components, "transform")].id == "Transform"
    with pytest.raises(ValueError):
        component_index(components, "Gen")


def test_the_evaluator_gets_the_split_method_and_baseline_settings(tmp_path):
    config = PipelineConfig(split={"method": "time_cutoff"}, trending_days=7, ease_max_items=500, bless_margin=0.1)
    evaluator = next(c for c in _pipeline(tmp_path, config).components if c.id == "ModelEvaluator")
    assert {k: evaluator.exec_properties[k] for k in ("split_method", "trending_days", "ease_max_items", "margin")} \
        == {"split_method": "time_cutoff", "trending_days": 7, "ease_max_items": 500, "margin": 0.1}


def _rerun_by_an_edit_of(module, tmp_path, monkeypatch):
    """The ids of the components whose parameters change when `module` (a path under the source
    root) is edited. TFX's cache key is a component's inputs and parameters: a component reruns
    exactly when its parameters, or an upstream output, change. The digests are taken of a copy."""
    source = tmp_path / "source"
    for package in fingerprints.PROJECT_PACKAGES:
        shutil.copytree(f"{fingerprints.SOURCE_ROOT}/{package}", source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprints, "SOURCE_ROOT", str(source))

    def parameters():
        pipeline = create_pipeline(PipelineConfig(), "movielens-100k", str(tmp_path), "digest",
                                   str(tmp_path / "root"), str(tmp_path / "m.sqlite"), run_token="same")
        return {c.id: dict(c.exec_properties) for c in pipeline.components}

    before = parameters()
    with open(source / module, "a") as f:
        f.write("# changed\n")
    after = parameters()
    return sorted(i for i in before if before[i] != after[i])


def test_a_change_to_scored_rows_reruns_the_student_trainers_only(tmp_path, monkeypatch):
    changed = _rerun_by_an_edit_of("models/scored_rows.py", tmp_path, monkeypatch)
    # The evaluator reads the students' artifacts by models/artifacts.py's names, not through the
    # trainer modules: their training code is not its code, and it is answered from the cache.
    assert changed == ["StudentCompressor", "StudentTrainer"]


def test_a_change_to_the_validation_gate_reruns_it(tmp_path, monkeypatch):
    # Its verdict is not answered from the cache with the old code (the gate imports only storage).
    assert _rerun_by_an_edit_of("components/validation_gate.py", tmp_path, monkeypatch) == ["ValidationGate"]

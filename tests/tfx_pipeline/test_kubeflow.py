"""The Kubeflow Pipelines v2 definition: compiled only (no component runs), then read as JSON/YAML."""

import json
import types
from unittest import mock

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from tfx_pipeline import cli, kubeflow
from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.pipeline import COMPRESSION_RUN_FN, PREPROCESSING_FN, STUDENT_RUN_FN, create_pipeline

IMAGE = "example/recdistill:test"
ROOTS = dict(data_root="gs://bucket/data/2024-06-01", pipeline_root="gs://bucket/root", push_root="gs://bucket/out")
CONFIG = PipelineConfig(beam_args=("--runner=DataflowRunner", "--project=my-project", "--region=europe-west4"))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """(the returned dict, the file parsed back) for a JSON output."""
    path = tmp_path_factory.mktemp("kfp") / "out" / "pipeline.json"
    returned = kubeflow.compile_pipeline(str(path), IMAGE, CONFIG, **ROOTS)
    with open(path) as f:
        return returned, json.load(f)


def _local_pipeline(tmp_path):
    return create_pipeline(CONFIG, "x", str(tmp_path), "d", str(tmp_path / "r"), str(tmp_path / "m.sqlite"))


def _executor(spec, task):
    name = spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]
    return spec["deploymentSpec"]["executors"][spec["components"][name]["executorLabel"]]


def test_every_local_component_is_a_task_with_the_same_edges(compiled, tmp_path):
    returned, job = compiled
    assert returned == job
    # Valid against the KFP v2 schema (PipelineJob holds pipelineSpec as a Struct: parse it too).
    json_format.ParseDict(job, pipeline_spec_pb2.PipelineJob())
    json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    assert job["displayName"] == "recdistill" and job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/root"
    spec = job["pipelineSpec"]
    assert spec["pipelineInfo"]["name"] == "recdistill" and spec["defaultPipelineRoot"] == "gs://bucket/root"
    tasks = spec["root"]["dag"]["tasks"]
    local = _local_pipeline(tmp_path).components
    ids = [c.id for c in local]
    assert {"InteractionsExampleGen", "LatestBlessedModelResolver", "ServingPusher", "MobilePusher"} <= set(ids)
    # The Resolver compiles to one task per channel: the model query runs after the blessing query.
    resolver = "LatestBlessedModelResolver"
    assert set(tasks) == set(ids) - {resolver} | {f"{resolver}-model-resolver", f"{resolver}-model-blessing-resolver"}
    assert tasks[f"{resolver}-model-resolver"]["inputs"]["artifacts"]["input"]["taskOutputArtifact"][
        "producerTask"] == f"{resolver}-model-blessing-resolver"
    for component in local:
        if component.id != resolver:
            upstream = [f"{resolver}-model-resolver" if u.id == resolver else u.id for u in component.upstream_nodes]
            assert sorted(tasks[component.id].get("dependentTasks", [])) == sorted(upstream), component.id


def test_every_container_runs_the_given_image_and_beam_args(compiled):
    spec = compiled[1]["pipelineSpec"]
    containers = {name: e["container"] for name, e in spec["deploymentSpec"]["executors"].items() if "container" in e}
    assert len(containers) == 13  # every component but the Resolver (two metadata queries)
    assert {c["image"] for c in containers.values()} == {IMAGE}
    for name in ("InteractionsExampleGen", "StatisticsGen", "Transform", "TeacherScorer"):  # Beam components
        args = _executor(spec, name)["container"]["args"]
        assert args[args.index("--runner=DataflowRunner") + 1:][:2] == ["--project=my-project", "--region=europe-west4"]
    # The scorer's own worker count comes after the pipeline's, so it is the one Beam keeps.
    scorer = _executor(spec, "TeacherScorer")["container"]["args"]
    assert [a for a in scorer if a.startswith("--direct_num_workers=")][-1] == "--direct_num_workers=2"


def test_module_functions_are_named_by_path_and_nothing_is_packaged(compiled):
    tasks = compiled[1]["pipelineSpec"]["root"]["dag"]["tasks"]

    def parameter(task, name):
        return tasks[task]["inputs"]["parameters"][name]["runtimeValue"]["constantValue"]["stringValue"]

    assert parameter("StudentTrainer", "run_fn") == STUDENT_RUN_FN == "components.student.trainer_module.run_fn"
    assert parameter("StudentCompressor", "run_fn") == COMPRESSION_RUN_FN
    assert parameter("Transform", "preprocessing_fn") == PREPROCESSING_FN
    text = json.dumps(compiled[1])
    assert ".whl" not in text and "module_file" not in text and "_wheels" not in text


def test_data_and_push_destinations_are_the_given_uris(compiled):
    tasks = compiled[1]["pipelineSpec"]["root"]["dag"]["tasks"]
    example_gen = tasks["InteractionsExampleGen"]["inputs"]["parameters"]
    assert example_gen["input_dir"]["runtimeValue"]["constantValue"]["stringValue"] == ROOTS["data_root"]
    fingerprint = example_gen["input_fingerprint"]["runtimeValue"]["constantValue"]["stringValue"]
    assert fingerprint.startswith(kubeflow.UNVERSIONED_DATA + ":")
    destination = tasks["ServingPusher"]["inputs"]["parameters"]["destination"]["runtimeValue"]["constantValue"]
    assert destination["stringValue"] == "gs://bucket/out/serving/recdistill"


def test_pushers_are_never_cached_and_the_rest_is(compiled):
    tasks = compiled[1]["pipelineSpec"]["root"]["dag"]["tasks"]
    for name, task in tasks.items():
        cached = task.get("cachingOptions", {}).get("enableCache", False)
        assert cached == (not name.endswith(("Pusher", "-resolver"))), name  # resolvers: never, by TFX


def test_yaml_output_is_the_pipeline_spec_alone(tmp_path):
    path = tmp_path / "pipeline.yaml"
    returned = kubeflow.compile_pipeline(str(path), IMAGE, PipelineConfig(pipeline_name="other"), **ROOTS,
                                         data_fingerprint="2024-06-01")
    text = path.read_text()
    assert text.startswith("# PIPELINE DEFINITION\n# Name: other\n")
    spec = yaml.safe_load(text)
    assert spec == returned and "pipelineSpec" not in spec
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    assert spec["pipelineInfo"]["name"] == "other" and spec["defaultPipelineRoot"] == ROOTS["pipeline_root"]
    assert "ServingPusher" in spec["root"]["dag"]["tasks"]
    fingerprint = spec["root"]["dag"]["tasks"]["InteractionsExampleGen"]["inputs"]["parameters"]["input_fingerprint"]
    assert fingerprint["runtimeValue"]["constantValue"]["stringValue"].startswith("2024-06-01:")


def test_a_builtin_dataset_name_is_not_a_data_root(tmp_path):
    with pytest.raises(ValueError, match="copy <run output>/input"):
        kubeflow.compile_pipeline(str(tmp_path / "p.json"), IMAGE, data_root="movielens-100k")


def test_a_missing_runner_says_what_to_install(tmp_path):
    with mock.patch.object(kubeflow, "tfx_experimental", types.SimpleNamespace()):
        with pytest.raises(ImportError, match=r"pip install kfp-pipeline-spec==0\.3\.0"):
            kubeflow.compile_pipeline(str(tmp_path / "p.json"), IMAGE)
    assert not (tmp_path / "p.json").exists()


def test_the_compile_command_writes_the_spec_and_names_its_tasks(tmp_path, capsys):
    from tfx_pipeline import cli

    output = tmp_path / "pipeline.json"
    assert cli.main(["compile", "--runner", "kubeflow", "--output", str(output), "--image", "example/recdistill:1"]) == 0
    out = capsys.readouterr().out
    assert "StudentCompressor" in out
    assert "example/recdistill:1" in output.read_text()
    # the three roots were not given: one line each, naming the flag and the value written
    placeholders = [line for line in out.splitlines() if line.startswith("placeholder: ")]
    assert [line.split()[1] for line in placeholders] == ["--data-root", "--pipeline-root", "--push-root"]
    for line, value in zip(placeholders, (kubeflow.DEFAULT_DATA_ROOT, kubeflow.DEFAULT_PIPELINE_ROOT,
                                          kubeflow.DEFAULT_PUSH_ROOT)):
        assert value in line and value in output.read_text()
    assert cli.main(["compile", "--output", str(tmp_path / "p.json"), "--data-root", "movielens-100k"]) == 2


def test_strict_refuses_placeholders_and_writes_nothing(tmp_path, capsys):
    from tfx_pipeline import cli

    output = tmp_path / "pipeline.json"
    assert cli.main(["compile", "--output", str(output), "--strict", "--image", "r/recdistill:1",
                     "--data-root", "gs://b/data"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--pipeline-root, --push-root" in err[0] and "--image" not in err[0]
    assert cli.main(["compile", "--output", str(output), "--strict", "--image", "", "--data-root", "gs://b/d",
                     "--pipeline-root", "gs://b/r", "--push-root", "gs://b"]) == 2  # an empty value is none
    assert "--image" in capsys.readouterr().err
    assert not output.exists()
    roots = ["--data-root", ROOTS["data_root"], "--pipeline-root", ROOTS["pipeline_root"],
             "--push-root", ROOTS["push_root"]]
    assert cli.main(["compile", "--output", str(output), "--strict", "--image", "r/recdistill:1", *roots]) == 0
    assert "placeholder" not in capsys.readouterr().out and output.exists()


def test_spans_compile_with_the_drift_check_and_the_span_pattern(tmp_path, capsys):
    path = tmp_path / "spans.json"
    config = PipelineConfig(spans={"window": 6, "pattern": "week-{SPAN}"})
    assert cli.main(["compile", "--output", str(path), "--spans", "--data-root", "gs://bucket/weekly"]) == 0
    assert "DriftCheck" in capsys.readouterr().out
    spec = kubeflow.compile_pipeline(str(path), IMAGE, config, spans=True, **ROOTS)["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    assert {"SpanStatisticsGen", "DriftCheck"} <= set(tasks)
    # ExampleGen finds the newest span when each run starts: its cache cannot know one arrived
    assert tasks["InteractionsExampleGen"]["cachingOptions"] == {"enableCache": False}
    assert tasks["DriftCheck"]["cachingOptions"] == {"enableCache": True}
    parameter = tasks["InteractionsExampleGen"]["inputs"]["parameters"]["settings_json"]
    settings = json.loads(parameter["runtimeValue"]["constantValue"]["stringValue"])
    assert settings["spans"] == {"window": 6, "pattern": "week-{SPAN}"} and settings["newest_span"] is None
    assert settings["split"]["method"] == "newest_span"

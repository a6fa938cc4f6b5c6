"""Compiles the DAG for Kubeflow Pipelines v2 (`recdistill compile --runner kubeflow`).

`compile_pipeline` builds the same components as the local runner (`create_pipeline`, same ids)
and writes a KFP v2 pipeline definition with TFX's KubeflowV2DagRunner. Nothing runs here.

Output format, chosen by the file name:
    *.json          a PipelineJob (keys displayName, labels, pipelineSpec, runtimeConfig), as
                    Vertex AI Pipelines takes it: `PipelineJob(template_path="pipeline.json")`.
    *.yaml / *.yml  the PipelineSpec alone (what `pipelineSpec` holds in the JSON), the format an
                    open-source KFP v2 cluster takes: `kfp.Client().create_run_from_pipeline_package`.
In both, `pipelineSpec.root.dag.tasks` has one task per component id (a Resolver becomes one
task per channel: `LatestBlessedModelResolver-model-resolver`, `...-model-blessing-resolver`), and
`pipelineSpec.deploymentSpec.executors["<id>_executor"].container` the image, command and args.

What differs from a local run:
    Image       every task runs `image` (tfx_pipeline/Dockerfile), which has the project installed:
                Transform and the Trainers name their functions by module path
                (components.transform_module.preprocessing_fn, ...), so no module file is packaged
                or copied to a bucket.
    Paths       data_root, pipeline_root and push_root are URIs the cluster can read and write
                (gs://, s3://, or a volume mounted in every task); `config.schema_path` too.
    Metadata    Kubeflow records artifacts in its own ML Metadata (Vertex ML Metadata, or the
                cluster's metadata service): the runner ignores the pipeline's SQLite connection.
    Data cache  ExampleGen's cache key holds a digest of the input files. It cannot be computed
                from here for a bucket, so by default the data URI stands for its content: write
                each snapshot to a new directory (gs://.../data/2024-06-01/), or pass
                data_fingerprint (a date, a generation number) when files change in place.
    Pushers     they are compiled with caching off: a push is idempotent, and a cached one would
                not notice a destination that was deleted (the local runner's run_token does this).
    Spans       with `spans` (data_root holds span-1/, span-2/, ...: docs/spans.md), ExampleGen takes
                the newest span present when the run starts, the window before it and the drift check
                runs; ExampleGen is compiled with caching off, since its cache key cannot know that a
                span arrived: schedule a run when a span lands (docs/spans.md, "On Kubeflow").

Beam: `config.beam_pipeline_args()` (the DirectRunner settings followed by `beam_args`) is appended
to the arguments of every task and reaches every Beam component. The DirectRunner settings are
ignored by other runners. `beam_args` in the config file selects the runner:
    Dataflow    beam_args: [--runner=DataflowRunner, --project=PROJECT, --region=REGION,
                            --temp_location=gs://BUCKET/tmp, --sdk_container_image=IMAGE]
                (the same image, so that workers import components.* and models.*; its entrypoint
                is Beam's worker boot for this reason)
    Flink       beam_args: [--runner=FlinkRunner, --flink_master=HOST:8081,
                            --environment_type=EXTERNAL, --environment_config=localhost:50000]
                (workers: a Beam worker pool in the same image beside each task manager; FlinkRunner
                starts a Java job server, or use --runner=PortableRunner --job_endpoint=HOST:8099
                with a running Flink job server)
    Spark       beam_args: [--runner=SparkRunner, --spark_master_url=spark://HOST:7077,
                            --environment_type=EXTERNAL, --environment_config=localhost:50000]
                (or --spark_submit_uber_jar --spark_rest_url=http://HOST:6066)
The teacher scorer keeps its own worker count (`scoring_workers`) for the DirectRunner.
"""

import json
import os
from typing import Dict, Tuple

import yaml
from tfx.dsl.io import fileio
from tfx.v1.orchestration import experimental as tfx_experimental

from models import artifacts
from tfx_pipeline.compile_placeholders import (  # noqa: F401  (DEFAULT_IMAGE: re-exported)
    DEFAULT_DATA_ROOT, DEFAULT_IMAGE, DEFAULT_PIPELINE_ROOT, DEFAULT_PUSH_ROOT)
from tfx_pipeline.config import BUILTIN_DATASETS, PipelineConfig
from tfx_pipeline.pipeline import create_pipeline

# The data digest when none is given: ExampleGen's cache is then keyed by the data URI alone.
UNVERSIONED_DATA = "by-uri"
# Kubeflow keeps its own ML Metadata; create_pipeline's SQLite path is not used by the runner.
_NO_SQLITE = ""
# Pushers take a run token that changes in every local run; here caching is off for them instead.
_RUN_TOKEN = "kubeflow"
_YAML_SUFFIXES = (".yaml", ".yml")


def compile_pipeline(
    output_path: str,
    image: str,
    config: PipelineConfig = PipelineConfig(),
    data_root: str = DEFAULT_DATA_ROOT,
    pipeline_root: str = DEFAULT_PIPELINE_ROOT,
    push_root: str = DEFAULT_PUSH_ROOT,
    data_fingerprint: str = UNVERSIONED_DATA,
    spans: bool = False,
) -> Dict:
    """Writes the KFP v2 definition of the whole DAG to output_path (.json, .yaml or .yml; a local
    path or a bucket URI) and returns it as a dict. image: the container image of every task.
    data_root: the input directory (interactions.csv, users.csv, items.csv; docs/data.md,
    "Input format"); the split is the default for own data unless `config.split` overrides it.
    push_root: serving/ and mobile/ are pushed under it. spans: data_root holds spans (the newest is
    found when each run starts)."""
    runner_class, runner_config_class = runner_classes()
    if data_root in BUILTIN_DATASETS:
        raise ValueError(f"{data_root!r} is converted on this machine by `recdistill run`; on Kubeflow, data_root "
                         "is a directory of input files the cluster can read (copy <run output>/input there)")
    pipeline = create_pipeline(config, data_root, data_root, data_fingerprint, pipeline_root, _NO_SQLITE,
                               push_root=push_root, run_token=_RUN_TOKEN, spanned=spans)
    runner = runner_class(config=runner_config_class(default_image=image))
    job = runner.run(pipeline, write_out=False)
    spec = job["pipelineSpec"]
    # The YAML form has no runtimeConfig: the root travels in the spec (both backends read it).
    spec["defaultPipelineRoot"] = pipeline_root
    for node in pipeline.components:
        if "run_token" in node.exec_properties or (spans and node.id == artifacts.EXAMPLE_GEN):
            spec["root"]["dag"]["tasks"][node.id]["cachingOptions"] = {"enableCache": False}
    document = spec if output_path.endswith(_YAML_SUFFIXES) else job
    _write(document, output_path)
    return document


def runner_classes() -> Tuple[type, type]:
    """(KubeflowV2DagRunner, KubeflowV2DagRunnerConfig), or an ImportError that says what to do."""
    runner = getattr(tfx_experimental, "KubeflowV2DagRunner", None)
    runner_config = getattr(tfx_experimental, "KubeflowV2DagRunnerConfig", None)
    if runner is None or runner_config is None:
        raise ImportError(
            "tfx.orchestration.experimental.KubeflowV2DagRunner is not available: TFX provides it only when "
            "kfp-pipeline-spec imports. Install it with `pip install kfp-pipeline-spec==0.3.0` (`make install` "
            "does), and make sure no file named kfp.py is on the Python path: it hides the kfp package.")
    return runner, runner_config


def _write(document: Dict, output_path: str) -> None:
    directory = os.path.dirname(output_path)
    if directory and not fileio.exists(directory):
        fileio.makedirs(directory)
    with fileio.open(output_path, "w") as f:
        if output_path.endswith(_YAML_SUFFIXES):
            f.write(f"# PIPELINE DEFINITION\n# Name: {document['pipelineInfo']['name']}\n")
            yaml.safe_dump(document, f, sort_keys=True)
        else:
            json.dump(document, f, indent=2, sort_keys=True)

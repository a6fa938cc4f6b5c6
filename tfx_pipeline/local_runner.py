"""Runs the DAG on this machine: LocalDagRunner, SQLite ML Metadata, Beam DirectRunner.

Layout of an output directory:
    input/            the input files (built-in datasets are converted here)
    metadata.sqlite   ML Metadata: every artifact and execution; reruns reuse cached ones
    pipeline_root/    TFX artifacts (or --pipeline-root, e.g. gs://...)
    serving/, mobile/ the pushed models (or under --push-root, e.g. gs://...)
    logs/pipeline.log everything TFX, Beam and TensorFlow logged
    report/           index.html (open first), report.json, report.md, summary.txt, the plots
"""

import dataclasses
import os
import sys
import time
from typing import Dict, Optional

from tfx.orchestration.local.local_dag_runner import LocalDagRunner  # not tfx.v1: tfx_pipeline/pipeline.py

from components.ingest import spans
from components.ingest.splits import SPLITS
from models import artifacts

from tfx_pipeline import fingerprints, mlmd_outputs, report, report_files, run_metadata
from models.foundation import storage
from tfx_pipeline.config import BUILTIN_DATASETS, PipelineConfig
from tfx_pipeline.pipeline import create_pipeline
from models.foundation import beam_credentials
from models.foundation.progress import RunLogging



class ComponentFailed(RuntimeError):
    """A pipeline component raised; `cause` is its exception, `log_path` has the details."""

    def __init__(self, component: Optional[str], cause: BaseException, log_path: str):
        super().__init__(f"{component or 'the pipeline'} failed: {cause}")
        self.component, self.cause, self.log_path = component, cause, log_path


@dataclasses.dataclass
class RunPaths:
    output_dir: str
    artifact_root: Optional[str] = None  # default: output_dir/pipeline_root
    push_root: Optional[str] = None      # default: output_dir

    def __post_init__(self):
        self.output_dir = os.path.abspath(self.output_dir)
        self.artifact_root = storage.absolute(self.artifact_root) if self.artifact_root else None
        self.push_root = storage.absolute(self.push_root) if self.push_root else self.output_dir

    @property
    def input_dir(self) -> str:
        return os.path.join(self.output_dir, "input")

    @property
    def metadata(self) -> str:
        return os.path.join(self.output_dir, artifacts.METADATA_FILE)

    @property
    def pipeline_root(self) -> str:
        return self.artifact_root or os.path.join(self.output_dir, "pipeline_root")

    @property
    def log(self) -> str:
        return os.path.join(self.output_dir, "logs", "pipeline.log")


def resolve_data(data: str, paths: RunPaths) -> str:
    """The input directory for `--data`: a built-in dataset's converted files, or DIR itself."""
    if data in BUILTIN_DATASETS:
        from tfx_pipeline.datasets.movielens import prepare_movielens_100k

        return str(prepare_movielens_100k(paths.input_dir))
    return storage.absolute(data)


def span_window(data_dir: str, config: PipelineConfig) -> Optional[spans.SpanWindow]:
    """The spans a run of data_dir reads (docs/spans.md), or None for the flat files. Pinned here,
    so that the newest span is part of ExampleGen's cache key."""
    if not storage.isdir(data_dir) or not spans.is_spanned(data_dir, fingerprints.INPUT_FILES, config.spans):
        return None
    return spans.resolve(data_dir, config.spans)


def run_local(config: PipelineConfig, data: str, output_dir: str, until: Optional[str] = None,
              pipeline_root: Optional[str] = None, push_root: Optional[str] = None) -> Dict:
    """Runs the pipeline (up to `until`), writes report/ and returns the report dict.
    pipeline_root, push_root: directories or object-store URIs (default: under output_dir)."""
    paths = RunPaths(output_dir, pipeline_root, push_root)
    beam_credentials.anonymous_when_emulated()  # TFX's executors read and write through Beam here
    os.makedirs(os.path.dirname(paths.log), exist_ok=True)
    started, started_at = time.monotonic(), run_metadata.now()
    data_dir = resolve_data(data, paths)
    window = span_window(data_dir, config)
    pipeline = create_pipeline(config, data, data_dir, fingerprints.data_digest(data_dir, window), paths.pipeline_root,
                               paths.metadata, until, push_root=paths.push_root, spanned=window is not None,
                               newest_span=window.newest if window else None)
    with RunLogging(paths.log) as progress:
        try:
            LocalDagRunner().run(pipeline)
        except Exception as error:
            raise ComponentFailed(progress.running, error, paths.log) from error
    wall = {"total": round(time.monotonic() - started, 2), **progress.wall_seconds}
    result = collect_report(config, data, paths, wall, [c.id for c in pipeline.components],
                            resources=progress.resources, peak_rss_mib=progress.peak_rss_mib,
                            spanned=window is not None)
    inputs = [(name, storage.join(data_dir, name)) for name in fingerprints.input_names(window)]
    try:
        result["run"] = run_metadata.describe(config, inputs, started_at, run_metadata.now())
    except Exception as error:  # what produced a run never fails the run that was produced
        print(f"recdistill: warning: run metadata not recorded: {error}", file=sys.stderr)
        result["run"] = None
    report_files.write_report(paths.output_dir, result)
    return result


def collect_report(config: PipelineConfig, dataset: str, paths: RunPaths, wall: Dict, components,
                   resources: Optional[Dict] = None, peak_rss_mib: Optional[float] = None,
                   spanned: bool = False) -> Dict:
    """The report of the run in `paths` from ML Metadata; wall, resources, peak_rss_mib: what progress measured."""
    metadata = mlmd_outputs.RunMetadata(paths.metadata)
    examples = metadata.latest_output(config.pipeline_name, artifacts.EXAMPLE_GEN, "examples")
    split = dataclasses.asdict(config.split_spec(dataset, spanned))
    counts = mlmd_outputs.custom_json(examples, "split_counts") if examples else None
    split["counts"] = {name: counts[name] for name in SPLITS if name in counts} if counts else None
    quality = mlmd_outputs.custom_json(examples, "data_quality") if examples else None
    evaluator = artifacts.MODEL_EVALUATOR
    evaluation = metadata.latest_output(config.pipeline_name, evaluator, "evaluation") if evaluator in components else None
    models = mlmd_outputs.custom_json(evaluation, "models") if evaluation else None
    curves = mlmd_outputs.custom_json(evaluation, "curves") if evaluation else None
    blessing = mlmd_outputs.custom_json(evaluation, "blessing") if evaluation else None
    baselines = mlmd_outputs.custom_json(evaluation, "baselines") if evaluation else None
    cold_items = mlmd_outputs.custom_json(evaluation, "cold_items") if evaluation else None
    pushed = {}
    for kind, node in artifacts.PUSHERS.items():
        artifact = metadata.latest_output(config.pipeline_name, node, "pushed_model") if node in components else None
        pushed[kind] = mlmd_outputs.pushed_destination(artifact) if artifact else None
    compressor = artifacts.STUDENT_COMPRESSOR
    compressed = metadata.latest_output(config.pipeline_name, compressor, "model") if compressor in components else None
    compression = mlmd_outputs.read_json_file(compressed.uri, artifacts.COMPRESSION_FILE) if compressed else None
    drift_node, teacher_node = artifacts.DRIFT_CHECK, artifacts.TEACHER_TRAINER
    drift = metadata.latest_output(config.pipeline_name, drift_node, "drift") if drift_node in components else None
    teacher = metadata.latest_output(config.pipeline_name, teacher_node, "model") \
        if drift and teacher_node in components else None
    warm_start = {"teacher": (mlmd_outputs.read_json_file(teacher.uri, artifacts.TRAINING_FILE) or {}).get(
        "warm_start")} if teacher else None
    student_node = artifacts.STUDENT_TRAINER
    students = metadata.latest_output(config.pipeline_name, student_node, "model") \
        if student_node in components else None
    student_summary = (mlmd_outputs.read_json_file(students.uri, artifacts.TRAINING_FILE) or {}) if students else {}
    if warm_start and students:
        warm_start["students"] = student_summary.get("warm_start")
    if warm_start and compression:
        warm_start["compression"] = compression.get("warm_start")
    return report.build_report(dataset, split, wall, quality, components, models, curves, blessing, pushed, compression,
                               baselines, resources=resources, peak_rss_mib=peak_rss_mib, cold_items=cold_items,
                               drift=mlmd_outputs.read_json_file(drift.uri, artifacts.DRIFT_FILE) if drift else None,
                               warm_start=warm_start,
                               recency_prior=(student_summary.get("student_kd") or {}).get("recency_prior"))

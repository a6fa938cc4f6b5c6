"""The pipeline's one configuration object, loadable from a YAML or JSON file (`--config`).

Example file (every key optional; unknown keys are an error):

    split: {method: temporal, test_share: 0.2, eval_share: 0.1}
    max_bad_share: 0.005
    item_text_columns: [title, description]
    list_columns: [genres, tags]
    beam_workers: 2
"""

import dataclasses
import errno
import io
import os
from typing import Any, Dict, Mapping, Optional, Tuple

import yaml

from components.ingest.splits import SplitSpec
from tfx_pipeline import storage

BUILTIN_DATASETS = ("movielens-100k",)


class ConfigError(ValueError):
    """A configuration file or value that cannot be used (exit code 2)."""


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    pipeline_name: str = "recdistill"
    # Split overrides (keys of SplitSpec); the rest comes from the dataset's default split.
    split: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # The cold-item evaluation: this share of catalog items (a seeded draw) is held out of training;
    # all their interactions go to test, and the report ranks them apart (report.json "cold_items").
    cold_items: float = 0.0
    # Share of bad rows per input file that is dropped and counted; above it the run stops.
    max_bad_share: float = 0.01
    item_text_columns: Tuple[str, ...] = ("title",)
    user_text_columns: Tuple[str, ...] = ()
    # Columns holding several values separated by "|".
    list_columns: Tuple[str, ...] = ("genres",)
    max_tokens: int = 16
    max_list_values: int = 8
    numeric_buckets: int = 10
    # Beam DirectRunner workers: 1 runs in-process (fastest on small data), more use processes.
    beam_workers: int = 1
    # Further Beam pipeline arguments, e.g. ["--runner=DataflowRunner", "--project=..."].
    beam_args: Tuple[str, ...] = ()
    # A curated schema.pbtxt: ImportSchemaGen replaces SchemaGen, so drift in new data is caught.
    schema_path: Optional[str] = None
    # Teacher overrides (keys of models/teacher.py TeacherConfig, e.g. {epochs: 5, history: 100}).
    teacher: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # "minilm": the pretrained MiniLM-L6 BERT; "tiny": a random 2-layer BERT (tests only).
    teacher_encoder: str = "minilm"
    text_length: int = 32
    # Teacher scoring: per training interaction, this many sampled and this many hard negatives,
    # on this many Beam worker processes (each loads the teacher once). 50 rather than 20: the
    # KD gain on MovieLens-100K rose from 1.019-1.049x to 1.040-1.057x over three seeds.
    scoring_negatives: int = 50
    scoring_workers: int = 2
    # ... fewer negatives when a split's rows x (1 + 2N) would exceed this many scored candidates
    # (about 12 bytes each): the scorer's output stays proportionate at scale (N = 13 at 1M rows).
    scoring_candidate_budget: int = 20_000_000
    # Student overrides (keys of models/student.py StudentConfig: dim, history, alpha, beta, gamma,
    # temperature, hard_negatives, ...); the no-KD twin is the same with beta = gamma = 0.
    student: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # Compression overrides (keys of models/compression.py CompressionConfig: target_sparsity,
    # dense_sparsity, prune_epochs, ...).
    compression: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # The push gate: the int8 TFLite model's ndcg@10 must be >= (1 - tolerance) x student_kd's
    # and >= (1 - tolerance) x the last blessed model's.
    bless_tolerance: float = 0.02
    # ... and >= (1 + bless_margin) x the run's best non-personalized baseline (popularity, trending).
    bless_margin: float = 0.05  # negative: tolerate a model below them (tiny test data only)
    # Baselines: trending ranks by interactions in the last trending_days of training (temporal and
    # time_cutoff splits only); EASE's dense item-item inverse is skipped above ease_max_items.
    trending_days: int = 30
    ease_max_items: int = 20000

    def __post_init__(self):
        if not 0.0 <= self.max_bad_share < 1.0:
            raise ConfigError(f"max_bad_share must be in [0, 1), got {self.max_bad_share}")
        if self.beam_workers < 1 or self.scoring_workers < 1:
            raise ConfigError("beam_workers and scoring_workers must be at least 1")
        unknown = set(self.split) - {f.name for f in dataclasses.fields(SplitSpec)}
        if unknown:
            raise ConfigError(f"unknown split setting(s): {', '.join(sorted(unknown))}")
        if isinstance(self.cold_items, bool) or not isinstance(self.cold_items, (int, float)) \
                or not 0.0 <= self.cold_items < 1.0:
            raise ConfigError(f"cold_items must be a share of the catalog in [0, 1), got {self.cold_items!r}")
        from models.teacher import TeacherConfig

        unknown = set(self.teacher) - {f.name for f in dataclasses.fields(TeacherConfig)}
        if unknown:
            raise ConfigError(f"unknown teacher setting(s): {', '.join(sorted(unknown))}")
        try:
            TeacherConfig(**self.teacher)
        except ValueError as error:  # its messages name the setting ("teacher dim ...")
            raise ConfigError(str(error)) from None
        except TypeError as error:
            raise ConfigError(f"teacher: {error}") from None
        from models.student import StudentConfig

        unknown = set(self.student) - {f.name for f in dataclasses.fields(StudentConfig)}
        if unknown:
            raise ConfigError(f"unknown student setting(s): {', '.join(sorted(unknown))}")
        try:
            student = StudentConfig(**self.student)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"student: {error}") from None
        if self.scoring_negatives < 1 and student.beta > 0:
            raise ConfigError("scoring_negatives must be at least 1 for distillation (student beta > 0)")
        from models.compression import CompressionConfig

        unknown = set(self.compression) - {f.name for f in dataclasses.fields(CompressionConfig)}
        if unknown:
            raise ConfigError(f"unknown compression setting(s): {', '.join(sorted(unknown))}")
        try:
            CompressionConfig(**self.compression)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"compression: {error}") from None
        if not 0.0 <= self.bless_tolerance < 1.0:
            raise ConfigError(f"bless_tolerance must be in [0, 1), got {self.bless_tolerance}")
        if isinstance(self.bless_margin, bool) or not isinstance(self.bless_margin, (int, float)) \
                or not -1.0 < self.bless_margin < 10.0:
            raise ConfigError(f"bless_margin must be a number in (-1, 10), got {self.bless_margin!r}")
        for name in ("trending_days", "ease_max_items", "scoring_candidate_budget"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.teacher_encoder not in ("minilm", "tiny"):
            raise ConfigError(f"teacher_encoder must be minilm or tiny, got {self.teacher_encoder!r}")

    def split_spec(self, dataset: str) -> SplitSpec:
        """The dataset's default split with this config's overrides applied."""
        overrides = {**dict(self.split), **({"cold_items": float(self.cold_items)} if self.cold_items else {})}
        try:
            return dataclasses.replace(default_split(dataset), **overrides)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"split: {error}") from None

    def transform_config(self) -> Dict[str, Any]:
        """What Transform's preprocessing_fn receives as custom_config."""
        keys = ("item_text_columns", "user_text_columns", "list_columns", "max_tokens",
                "max_list_values", "numeric_buckets")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in
                ((k, getattr(self, k)) for k in keys)}

    def teacher_settings(self) -> Dict[str, Any]:
        """What TeacherTrainer receives (components/teacher/training.py)."""
        return {"teacher": dict(self.teacher), "encoder": self.teacher_encoder,
                "text_length": self.text_length, "item_text_columns": list(self.item_text_columns)}

    def beam_pipeline_args(self, workers: Optional[int] = None) -> list:
        workers = workers or self.beam_workers
        mode = "multi_processing" if workers > 1 else "in_memory"
        # Worker processes log every bundle at INFO to the terminal; the run's log has the rest.
        return [f"--direct_running_mode={mode}", f"--direct_num_workers={workers}",
                "--default_sdk_harness_log_level=ERROR", *self.beam_args]


def default_split(dataset: str) -> SplitSpec:
    """movielens-100k: the benchmark's per-user random 75/25, seed 42; own data: per-user time."""
    if dataset in BUILTIN_DATASETS:
        return SplitSpec(method="stratified", test_share=0.25, eval_share=0.1, seed=42)
    return SplitSpec(method="temporal", test_share=0.2, eval_share=0.1, seed=42)


def load_config(path: Optional[str]) -> PipelineConfig:
    if path is None:
        return PipelineConfig()
    try:
        with _open_text(path) as f:
            raw = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    return config_from_dict(raw, source=path)


def _open_text(path: str) -> io.TextIOWrapper:
    """As open(path, encoding="utf-8"), for a local path or gs://, with open()'s errors: YAML's
    messages name the file, and a missing one reads "[Errno 2] No such file or directory: ..."."""
    import tensorflow as tf  # loaded by storage (tf.io.gfile) anyway; its errors are not OSErrors

    try:
        if not storage.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if storage.isdir(path):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        data = io.BytesIO(storage.read_bytes(path))
    except tf.errors.OpError as error:  # e.g. access denied to a bucket
        raise OSError(error.message) from None
    data.name = path
    return io.TextIOWrapper(data, encoding="utf-8")


def config_from_dict(raw: Mapping[str, Any], source: str = "config") -> PipelineConfig:
    fields = {f.name: f for f in dataclasses.fields(PipelineConfig)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    values = {}
    for name, value in raw.items():
        default = fields[name].default
        if isinstance(default, tuple):
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise ConfigError(f"{source}: {name} must be a list, got {value!r}")
            value = tuple(value)
        elif name in ("split", "teacher", "student", "compression") and not isinstance(value, dict):
            raise ConfigError(f"{source}: {name} must be a mapping, got {value!r}")
        values[name] = value
    try:
        return PipelineConfig(**values)
    except TypeError as error:
        raise ConfigError(f"{source}: {error}") from None

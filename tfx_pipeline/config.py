"""The pipeline's one configuration object, loadable from a YAML or JSON file (`--config`).

One tree of frozen dataclasses: PipelineConfig holds the teacher's, the student's and the
compression's settings as TeacherConfig, StudentConfig and CompressionConfig, built and checked
once here; each default lives in its dataclass alone. `recdistill config --defaults` prints the
whole tree (tfx_pipeline/config_defaults.py); docs/configuration.md explains every setting.

Example file (every key optional; unknown keys are an error):

    split: {method: temporal, test_share: 0.2, eval_share: 0.1}
    max_bad_share: 0.005
    item_text_columns: [title, description]
    list_columns: [genres, tags]
    beam_workers: 2
"""

import dataclasses
import enum
import errno
import io
import math
import os
import re
import typing
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import yaml

from components.drift.comparison import DriftSettings
from components.ingest.ingest_settings import IngestSettings
from components.ingest.spans import SpanSettings
from components.ingest.splits import SplitSpec
from components.teacher.training import TeacherTrainerSettings
from models.compression_config import CompressionConfig
from models.student_config import StudentConfig
from models.teacher import MOVED_SETTINGS, TeacherConfig
from models.foundation import storage

BUILTIN_DATASETS = ("movielens-100k",)
# TFX allows pipeline names of up to 63 characters; they name ML Metadata contexts and Kubeflow jobs.
_PIPELINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


class ConfigError(ValueError):
    """A configuration file or value that cannot be used (exit code 2)."""


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    pipeline_name: str = "recdistill"
    # Split overrides (keys of SplitSpec): the default split depends on the dataset (default_split).
    split: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # The cold-item evaluation: this share of catalog items (a seeded draw) is held out of training;
    # all their interactions go to test, and the report ranks them apart (report.json "cold_items").
    cold_items: float = 0.0
    # Share of bad rows per input file that is dropped and counted; above it the run stops.
    max_bad_share: float = IngestSettings.max_bad_share
    item_text_columns: Tuple[str, ...] = tuple(IngestSettings.item_text_columns)
    user_text_columns: Tuple[str, ...] = tuple(IngestSettings.user_text_columns)
    # Columns holding several values separated by "|".
    list_columns: Tuple[str, ...] = tuple(IngestSettings.list_columns)
    max_tokens: int = 16
    max_list_values: int = 8
    numeric_buckets: int = 10
    # Beam DirectRunner workers: 1 runs in-process (fastest on small data), more use processes.
    beam_workers: int = 1
    # Further Beam pipeline arguments, e.g. ["--runner=DataflowRunner", "--project=..."].
    beam_args: Tuple[str, ...] = ()
    # A curated schema.pbtxt: ImportSchemaGen replaces SchemaGen, so drift in new data is caught.
    schema_path: Optional[str] = None
    # A config file gives a mapping of some of its keys ({epochs: 5, history: 100}); the rest keep
    # their defaults. So do student and compression.
    teacher: TeacherConfig = dataclasses.field(default_factory=TeacherConfig)
    # "minilm": the pretrained MiniLM-L6 BERT; "tiny": a random 2-layer BERT (tests only).
    teacher_encoder: str = TeacherTrainerSettings.encoder
    text_length: int = TeacherTrainerSettings.text_length
    # Teacher scoring: per training interaction, this many sampled and this many hard negatives,
    # on this many Beam worker processes (each loads the teacher once). 50 rather than 20: the
    # KD gain on MovieLens-100K rose from 1.019-1.049x to 1.040-1.057x over three seeds.
    scoring_negatives: int = 50
    scoring_workers: int = 2
    # ... fewer negatives when a split's rows x (1 + 2N) would exceed this many scored candidates
    # (about 12 bytes each): the scorer's output stays proportionate at scale (N = 13 at 1M rows).
    scoring_candidate_budget: int = 20_000_000
    # The no-KD twin is the student with beta = gamma = 0.
    student: StudentConfig = dataclasses.field(default_factory=StudentConfig)
    compression: CompressionConfig = dataclasses.field(default_factory=CompressionConfig)
    # The push gate: the int8 TFLite model's ndcg@10 must be >= (1 - tolerance) x student_kd's
    # and >= (1 - tolerance) x the last blessed model's.
    bless_tolerance: float = 0.02
    # ... and >= (1 + bless_margin) x the run's best non-personalized baseline (popularity, trending).
    bless_margin: float = 0.05  # negative: tolerate a model below them (tiny test data only)
    # Baselines: trending ranks by interactions in the last trending_days of training (temporal and
    # time_cutoff splits only); EASE's dense item-item inverse is skipped above ease_max_items.
    trending_days: int = 30
    ease_max_items: int = 20000
    # Input in spans (span-1/, span-2/, ... under --data; docs/spans.md): the training window and
    # the directories' pattern, and the drift check between the newest span and the one before.
    spans: SpanSettings = dataclasses.field(default_factory=SpanSettings)
    drift: DriftSettings = dataclasses.field(default_factory=DriftSettings)

    def __post_init__(self):
        """Every setting's type and range, checked before anything runs: ConfigError names the setting."""
        if not isinstance(self.pipeline_name, str) or not _PIPELINE_NAME.fullmatch(self.pipeline_name):
            raise ConfigError("pipeline_name must be 1 to 63 letters, digits, '_', '-' or '.', starting with a "
                              f"letter or digit, got {self.pipeline_name!r}")
        _share("max_bad_share", self.max_bad_share)
        _share("cold_items", self.cold_items, "a share of the catalog")
        _share("bless_tolerance", self.bless_tolerance)
        for name in ("item_text_columns", "user_text_columns", "list_columns", "beam_args"):
            values = getattr(self, name)
            if isinstance(values, str) or not isinstance(values, (list, tuple)) \
                    or not all(isinstance(v, str) and v.strip() for v in values):
                raise ConfigError(f"{name} must be a list of non-empty names, got {values!r}")
        flags = [a for a in self.beam_args if not a.startswith("--")]
        if flags:
            raise ConfigError(f"beam_args must be Beam flags (--name=value), got {flags[0]!r}")
        for name in ("max_tokens", "max_list_values", "numeric_buckets", "beam_workers", "scoring_workers",
                     "trending_days", "ease_max_items", "scoring_candidate_budget"):
            _integer(name, getattr(self, name), minimum=1)
        _integer("scoring_negatives", self.scoring_negatives, minimum=0)
        # BERT's [CLS] and [SEP] take two of the tokens; MiniLM has 512 positions.
        _integer("text_length", self.text_length, minimum=3, maximum=512)
        if self.schema_path is not None and not (isinstance(self.schema_path, str) and self.schema_path):
            raise ConfigError(f"schema_path must be a file path, got {self.schema_path!r}")
        if not isinstance(self.split, Mapping):
            raise ConfigError(f"split must be a mapping, got {self.split!r}")
        _check_split(self.split)
        # A mapping of some keys (a config file's section) becomes the section's dataclass, once.
        for name, settings_class in _SECTIONS.items():
            object.__setattr__(self, name, _section(name, settings_class, getattr(self, name)))
        if self.scoring_negatives < 1 and self.student.beta > 0:
            raise ConfigError("scoring_negatives must be at least 1 for distillation (student beta > 0)")
        if not _is_number(self.bless_margin) or not -1.0 < self.bless_margin < 10.0:
            raise ConfigError(f"bless_margin must be a number in (-1, 10), got {self.bless_margin!r}")
        if self.teacher_encoder not in ("minilm", "tiny"):
            raise ConfigError(f"teacher_encoder must be minilm or tiny, got {self.teacher_encoder!r}")
        if self.beam_args:
            _check_beam_args(self.beam_pipeline_args())

    def split_spec(self, dataset: str, spanned: bool = False) -> SplitSpec:
        """The dataset's default split with this config's overrides applied (spanned: input in spans)."""
        overrides = {**dict(self.split), **({"cold_items": float(self.cold_items)} if self.cold_items else {})}
        try:
            return dataclasses.replace(default_split(dataset, spanned), **overrides)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"split: {error}") from None

    def transform_config(self) -> Dict[str, Any]:
        """What Transform's preprocessing_fn receives as custom_config."""
        keys = ("item_text_columns", "user_text_columns", "list_columns", "max_tokens",
                "max_list_values", "numeric_buckets")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in
                ((k, getattr(self, k)) for k in keys)}

    def teacher_settings(self) -> TeacherTrainerSettings:
        """What TeacherTrainer receives (components/teacher/training.py)."""
        return TeacherTrainerSettings(teacher=self.teacher, encoder=self.teacher_encoder,
                                      text_length=self.text_length, item_text_columns=tuple(self.item_text_columns))

    def beam_pipeline_args(self, workers: Optional[int] = None) -> list:
        workers = workers or self.beam_workers
        mode = "multi_processing" if workers > 1 else "in_memory"
        # Worker processes log every bundle at INFO to the terminal; the run's log has the rest.
        args = [f"--direct_running_mode={mode}", f"--direct_num_workers={workers}",
                "--default_sdk_harness_log_level=ERROR", *self.beam_args]
        runners = [a.split("=", 1)[1] for a in self.beam_args if a.startswith("--runner=")]
        if not runners or runners[-1] in DIRECT_RUNNERS:
            args.append(DIRECT_STAGES_NOTHING)
        return args


# Without a dependency flag, TFX builds an sdist of itself for every Beam component, for remote
# workers to install (tfx.utils.dependency_utils.make_beam_dependency_flags): 52 MB in a /tmp
# directory it never removes and about 4 s, five times a run (46 GB of them had piled up here).
# The DirectRunner stages nothing (its workers are processes of this environment), so on it a flag
# that names no package skips the build; another runner (Dataflow: beam_args) keeps TFX's sdist.
DIRECT_RUNNERS = ("DirectRunner", "direct", "SwitchingDirectRunner")
DIRECT_STAGES_NOTHING = "--extra_package=direct-runner-stages-nothing"

# The nested sections and their dataclasses (defaults and range checks are theirs).
_SECTIONS = {"teacher": TeacherConfig, "student": StudentConfig, "compression": CompressionConfig,
             "spans": SpanSettings, "drift": DriftSettings}
# Settings a section no longer has, and where each is now (one line each).
_MOVED = {"teacher": MOVED_SETTINGS}


def _section(name: str, settings_class, value):
    """value (an instance of settings_class, or a mapping of some of its keys, nested sections' as
    mappings too) as settings_class; ConfigError names the section and the setting."""
    if isinstance(value, settings_class):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping, got {value!r}")
    _check_settings(name, "", settings_class, value)
    try:
        return _construct(settings_class, value)
    except ValueError as error:  # the teacher's messages name the setting ("teacher dim ...")
        raise ConfigError(str(error) if str(error).startswith(f"{name} ") else f"{name}: {error}") from None
    except TypeError as error:
        raise ConfigError(f"{name}: {error}") from None


def _check_settings(section: str, prefix: str, settings_class, overrides: Mapping[str, Any]) -> None:
    """The keys and types of a section's overrides, a nested section's (prefix "cloze.") in turn:
    an unknown key is an error, a moved one (e.g. teacher deep_weight) says where it is now."""
    fields = {f.name: f.type for f in dataclasses.fields(settings_class)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        moved = _MOVED.get(section, {}) if not prefix else {}
        lines = [moved[k] for k in unknown if k in moved]
        others = [k for k in unknown if k not in moved]
        if others:
            lines.append(f"unknown {section}{'.' + prefix[:-1] if prefix else ''} setting(s): {', '.join(others)}")
        raise ConfigError("; ".join(lines))
    nested = {name: kind for name, kind in fields.items() if dataclasses.is_dataclass(kind)}
    _check_types(section, settings_class, {k: v for k, v in overrides.items() if k not in nested}, prefix)
    for name, value in overrides.items():
        if name in nested and not isinstance(value, nested[name]):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{section} {prefix}{name} must be a mapping, got {value!r}")
            _check_settings(section, f"{prefix}{name}.", nested[name], value)


def _construct(settings_class, values: Mapping[str, Any]):
    """settings_class(**values), nested sections' mappings as their dataclasses first."""
    kinds = {f.name: f.type for f in dataclasses.fields(settings_class)}
    return settings_class(**{name: _construct(kinds[name], value)
                             if dataclasses.is_dataclass(kinds[name]) and isinstance(value, Mapping) else value
                             for name, value in values.items()})


def _is_number(value) -> bool:
    """A finite int or float; bool is an int to Python, never to a setting."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _share(name: str, value, what: str = "a share") -> None:
    if not _is_number(value) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be {what} in [0, 1), got {value!r}")


def _integer(name: str, value, minimum: Optional[int] = None, maximum: Optional[int] = None) -> None:
    """An int (not a bool, not 2.0) in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum) \
            or (maximum is not None and value > maximum):
        if maximum is not None:
            kind = f"an integer from {minimum} to {maximum}"
        elif minimum is not None:
            kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        else:
            kind = "an integer"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")


def _check_types(section: str, settings_class, overrides: Mapping[str, Any], prefix: str = "") -> None:
    """Each override has its field's type (bool, int, finite number, text; None where Optional; an
    Enum's value or a number where the field is either): the classes check ranges (and an Enum
    field's spelling), and a string or NaN where a number belongs would pass or fail there without
    naming the setting."""
    types = {f.name: f.type for f in dataclasses.fields(settings_class)}
    for name, value in overrides.items():
        kind, label = types.get(name), f"{section} {prefix}{name}"
        options = typing.get_args(kind) if typing.get_origin(kind) is typing.Union else (kind,)
        if value is None and type(None) in options:
            continue
        enums = [k for k in options if isinstance(k, type) and issubclass(k, enum.Enum)]
        if enums:  # e.g. half_life: a number or picked / none (the class says what an old spelling became)
            if value is not None and not isinstance(value, str) and not _is_number(value):
                choices = ", ".join(m.value for k in enums for m in k)
                raise ConfigError(f"{label} must be a number or one of {choices}, got {value!r}")
            continue
        if int in options and float in options:  # an integer or a share, or none (compression.rank): the class checks
            if not _is_number(value) and not (isinstance(value, str) and value.strip().lower() == "none"):
                raise ConfigError(f"{label} must be a number or none, got {value!r}")
            continue
        kind = next(k for k in options if k is not type(None))
        if kind is bool and not isinstance(value, bool):
            raise ConfigError(f"{label} must be true or false, got {value!r}")
        if kind is int:
            _integer(label, value)
        if kind is float and not _is_number(value):
            raise ConfigError(f"{label} must be a finite number, got {value!r}")
        if kind is str and not isinstance(value, str):
            raise ConfigError(f"{label} must be a name, got {value!r}")


def _check_split(split: Mapping[str, Any]) -> None:
    """The split overrides' names and types (SplitSpec checks the method and the shares' range)."""
    unknown = set(split) - {f.name for f in dataclasses.fields(SplitSpec)}
    if unknown:
        raise ConfigError(f"unknown split setting(s): {', '.join(sorted(unknown))}")
    _check_types("split", SplitSpec, split)
    for name, value in split.items():
        if name in ("test_share", "eval_share", "cold_items"):
            _share(f"split {name}", value)
        if name == "seed":  # numpy's RandomState takes 0 .. 2**32 - 1
            _integer("split seed", value, minimum=0, maximum=2**32 - 1)
    try:
        dataclasses.replace(SplitSpec(), **split)
    except ValueError as error:
        raise ConfigError(f"split: {error}") from None


def _check_beam_args(args: Sequence[str]) -> None:
    """Beam's own parsing of the flags, its one error line kept (it prints a 100-line usage and exits)."""
    import contextlib

    from apache_beam.options.pipeline_options import PipelineOptions

    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            PipelineOptions(list(args)).get_all_options()
    except SystemExit:
        last = (errors.getvalue().strip().splitlines() or ["invalid flags"])[-1]
        raise ConfigError(f"beam_args: {last.split('error: ', 1)[-1]}") from None


def default_split(dataset: str, spanned: bool = False) -> SplitSpec:
    """movielens-100k: the benchmark's per-user random 75/25, seed 42; own data: per-user time;
    data in spans: the newest span's latest 20% (docs/spans.md)."""
    if dataset in BUILTIN_DATASETS:
        return SplitSpec(method="stratified", test_share=0.25, eval_share=0.1, seed=42)
    if spanned:
        return SplitSpec(method="newest_span", test_share=0.2, eval_share=0.1, seed=42)
    return SplitSpec(method="temporal", test_share=0.2, eval_share=0.1, seed=42)


def load_config(path: Optional[str]) -> PipelineConfig:
    if path is None:
        return PipelineConfig()
    try:
        with _open_text(path) as f:
            raw = yaml.safe_load(f) or {}
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}); the config file must be UTF-8") from None
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: {_one_line(str(error))}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    return config_from_dict(raw, source=path)


def _open_text(path: str) -> io.TextIOWrapper:
    """As open(path, encoding="utf-8"), for a local path or gs://, with open()'s errors: YAML's
    messages name the file, and a missing one reads "[Errno 2] No such file or directory: ...".
    A local file is read without TensorFlow (`recdistill run` checks its config before loading it)."""
    if not storage.is_uri(path):
        return open(path, encoding="utf-8")  # noqa: SIM115  (the caller's `with` closes it)
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
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    except TypeError as error:
        raise ConfigError(f"{source}: {error}") from None


def _one_line(message: str) -> str:
    """YAML's messages point at the spot over several lines: one line, whitespace runs as one space."""
    return " ".join(message.split())

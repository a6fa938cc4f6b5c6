"""`recdistill config`: the default configuration round-trips, names every setting, and the DAG
passes the sections to the components through the one codec (models/settings_codec.py)."""

import dataclasses
import json
import re

import yaml

from components.drift.comparison import DriftSettings
from components.ingest.beam_ingest import IngestSettings
from components.ingest.spans import SpanSettings
from components.ingest.splits import SplitSpec
from components.teacher.training import TeacherTrainerSettings
from models import settings_codec
from models.compression import CompressionConfig
from models.student import StudentConfig
from tfx_pipeline import cli, config_defaults
from tfx_pipeline.config import PipelineConfig, config_from_dict, load_config
from tfx_pipeline.pipeline import create_pipeline


def _defaults(capsys) -> str:
    assert cli.main(["config", "--defaults"]) == 0
    return capsys.readouterr().out


def test_the_defaults_given_as_config_change_nothing(capsys, tmp_path):
    text = _defaults(capsys)
    path = tmp_path / "defaults.yaml"
    path.write_text(text)
    assert load_config(str(path)) == PipelineConfig()
    assert config_from_dict(yaml.safe_load(text)) == PipelineConfig()
    assert cli.main(["config", "--check", str(path)]) == 0


def test_every_setting_of_the_tree_is_written_with_a_comment(capsys):
    lines = _defaults(capsys).splitlines()

    def written(settings, start: int, indent: str):
        """Every field of settings below lines[start], at this indent, after a comment line."""
        for inner in dataclasses.fields(settings):
            at = next(i for i, line in enumerate(lines[start:], start) if re.match(rf"{indent}{inner.name}:", line))
            assert lines[at - 1].startswith(f"{indent}# "), inner.name
            value = getattr(settings, inner.name)
            if dataclasses.is_dataclass(value):  # the teacher's match_wide and cloze: a nested mapping
                assert lines[at] == f"{indent}{inner.name}:", inner.name
                written(value, at, indent + "  ")

    config = PipelineConfig()
    for field in dataclasses.fields(PipelineConfig):
        at = next(i for i, line in enumerate(lines) if re.match(rf"{field.name}:", line))
        assert lines[at - 1].startswith("# "), field.name
        section = getattr(config, field.name)
        if dataclasses.is_dataclass(section):
            written(section, at, "  ")
    for inner in dataclasses.fields(SplitSpec):  # the split's defaults depend on the data: commented out
        assert any(line.startswith(f"  # {inner.name}: ") for line in lines), inner.name


def test_the_comments_name_the_settings_docs_configuration_lists():
    config = PipelineConfig()
    classes = {"": PipelineConfig, "split": SplitSpec, "teacher": type(config.teacher),
               "teacher.match_wide": type(config.teacher.match_wide), "teacher.cloze": type(config.teacher.cloze),
               "teacher.warm_start": type(config.teacher.warm_start),
               "student": StudentConfig, "compression": CompressionConfig, "spans": SpanSettings,
               "drift": DriftSettings}
    with open(f"{config_defaults.__file__.rsplit('/', 2)[0]}/docs/configuration.md", encoding="utf-8") as f:
        documented = set(re.findall(r"^\| `(\w+)`", f.read(), flags=re.M))
    for section, settings_class in classes.items():
        names = {f.name for f in dataclasses.fields(settings_class)}
        assert set(config_defaults.SECTIONS[section]) == names, section
        assert names - {"test_from", "eval_from"} <= documented, section  # one row names those two


def test_a_bad_file_is_one_line_naming_the_setting(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("compression: {target_sparsity: 1.0}\n")
    assert cli.main(["config", "--check", str(path)]) == 2
    assert capsys.readouterr().err.strip() == \
        f"recdistill: error: {path}: compression: target_sparsity must be in [0, 1), got 1.0"


def test_the_dag_passes_every_section_setting_through_the_codec(tmp_path):
    config = config_from_dict({"teacher": {"epochs": 5}, "student": {"beta": 0.5}, "teacher_encoder": "tiny",
                               "compression": {"qat_epochs": 1}, "item_text_columns": ["title", "plot"]})
    pipeline = create_pipeline(config, "/data/own", str(tmp_path), "digest", str(tmp_path / "root"),
                               str(tmp_path / "m.sqlite"))
    parameters = {c.id: c.exec_properties for c in pipeline.components}
    teacher = settings_codec.from_json(TeacherTrainerSettings, parameters["TeacherTrainer"]["settings_json"])
    assert teacher == config.teacher_settings() and teacher.teacher.epochs == 5 and teacher.encoder == "tiny"
    student = json.loads(parameters["StudentTrainer"]["custom_config"])["student"]
    # recency_prior "auto" is resolved for the split: own data's per-user temporal split has no "now"
    assert config.student == StudentConfig(beta=0.5)
    assert settings_codec.from_dict(StudentConfig, student) == StudentConfig(beta=0.5, recency_prior="none")
    compression = json.loads(parameters["StudentCompressor"]["custom_config"])["compression"]
    assert settings_codec.from_dict(CompressionConfig, compression) == CompressionConfig(qat_epochs=1)
    ingest = settings_codec.from_json(IngestSettings, parameters["InteractionsExampleGen"]["settings_json"])
    assert ingest.split == config.split_spec("/data/own") and ingest.item_text_columns == ("title", "plot")

"""The codec of settings dataclasses at the TFX boundaries: every field, and back unchanged."""

import json

import pytest

from components.ingest.beam_ingest import IngestSettings
from components.ingest.splits import SplitSpec
from models import settings_codec
from models.student import StudentConfig


def test_nested_settings_round_trip_with_tuples_and_optionals():
    settings = IngestSettings(split=SplitSpec(method="time_cutoff", test_from=1_700_000_000),
                              item_text_columns=("title", "plot"), list_columns=())
    text = settings_codec.to_json(settings)
    assert json.loads(text)["split"]["test_from"] == 1_700_000_000
    assert settings_codec.from_json(IngestSettings, text) == settings


def test_every_field_is_written_and_missing_ones_take_the_class_defaults():
    assert set(settings_codec.to_dict(StudentConfig(beta=0.5))) == set(StudentConfig.__dataclass_fields__)
    assert settings_codec.from_dict(StudentConfig, {"beta": 0.5}) == StudentConfig(beta=0.5)
    # floats survive exactly (the trainers' figures must not move)
    value = StudentConfig(learning_rate=0.1 + 0.2, soft_scale=1 / 3)
    assert settings_codec.from_json(StudentConfig, settings_codec.to_json(value)) == value


def test_unknown_keys_and_bad_values_are_errors():
    with pytest.raises(TypeError, match="unknown setting.*width"):
        settings_codec.from_dict(StudentConfig, {"width": 3})
    with pytest.raises(ValueError, match="dim must be at least 1"):
        settings_codec.from_dict(StudentConfig, {"dim": 0})


def test_enum_fields_are_their_values_and_nested_settings_round_trip():
    from models.teacher import HalfLife, TeacherConfig
    from models.teacher_objectives import Cloze, MatchWide

    for half_life in (HalfLife.PICKED, HalfLife.NONE, 30.0):
        settings = TeacherConfig(objective="cloze", half_life=half_life, cloze=Cloze(mask_share=0.3),
                                 match_wide=MatchWide(deep_weight=0.5))
        values = settings_codec.to_dict(settings)
        assert values["half_life"] == (half_life.value if isinstance(half_life, HalfLife) else half_life)
        assert values["cloze"]["mask_share"] == 0.3 and values["match_wide"] == {"deep_weight": 0.5}
        assert settings_codec.from_json(TeacherConfig, settings_codec.to_json(settings)) == settings
    assert settings_codec.from_dict(TeacherConfig, {"half_life": "none"}).half_life is HalfLife.NONE
    with pytest.raises(TypeError, match="unknown setting.*deep_weight"):  # a flat key of before issue 24
        settings_codec.from_dict(TeacherConfig, {"deep_weight": 0.5})

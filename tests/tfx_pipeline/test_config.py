"""The configuration file: defaults per dataset, overrides, and clear errors."""

import pytest

from tfx_pipeline.config import ConfigError, PipelineConfig, load_config


def test_default_splits_per_dataset():
    config = PipelineConfig()
    assert config.split_spec("movielens-100k").method == "stratified"
    assert config.split_spec("movielens-100k").seed == 42
    assert config.split_spec("/data/shop").method == "temporal"


def test_yaml_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("split: {method: time_cutoff, test_share: 0.3}\nlist_columns: [tags]\nbeam_workers: 2\n")
    config = load_config(str(path))
    assert config.split_spec("/data").method == "time_cutoff" and config.split_spec("/data").test_share == 0.3
    assert config.list_columns == ("tags",)
    assert config.beam_pipeline_args()[:2] == ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def test_json_works_too(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"max_bad_share": 0.05}')
    assert load_config(str(path)).max_bad_share == 0.05


@pytest.mark.parametrize("text, message", [
    ("colour: blue\n", "unknown setting"),
    ("split: {method: random}\n", "split"),
    ("split: {ratio: 0.5}\n", "unknown split setting"),
    ("max_bad_share: 2\n", "max_bad_share"),
    ("list_columns: genres\n", "must be a list"),
    ("- a\n- b\n", "mapping"),
    ("a: [unclosed\n", "c.yaml"),
    ("student: {width: 3}\n", "unknown student setting"),
    ("student: {hard_negatives: sampled}\n", "hard_negatives"),
    ("student: {temperature: 0}\n", "temperature"),
    ("student: 3\n", "must be a mapping"),
    ("student: {alpha: 0}\n", "alpha must be positive"),
    ("student: {beta: -1}\n", "must not be negative"),
    ("student: {dim: 0}\n", "dim must be at least 1"),
    ("scoring_negatives: 0\n", "scoring_negatives"),
    ("compression: {sparsity: 0.5}\n", "unknown compression setting"),
    ("compression: {target_sparsity: 1.0}\n", "target_sparsity must be in"),
    ("compression: {ramp_epochs: 9, prune_epochs: 4}\n", "must not exceed prune_epochs"),
    ("compression: 0.5\n", "must be a mapping"),
    ("bless_tolerance: 1.5\n", "bless_tolerance"),
    ("bless_margin: -1\n", "bless_margin must be a number in"),
    ("bless_margin: 10\n", "bless_margin must be a number in"),
    ("bless_margin: high\n", "bless_margin must be a number in"),
    ("trending_days: 0\n", "trending_days must be a positive integer"),
    ("ease_max_items: 2.5\n", "ease_max_items must be a positive integer"),
    ("teacher: {layers: 0}\n", "teacher layers must be a positive integer"),
    ("teacher: {dim: 10, heads: 3}\n", "must be a multiple of heads"),
    ("teacher: {cloze: {mask_share: 1.0}}\n", r"c\.yaml: teacher cloze\.mask_share must be in \[0, 1\), got 1\.0$"),
    ("teacher: {cloze: {mask_share: lots}}\n", r"c\.yaml: teacher cloze\.mask_share must be a finite number, got"),
    ("teacher: {cloze: {masks: 2}}\n", r"c\.yaml: unknown teacher\.cloze setting\(s\): masks$"),
    ("teacher: {cloze: 3}\n", r"c\.yaml: teacher cloze must be a mapping, got 3$"),
    ("teacher: {match_wide: {deep_weight: -1}}\n", r"c\.yaml: teacher match_wide\.deep_weight must be a number >= 0"),
    ("teacher: {match_wide: {deep_weight: high}}\n", "teacher match_wide.deep_weight must be a finite number"),
    # settings that moved (issue 24): one line saying where each is now
    ("teacher: {deep_weight: 0.5}\n",
     r"c\.yaml: teacher deep_weight is now teacher\.match_wide\.deep_weight \(null: picked on eval\)$"),
    ("teacher: {mask_share: 0.3}\n", r"c\.yaml: teacher mask_share is now teacher\.cloze\.mask_share$"),
    ("teacher: {gate: 1, depth: 2}\n", r"teacher gate is now teacher\.cloze\.gate; unknown teacher setting\(s\): depth"),
    ("compression: {rank: 0}\n", "compression: rank must be at least 1, got 0"),
    ("compression: {rank: 1.5}\n", r"compression: a rank given as a share of dim must be in \(0, 1\), got 1.5"),
    ("compression: {rank: full}\n", "compression rank must be a number or none, got 'full'"),
    ("teacher: {half_life: -1}\n", r"c\.yaml: teacher half_life -1 \(picked on eval\) is now half_life: picked$"),
    ("teacher: {half_life: null}\n", r"c\.yaml: teacher half_life null \(no decay\) is now half_life: none$"),
    ("teacher: {half_life: 0}\n", "teacher half_life must be a positive number of items, picked or none, got 0"),
    ("teacher: {half_life: soon}\n", "teacher half_life must be a positive number of items, picked or none, got 'so"),
    ("teacher: {half_life: true}\n", "teacher half_life must be a number or one of picked, none, got True"),
    ("teacher: {sequence: 60, history: 50}\n", "must not exceed history"),
    ("teacher: {depth: 2}\n", "unknown teacher setting"),
    ("student: {soft_loss: l1}\n", "soft_loss must be mse or kl"),
    ("student: {soft_scale: 0}\n", "soft_scale must be positive"),
    ("pipeline_name: 5\n", r"^.*c\.yaml: pipeline_name must be 1 to 63 letters.*got 5$"),
    ("pipeline_name: a/b\n", "pipeline_name must be"),
    ("max_bad_share: lots\n", r"c\.yaml: max_bad_share must be a share in \[0, 1\), got 'lots'$"),
    ("max_bad_share: .nan\n", "max_bad_share must be a share in"),
    ("cold_items: true\n", "cold_items must be a share of the catalog"),
    ("max_tokens: -1\n", r"c\.yaml: max_tokens must be a positive integer, got -1$"),
    ("numeric_buckets: -3\n", r"c\.yaml: numeric_buckets must be a positive integer, got -3$"),
    ("max_list_values: 0\n", "max_list_values must be a positive integer"),
    ("text_length: -5\n", r"c\.yaml: text_length must be an integer from 3 to 512, got -5$"),
    ("text_length: 1000\n", "text_length must be an integer from 3 to 512"),
    ("beam_workers: 2.5\n", r"c\.yaml: beam_workers must be a positive integer, got 2\.5$"),
    ("beam_workers: true\n", "beam_workers must be a positive integer, got True"),
    ("scoring_workers: 0\n", "scoring_workers must be a positive integer"),
    ("scoring_negatives: -2\n", "scoring_negatives must be an integer of at least 0"),
    ("item_text_columns: [title, 3]\n", "item_text_columns must be a list of non-empty names"),
    ("list_columns: ['']\n", "list_columns must be a list of non-empty names"),
    ("beam_args: [runner=DataflowRunner]\n", "beam_args must be Beam flags"),
    ("beam_args: [--direct_running_mode=fast]\n", r"c\.yaml: beam_args: argument --direct_running_mode: invalid choice"),
    ("schema_path: 5\n", "schema_path must be a file path"),
    ("split: {test_share: lots}\n", "split test_share must be a finite number, got .lots."),
    ("split: {eval_share: 1.5}\n", "split eval_share must be a share in"),
    ("split: {seed: -1}\n", "split seed must be an integer from 0 to"),
    ("split: {seed: 1.5}\n", "split seed must be an integer"),
    ("split: {test_from: soon}\n", "split test_from must be an integer, got 'soon'"),
    ("split: {method: 3}\n", "split method must be a name"),
    ("student: {alpha: lots}\n", r"c\.yaml: student alpha must be a finite number, got 'lots'$"),
    ("student: {temperature: .nan}\n", "student temperature must be a finite number, got nan"),
    ("student: {epochs: 2.5}\n", "student epochs must be an integer, got 2.5"),
    ("student: {refit: 1}\n", "student refit must be true or false, got 1"),
    ("teacher: {l2: high}\n", "teacher l2 must be a finite number"),
    ("teacher: {objective: 3}\n", "teacher objective must be a name"),
    ("compression: {prune_epochs: true}\n", "compression prune_epochs must be an integer, got True"),
    ("bless_tolerance: .inf\n", "bless_tolerance must be a share in"),
    ("ease_max_items: true\n", "ease_max_items must be a positive integer"),
])
def test_bad_configs_are_reported_with_the_file(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path)).split_spec("/data")


def test_optional_and_integer_overrides_of_float_settings_are_accepted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("teacher: {l2: null, half_life: 30}\nstudent: {alpha: 2}\nsplit: {test_from: null, seed: 7}\n")
    config = load_config(str(path))
    assert (config.teacher.l2, config.teacher.half_life, config.student.alpha) == (None, 30, 2)
    assert config.split_spec("/data").seed == 7


def test_half_life_is_written_picked_or_none_in_yaml(tmp_path):
    from models import settings_codec
    from models.teacher import HalfLife

    path = tmp_path / "c.yaml"
    for text, expected in (("picked", HalfLife.PICKED), ("none", HalfLife.NONE), ("12.5", 12.5)):
        path.write_text(f"teacher: {{half_life: {text}}}\n")
        config = load_config(str(path))
        assert config.teacher.half_life == expected
        assert settings_codec.to_dict(config.teacher)["half_life"] == (expected.value if text != "12.5" else 12.5)
    assert PipelineConfig().teacher.half_life is HalfLife.PICKED


def test_the_nested_teacher_config_round_trips_yaml_to_json(tmp_path):
    """YAML -> PipelineConfig -> the JSON TeacherTrainer receives -> the same TeacherConfig."""
    from components.teacher.training import TeacherTrainerSettings
    from models import settings_codec
    from models.teacher import HalfLife
    from models.teacher_objectives import Cloze, MatchWide

    path = tmp_path / "c.yaml"
    path.write_text("teacher:\n  objective: cloze\n  cloze: {mask_share: 0.3, gate: 0.5}\n"
                    "  match_wide: {deep_weight: 0.75}\n  half_life: none\n  epochs: 5\n")
    config = load_config(str(path))
    assert config.teacher.cloze == Cloze(mask_share=0.3, gate=0.5)
    assert config.teacher.chosen_objective is config.teacher.cloze
    assert config.teacher.match_wide == MatchWide(deep_weight=0.75) and config.teacher.half_life is HalfLife.NONE
    text = settings_codec.to_json(config.teacher_settings())
    assert '"half_life": "none"' in text and '"cloze": {"cloze_weight": 0.5, "future_share": 0.2, "gate": 0.5' in text
    assert settings_codec.from_json(TeacherTrainerSettings, text).teacher == config.teacher
    # a nested section given in part keeps the rest of its defaults
    assert PipelineConfig(teacher={"cloze": {"gate": 1}}).teacher.cloze == Cloze(gate=1)


def test_sections_are_their_dataclasses_with_the_keys_given_and_the_rest_default():
    from models.compression import CompressionConfig
    from models.student import StudentConfig
    from models.teacher import TeacherConfig
    from tfx_pipeline.config import config_from_dict

    config = config_from_dict({"teacher": {"epochs": 5}, "student": {"beta": 0.0}, "compression": {}})
    assert config.teacher == TeacherConfig(epochs=5) and config.student == StudentConfig(beta=0.0)
    assert config.compression == CompressionConfig()
    assert PipelineConfig(student={"dim": 8}) == PipelineConfig(student=StudentConfig(dim=8))


def test_baseline_settings_have_defaults_and_overrides(tmp_path):
    config = PipelineConfig()
    assert (config.bless_margin, config.trending_days, config.ease_max_items) == (0.05, 30, 20000)
    path = tmp_path / "c.yaml"
    path.write_text("bless_margin: 0\ntrending_days: 7\nease_max_items: 5000\n")
    config = load_config(str(path))
    assert (config.bless_margin, config.trending_days, config.ease_max_items) == (0, 7, 5000)


def test_a_config_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes("pipeline_name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"^{path}: not UTF-8 text \(byte 18\); the config file must be UTF-8$"):
        load_config(str(path))


def test_yaml_syntax_errors_are_one_line_naming_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: [unclosed\n")
    with pytest.raises(ConfigError) as error:
        load_config(str(path))
    assert "\n" not in str(error.value) and str(error.value).startswith(f"{path}: ")


def test_columns_named_by_the_config_must_be_in_the_data(write_input, tmp_path):
    from tfx_pipeline.config import config_from_dict
    from tfx_pipeline.config_columns import check_columns

    data = write_input(tmp_path / "d", "user_id,item_id,timestamp\nu1,i1,1\n")  # items: title, year, genres
    check_columns(PipelineConfig(), data)
    check_columns(config_from_dict({"item_text_columns": ["title", "year"], "user_text_columns": ["gender"],
                                    "list_columns": ["genres", "gender"]}), data)
    for settings, message in (
            ({"item_text_columns": ["summary"]}, r"^c\.yaml: item_text_columns: 'summary' is not a column of items\.csv "
                                                 r"\(their feature columns: .*items\.csv: title, year, genres\)$"),
            ({"user_text_columns": ["title"]}, "user_text_columns: 'title' is not a column of users.csv"),
            ({"list_columns": ["tags"]}, "list_columns: 'tags' is not a column of users.csv or items.csv")):
        with pytest.raises(ConfigError, match=message):
            check_columns(config_from_dict(settings), data, source="c.yaml")
    # Own data without genres: the default list_columns is not an error.
    no_genres = write_input(tmp_path / "n", "user_id,item_id,timestamp\nu1,i1,1\n", items="item_id,title\ni1,A\n")
    check_columns(PipelineConfig(), no_genres)
    check_columns(config_from_dict({"item_text_columns": ["summary"]}), str(tmp_path / "absent"))  # left to ExampleGen


def test_the_compression_rank_is_none_an_integer_or_a_share_of_dim(tmp_path):
    path = tmp_path / "c.yaml"
    for text, expected in (("none", None), ("null", None), ("16", 16), ("0.5", 0.5)):
        path.write_text(f"compression: {{rank: {text}}}\n")
        assert load_config(str(path)).compression.rank == expected

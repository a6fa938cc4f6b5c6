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
    ("teacher: {mask_share: 1.0}\n", "teacher mask_share must be in"),
    ("teacher: {half_life: 0}\n", "teacher half_life must be positive"),
    ("teacher: {sequence: 60, history: 50}\n", "must not exceed history"),
    ("teacher: {depth: 2}\n", "unknown teacher setting"),
    ("student: {soft_loss: l1}\n", "soft_loss must be mse or kl"),
    ("student: {soft_scale: 0}\n", "soft_scale must be positive"),
])
def test_bad_configs_are_reported_with_the_file(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path)).split_spec("/data")


def test_baseline_settings_have_defaults_and_overrides(tmp_path):
    config = PipelineConfig()
    assert (config.bless_margin, config.trending_days, config.ease_max_items) == (0.05, 30, 20000)
    path = tmp_path / "c.yaml"
    path.write_text("bless_margin: 0\ntrending_days: 7\nease_max_items: 5000\n")
    config = load_config(str(path))
    assert (config.bless_margin, config.trending_days, config.ease_max_items) == (0, 7, 5000)

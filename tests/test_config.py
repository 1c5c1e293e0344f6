"""Typed config loading: types checked, unknown keys rejected with their dotted path."""

import pytest

from cityseg.config import ConfigError, TrainConfig, from_mapping, load_train_config, to_mapping


def test_defaults_roundtrip_through_mapping():
    cfg = TrainConfig()
    assert from_mapping(TrainConfig, to_mapping(cfg)) == cfg


def test_unknown_nested_key_names_its_path():
    with pytest.raises(ConfigError, match=r"data: unknown key\(s\) hieght"):
        from_mapping(TrainConfig, {"data": {"hieght": 3}})


@pytest.mark.parametrize("data, message", [
    ({"epochs": "ten"}, "epochs: expected an integer"),
    ({"epochs": 0}, "epochs must be positive"),
    ({"data": {"split": "random"}}, "data.split: 'random' is not one of"),
    ({"augment": {"contrast": [0.9]}}, "augment.contrast: expected 2 values"),
    ({"augment": {"hflip_prob": 1.5}}, "probabilities must be within"),
    ({"optimizer": {"learning_rate": True}}, "expected a number"),
])
def test_bad_values_are_rejected(data, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(TrainConfig, data)


def test_yaml_file_and_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: v1\ndata:\n  height: 128\n  width: 128\nschedule:\n  dropout: {13: 0.35}\n")
    cfg = load_train_config(path, data__root="/data/cityscapes", epochs=5)
    assert (cfg.name, cfg.data.height, cfg.data.root, cfg.epochs) == ("v1", 128, "/data/cityscapes", 5)
    assert cfg.schedule.dropout == {13: 0.35}
    assert isinstance(cfg.augment.scale_range, tuple)


def test_missing_and_invalid_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_train_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_train_config(bad)


def test_shipped_configs_are_found_and_load():
    from cityseg.config import shipped_config

    assert load_train_config(shipped_config("demo.yaml")).name == "demo"
    assert shipped_config("seed/v01.yaml").is_file()
    with pytest.raises(ConfigError, match="shipped config 'nope.yaml' not found"):
        shipped_config("nope.yaml")

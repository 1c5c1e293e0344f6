"""Typed config loading: types checked, unknown keys rejected with their dotted path."""

import pytest

from cityseg.config import ConfigError, from_mapping, to_mapping
from cityseg.training.config import TrainConfig, load_train_config


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
    from cityseg.training.config import shipped_config

    assert load_train_config(shipped_config("demo.yaml")).name == "demo"
    assert shipped_config("seed/v01.yaml").is_file()
    with pytest.raises(ConfigError, match="shipped config 'nope.yaml' not found"):
        shipped_config("nope.yaml")


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_is_merged_underneath_recursively_and_overrides_win(tmp_path):
    write(tmp_path / "common" / "root.yaml", "epochs: 7\ndata: {height: 64, width: 64}\n"
          "model: {name: unet, params: {depth: 3, dropout: 0.3}}\n")
    write(tmp_path / "common" / "mid.yaml", "base: root.yaml\nseed: 5\ndata: {width: 128}\n")
    leaf = write(tmp_path / "leaf.yaml", "base: common/mid.yaml\nname: leaf\n"
                 "model: {params: {dropout: 0.0}}\nseed: 9\n")
    cfg = load_train_config(leaf)
    assert (cfg.name, cfg.epochs, cfg.seed) == ("leaf", 7, 9)
    assert (cfg.data.height, cfg.data.width) == (64, 128)
    assert cfg.model.name == "unet" and cfg.model.params == {"depth": 3, "dropout": 0.0}


def test_a_base_cycle_is_refused_with_the_chain(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match=r"a\.yaml -> .*b\.yaml -> .*a\.yaml is a cycle"):
        load_train_config(tmp_path / "a.yaml")
    write(tmp_path / "self.yaml", "base: self.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_train_config(tmp_path / "self.yaml")


def test_an_unknown_key_in_a_base_names_that_file_and_its_dotted_path(tmp_path):
    write(tmp_path / "base.yaml", "data: {hieght: 3}\n")
    leaf = write(tmp_path / "leaf.yaml", "base: base.yaml\nname: x\n")
    with pytest.raises(ConfigError, match=r"base\.yaml\.data: unknown key\(s\) hieght"):
        load_train_config(leaf)
    write(tmp_path / "leaf2.yaml", "base: base2.yaml\naugment: {flip: 1}\n")
    write(tmp_path / "base2.yaml", "name: ok\n")
    with pytest.raises(ConfigError, match=r"leaf2\.yaml\.augment: unknown key\(s\) flip"):
        load_train_config(tmp_path / "leaf2.yaml")


def test_a_missing_or_malformed_base_is_refused(tmp_path):
    leaf = write(tmp_path / "leaf.yaml", "base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"leaf\.yaml\.base: .*nowhere\.yaml does not exist"):
        load_train_config(leaf)
    write(tmp_path / "leaf.yaml", "base: [a, b]\n")
    with pytest.raises(ConfigError, match="expected the relative path"):
        load_train_config(leaf)


def test_class_space_takes_a_built_in_set_or_a_label_set_yaml(tmp_path):
    assert from_mapping(TrainConfig, {"data": {"class_space": "cityscapes-labelid"}}).data.class_space
    with pytest.raises(ConfigError, match=r"data.class_space: nope: not a built-in label set; use cityscapes"):
        from_mapping(TrainConfig, {"data": {"class_space": "nope"}})


def test_a_label_set_path_is_relative_to_the_config_naming_it_even_in_a_base(tmp_path):
    (tmp_path / "sets").mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "sets" / "two.yaml").write_text(
        "classes:\n  - {id: 0, name: a, color: [1, 2, 3]}\n  - {id: 1, name: b, color: [4, 5, 6]}\n")
    (tmp_path / "base.yaml").write_text("data:\n  class_space: sets/two.yaml\n")
    (tmp_path / "runs" / "exp.yaml").write_text("base: ../base.yaml\nepochs: 3\n")
    cfg = load_train_config(tmp_path / "runs" / "exp.yaml")
    assert cfg.data.class_space == str((tmp_path / "sets" / "two.yaml").resolve())
    (tmp_path / "runs" / "own.yaml").write_text("data:\n  class_space: cityscapes\n")
    assert load_train_config(tmp_path / "runs" / "own.yaml").data.class_space == "cityscapes"
    (tmp_path / "runs" / "bad.yaml").write_text("data:\n  class_space: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"runs/missing\.yaml: no such file; check the path"):
        load_train_config(tmp_path / "runs" / "bad.yaml")

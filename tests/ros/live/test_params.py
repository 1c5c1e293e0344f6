"""Node parameters: defaults, validation errors, the shipped params file."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from cityseg.config import ConfigError
from cityseg.inference.backends import BACKEND_CHOICES
from cityseg.labels import ID_SPACES
from cityseg.ros.core.outputs import SWITCHABLE
from cityseg.ros.live.params import NodeParams, check_params_file, load_node_params, parameter_specs

REPO = Path(__file__).resolve().parents[3]
PARAMS_FILE = REPO / "config" / "segmentation.yaml"


def test_defaults_with_a_model_are_valid():
    params = load_node_params({"model": "/models/x"})
    assert params.backend == "auto" and params.qos_reliability == "best_effort" and params.qos_depth == 1
    config = params.processor_config()
    assert config.id_space == "auto" and "mask" in config.outputs and config.overlay_alpha == 0.5
    assert "confidence" not in config.outputs  # off by default
    # the compressed copies are on (the node encodes each only while it has a subscriber)
    assert {"mask/compressed", "color_mask/compressed", "overlay/compressed"} <= config.outputs
    assert "confidence/compressed" not in config.outputs and config.jpeg_quality == 80


def test_a_compressed_image_output_alone_is_enough():
    only = {o.param: o.suffix == "overlay/compressed" for o in SWITCHABLE}
    assert load_node_params({"model": "m", **only}).outputs() == {"overlay/compressed"}


@pytest.mark.parametrize("values, message", [
    ({}, "model is required"),
    ({"model": "m", "backend": "cuda"}, "backend: 'cuda' is not one of"),
    ({"model": "m", "id_space": "labelids"}, "id_space: 'labelids' is not one of"),
    ({"model": "m", "qos_depth": 0}, "qos_depth must be >= 1"),
    ({"model": "m", "qos_depth": 2.5}, "qos_depth: expected an integer"),
    ({"model": "m", "qos_reliability": "best-effort"}, "qos_reliability: 'best-effort' is not one of"),
    ({"model": "m", "overlay_alpha": 1.5}, "overlay_alpha must be within [0, 1]"),
    ({"model": "m", "output_scale": 0.0}, "output_scale must be within (0, 1]"),
    ({"model": "m", "max_rate_hz": -1.0}, "max_rate_hz must be >= 0"),
    ({"model": "m", "publish_mask": "yes"}, "publish_mask: expected true or false"),
    ({"model": "m", "publish_mask": False, "publish_color": False, "publish_overlay": False,
      "publish_mask_compressed": False, "publish_color_compressed": False, "publish_overlay_compressed": False},
     "enable at least one output"),
    ({"model": "m", "jpeg_quality": 0}, "jpeg_quality must be within [1, 100]"),
    ({"model": "m", "diagnostics_period": 0.0}, "diagnostics_period"),
    ({"model": "m", "modle": "x"}, "unknown key(s) modle"),
])
def test_bad_values_are_refused_naming_the_parameter(values, message):
    with pytest.raises(ConfigError) as exc:
        load_node_params(values, where="/cam/segmentation parameters")
    assert message in str(exc.value)
    assert str(exc.value).startswith("/cam/segmentation parameters")


def test_integers_are_accepted_for_float_parameters():
    """A YAML `overlay_alpha: 1` or `max_rate_hz: 10` arrives as an int."""
    params = load_node_params({"model": "m", "overlay_alpha": 1, "max_rate_hz": 10})
    assert params.overlay_alpha == 1.0 and params.max_rate_hz == 10.0


def test_literal_choices_match_the_rest_of_cityseg():
    hints = typing.get_type_hints(NodeParams)
    assert set(typing.get_args(hints["backend"])) == set(BACKEND_CHOICES)
    assert set(typing.get_args(hints["id_space"])) == {"auto", *ID_SPACES}


def test_every_parameter_is_declared_with_a_description():
    specs = parameter_specs()
    assert [s.name for s in specs] == [f.name for f in dataclasses.fields(NodeParams)]
    assert all(s.description for s in specs)
    assert {type(s.default) for s in specs} <= {str, bool, int, float, list}


def test_shipped_params_file_is_valid_and_complete():
    params = check_params_file(str(PARAMS_FILE), {"model": "/models/x"})
    data = yaml.safe_load(PARAMS_FILE.read_text())["/**"]["ros__parameters"]
    assert set(data) == {s.name for s in parameter_specs()} - {"model"}
    defaults = {s.name: s.default for s in parameter_specs()}
    assert all(data[k] == defaults[k] for k in data), "config/segmentation.yaml drifted from NodeParams"
    assert params == NodeParams(model="/models/x")


def test_params_file_with_a_typo_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    overlay_alpah: 0.3\n    use_sim_time: true\n")
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) overlay_alpah"):
        check_params_file(str(bad), {"model": "m"})
    bad.write_text("/**:\n  backend: auto\n")
    with pytest.raises(ConfigError, match="no ros__parameters mapping"):
        check_params_file(str(bad), {"model": "m"})


def test_params_file_values_and_overrides_are_validated(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("/**:\n  ros__parameters:\n    qos_depth: 0\n")
    with pytest.raises(ConfigError, match="qos_depth must be >= 1"):
        check_params_file(str(path), {"model": "m"})
    path.write_text("/front/segmentation:\n  ros__parameters:\n    backend: onnxruntime\n    use_sim_time: true\n")
    assert check_params_file(str(path), {"model": "m"}).backend == "onnxruntime"
    assert check_params_file(str(path), {"model": "m", "backend": "tensorrt"}).backend == "tensorrt"
    with pytest.raises(ConfigError, match="model is required"):
        check_params_file(str(path), {"model": ""})


def test_params_file_values_are_checked_per_node(tmp_path):
    from cityseg.config import ConfigError
    from cityseg.ros.live.params import check_params_file, section_applies

    path = tmp_path / "cams.yaml"
    path.write_text("/**:\n  ros__parameters:\n    overlay_alpha: 0.5\n"
                    "/front/segmentation:\n  ros__parameters:\n    model: /models/front\n"
                    "/rear/segmentation:\n  ros__parameters:\n    overlay_alpha: 7.0\n")
    front = check_params_file(str(path), node_name="/front/segmentation")
    assert str(front.model) == "/models/front" and front.overlay_alpha == 0.5
    with pytest.raises(ConfigError, match="overlay_alpha"):  # the rear camera's own bad value
        check_params_file(str(path), {"model": "/m"}, node_name="/rear/segmentation")
    assert section_applies("/*/segmentation", "/left/segmentation")
    assert not section_applies("/*/segmentation", "/a/b/segmentation")
    assert section_applies("/**", "/a/b/segmentation")


def test_values_are_typed_as_rcl_delivers_them(tmp_path):
    """rcl gives an empty sequence no type (rclpy reports it unset): an unset list parameter is its
    default, any other unset parameter is refused; integers and floats keep rcl's types."""
    from cityseg.ros.live.params import load_node_params

    assert load_node_params({"model": "m", "cameras": None}).cameras == ()
    with pytest.raises(ConfigError, match="overlay_alpha has no value"):
        load_node_params({"model": "m", "overlay_alpha": None})
    path = tmp_path / "p.yaml"
    for body, expect in (("cameras: []", ()), ("cameras: [front, left]", ("front", "left"))):
        path.write_text(f"/**:\n  ros__parameters:\n    {body}\n")
        assert check_params_file(str(path), {"model": "m"}).cameras == expect
    path.write_text("/**:\n  ros__parameters:\n    overlay_alpha: 1\n")  # an integer where a float is declared
    assert check_params_file(str(path), {"model": "m"}).overlay_alpha == 1.0
    for body, message in (("overlay_alpha: []", "overlay_alpha has no value"),
                          ("cameras: [front, 1]", "mixes types"),
                          ("jpeg_quality: 80.0", "jpeg_quality")):
        path.write_text(f"/**:\n  ros__parameters:\n    {body}\n")
        with pytest.raises(ConfigError, match=message):
            check_params_file(str(path), {"model": "m"})


def test_one_publish_switch_per_switchable_output():
    """NodeParams declares its publish_* fields by hand (readable, greppable); they must match the table."""
    switches = {f.name: f.default for f in dataclasses.fields(NodeParams) if f.name.startswith("publish_")}
    assert switches == {o.param: o.default for o in SWITCHABLE}


@pytest.mark.parametrize("name", ["grid_resolution", "grid_range", "sync_tolerance_ms", "overlay_alpha"])
def test_non_finite_numbers_are_refused_in_params_files(tmp_path, name):
    path = tmp_path / "p.yaml"
    for text in (".nan", ".inf"):  # YAML's NaN and infinity; `> 0` checks alone let NaN by
        path.write_text(f"/**:\n  ros__parameters:\n    grid_frame: base_link\n    {name}: {text}\n")
        with pytest.raises(ConfigError, match=rf"{name} = (nan|inf): not a finite number"):
            check_params_file(str(path), {"model": "m"})

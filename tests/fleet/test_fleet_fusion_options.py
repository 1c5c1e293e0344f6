"""`cityseg fleet` passes the --points-topic options to each bag's replay (part of the params id)."""

from __future__ import annotations

import argparse

from cityseg.cli import fleet as fleet_cli
from cityseg.cli.bag import fusion_config, node_settings
from cityseg.fleet.plan import ReplayOptions
from cityseg.ros.core.processor import ProcessorConfig


def _args(*argv):
    parser = argparse.ArgumentParser()
    fleet_cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["fleet", "bags", "--out", "o", "--model", "m", *argv])


def _fusion(args):
    return fusion_config(args, node_settings(args, command="cityseg fleet"))


def test_fleet_parses_fusion_options_into_the_params_id(tmp_path):
    ext = tmp_path / "rig.yaml"
    ext.write_text("- {parent: base_link, child: lidar, translation: [0, 0, 1.9], rotation: [0, 0, 0, 1]}\n")
    args = _args("--points-topic", "/lidar/points", "--extrinsics", str(ext), "--grid-frame", "base_link",
                 "--points-drop-labels", "sky")
    fusion = _fusion(args)
    assert fusion.points_topic == "/lidar/points" and fusion.drop_labels == ("sky",)
    assert fusion.grid.frame == "base_link" and fusion.grid.origin_x == -25.0
    plain = ReplayOptions("m", "onnxruntime", ProcessorConfig())
    fused = ReplayOptions("m", "onnxruntime", ProcessorConfig(), fusion=fusion)
    assert "fusion" not in plain.params() and fused.params()["fusion"]["points_topic"] == "/lidar/points"
    first = fused.params_id()
    ext.write_text("- {parent: base_link, child: lidar, translation: [0, 0, 2.0], rotation: [0, 0, 0, 1]}\n")
    assert fused.params_id() != first != plain.params_id()
    assert _fusion(_args()) is None
    camera_only = _fusion(_args("--grid-frame", "base_link", "--grid-range", "12", "--fixed-frame", "odom"))
    assert camera_only.camera_only and camera_only.grid_range_m == 12.0
    params = ReplayOptions("m", "onnxruntime", ProcessorConfig(), fusion=camera_only).params()["fusion"]
    assert (params["points_topic"], params["fixed_frame"], params["grid_range_m"]) == ("", "odom", 12.0)


def test_grid_costs_option_and_its_refusal(tmp_path):
    import pytest

    from cityseg.errors import CitysegError

    fusion = _fusion(_args("--points-topic", "/p", "--grid-frame", "base_link", "--grid-costs",
                                 "sidewalk:50,vegetation:-1"))
    assert fusion.grid_costs == {"sidewalk": 50, "vegetation": -1}
    with pytest.raises(CitysegError, match="not 'class name:cost'"):
        _fusion(_args("--points-topic", "/p", "--grid-costs", "sidewalk=50"))

"""FusionRunner: time sync, waiting clouds, and bad input counted (never a crash)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from cityseg.fusion.cloud import CloudLayout, Field, make_cloud
from cityseg.fusion.config import FusionConfig
from cityseg.fusion.extrinsics import FrameTree, Transform
from cityseg.fusion.runner import FusionRunner
from cityseg.ros.core.messages import CameraInfoValues

CLASSES = [(7, "road"), (23, "sky"), (26, "car")]
MS = 1_000_000


def _cloud(points):
    pts = np.asarray(points, np.float32)
    layout, data = make_cloud([("x", pts[:, 0]), ("y", pts[:, 1]), ("z", pts[:, 2])])
    return SimpleNamespace(fields=[SimpleNamespace(name=f.name, offset=f.offset, datatype=f.datatype, count=1)
                                   for f in layout.fields], height=1, width=len(pts), point_step=layout.point_step,
                           row_step=layout.row_step, is_bigendian=False, is_dense=True,
                           data=np.frombuffer(data, np.uint8))


def _runner(out, **kw):
    tree = FrameTree("test")
    tree.add("lidar", "cam", Transform.identity())  # the camera looks along the lidar's z
    return FusionRunner(FusionConfig("/points", sync_tolerance_ms=20, **kw), CLASSES, ["cam", "other"],
                        out.append, tree)


def _mask(value):
    return np.full((48, 64), value, np.uint8)


INFO = CameraInfoValues.pinhole(48, 64, 90.0)


def _labels(cloud):
    rows = np.frombuffer(cloud.data, np.uint8).reshape(-1, cloud.layout.point_step)
    return rows[:, 12].tolist(), rows[:, 14].tolist()


def test_cloud_waits_for_masks_after_it_and_takes_the_nearest_in_tolerance():
    out = []
    runner = _runner(out)
    runner.add_mask(0, 100 * MS, "cam", _mask(7), None, INFO)
    runner.add_cloud(105 * MS, "lidar", _cloud([[0, 0, 5], [0, 0, -5]]), tag="a")
    assert out == []  # masks after the cloud may still come
    runner.add_mask(0, 140 * MS, "cam", _mask(26), None, INFO)
    assert out == []  # the other camera has nothing yet
    runner.add_mask(1, 140 * MS, "cam", _mask(23), None, None)  # no CameraInfo ever: contributes nothing
    assert len(out) == 1 and out[0].tag == "a" and out[0].stamp_ns == 105 * MS
    assert _labels(out[0]) == ([7, 255], [0, 255])
    assert runner.counters.no_mask == {"other": 1}


def test_bad_clouds_and_missing_transforms_are_counted_not_raised():
    out = []
    runner = _runner(out)
    bad = _cloud([[0, 0, 5]])
    bad.fields = [SimpleNamespace(name="x", offset=0, datatype=7, count=1)]
    runner.add_cloud(0, "lidar", bad)
    runner.add_cloud(0, "velodyne", _cloud([[0, 0, 5]]))
    runner.add_mask(0, 0, "cam", _mask(7), None, INFO)
    runner.finish()
    assert runner.counters.bad_clouds == 1 and runner.counters.no_transform == {"cam": 1}
    assert len(out) == 1 and _labels(out[0]) == ([255], [255])


def test_drop_labels_and_the_pending_cap():
    out = []
    runner = _runner(out, drop_labels=("road",))
    for i in range(40):  # camera 'other' never sends: the oldest clouds go out with what is there
        runner.add_cloud(i * MS, "lidar", _cloud([[0, 0, 5], [0.0, 0.0, 6.0]]))
    assert len(out) == 40 - 32
    runner.add_mask(0, 39 * MS, "cam", _mask(7), None, INFO)
    runner.finish()
    assert len(out) == 40
    assert out[-1].layout.width == 0  # both points were road: dropped
    assert out[0].layout.width == 2  # labelled before the mask came: nothing to drop
    assert isinstance(out[0].layout, CloudLayout) and Field("label", 12, 2) in out[0].layout.fields


def test_node_parameters_give_the_fusion_config(tmp_path):
    import pytest

    from cityseg.config import ConfigError
    from cityseg.ros.live.params import load_node_params

    ext = tmp_path / "rig.yaml"
    ext.write_text("- {parent: lidar, child: cam, translation: [0, 0, 0], rotation: [0, 0, 0, 1]}\n")
    base = {"model": "m", "points_topic": "/points", "extrinsics_file": str(ext)}
    config = FusionConfig.from_params(load_node_params({**base, "grid_frame": "base_link",
                                                        "grid_costs": ["sidewalk:50"], "points_drop_labels": ["sky"]}))
    assert config.grid_costs == {"sidewalk": 50} and config.drop_labels == ("sky",)
    assert config.grid.origin_x == -25.0 and config.extrinsics_file == ext
    assert FusionConfig.from_params(load_node_params({"model": "m"})) is None
    tf2 = FusionConfig.from_params(load_node_params({"model": "m", "points_topic": "/points", "fixed_frame": "odom"}))
    assert tf2.extrinsics_file is None and tf2.fixed_frame == "odom"  # transforms from tf2 in the node
    camera_only = FusionConfig.from_params(load_node_params({"model": "m", "grid_frame": "base_link",
                                                             "grid_range": 12.0}))
    assert camera_only.camera_only and camera_only.grid_range_m == 12.0
    with pytest.raises(ConfigError, match="fixed_frame needs tf2"):
        load_node_params({**base, "fixed_frame": "odom"})
    with pytest.raises(ConfigError, match="grid_costs must be within -1..100"):
        load_node_params({**base, "grid_costs": ["road:300"]})

import numpy as np
import pytest

from cityseg.errors import InputError
from cityseg.fusion.extrinsics import FrameTree, Transform, TransformBuffer, load_extrinsics, slerp

RIG = """
transforms:
  - {parent: base_link, child: lidar, translation: [0.0, 0.0, 1.9], rotation: [0, 0, 0, 1]}
  - parent: base_link
    child: cam_front
    translation: [1.5, 0.0, 1.6]
    rotation: [-0.5, 0.5, -0.5, 0.5]
  - {frame_id: cam_front, child_frame_id: cam_front_optical2, translation: [0, 0, 0.1],
     rotation: [0, 0, 0.7071068, 0.7071068]}
"""


def test_file_chains_transforms(tmp_path):
    path = tmp_path / "rig.yaml"
    path.write_text(RIG)
    tree = load_extrinsics(path)
    t = tree.lookup("cam_front", "lidar")
    # optical frame: z forward (base x), x right (base -y), y down (base -z)
    p = t.apply(np.array([[11.5, 0.0, 0.0], [1.5, -2.0, 1.6]]))
    np.testing.assert_allclose(p, [[0.0, -(1.9 - 1.6), 10.0], [2.0, -1.9, 0.0]], atol=1e-6)
    back = tree.lookup("lidar", "cam_front_optical2") @ tree.lookup("cam_front_optical2", "lidar")
    np.testing.assert_allclose(back.rotation, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(back.translation, 0, atol=1e-9)
    q = tree.lookup("base_link", "cam_front").quaternion()
    np.testing.assert_allclose(q, [-0.5, 0.5, -0.5, 0.5], atol=1e-9)


@pytest.mark.parametrize("entry,match", [
    ("{parent: a, child: b, translation: [0, 0, 0], rotation: [0, 0, 0, 2]}",
     r"entry 0 \(a -> b\).*not a unit quaternion"),
    ("{parent: a, child: b, translation: [0, 0], rotation: [0, 0, 0, 1]}", r"entry 0 \(a -> b\): translation"),
    ("{parent: a, translation: [0, 0, 0], rotation: [0, 0, 0, 1]}", r"entry 0: missing 'child'"),
    ("{parent: a, child: b, translation: [0, 0, 0], rotation: [0, 0, 1]}", r"entry 0 \(a -> b\).*rotation"),
])
def test_bad_entries_name_file_and_entry(tmp_path, entry, match):
    path = tmp_path / "bad.yaml"
    path.write_text(f"- {entry}\n")
    with pytest.raises(InputError, match=match) as info:
        load_extrinsics(path)
    assert str(path) in str(info.value)


def test_unknown_and_unconnected_frames_are_refused(tmp_path):
    path = tmp_path / "rig.yaml"
    path.write_text(RIG + "  - {parent: odom, child: gps, translation: [0, 0, 0], rotation: [0, 0, 0, 1]}\n")
    tree = load_extrinsics(path)
    with pytest.raises(InputError, match=f"{path} has no frame 'cam_rear'"):
        tree.require(["cam_front", "cam_rear"])
    with pytest.raises(InputError, match="not connected"):
        tree.lookup("gps", "lidar")
    with pytest.raises(InputError, match="unknown frame"):
        tree.lookup("cam_rear", "lidar")
    tree.require(["cam_front", "lidar"], connected_to="lidar")


def test_tree_refuses_two_parents_and_cycles():
    tree = FrameTree()
    tree.add("a", "b", Transform.identity())
    with pytest.raises(InputError, match="already has parent"):
        tree.add("c", "b", Transform.identity())
    with pytest.raises(InputError, match="cycle"):
        tree.add("b", "a", Transform.identity())


def _yaw(deg: float, x: float = 0.0, y: float = 0.0) -> Transform:
    h = np.radians(deg) / 2
    return Transform.from_quaternion((x, y, 0.0), (0.0, 0.0, np.sin(h), np.cos(h)))


def test_dynamic_transforms_interpolate_linearly_and_by_slerp():
    buf = TransformBuffer("bag /tf", tolerance_ns=20_000_000)
    buf.add("base_link", "cam", Transform.from_quaternion((1.0, 0, 1.5), (-0.5, 0.5, -0.5, 0.5)))  # /tf_static
    buf.add_sample("odom", "base_link", 1_000_000_000, _yaw(0.0, x=0.0))
    buf.add_sample("odom", "base_link", 1_100_000_000, _yaw(90.0, x=2.0, y=1.0))
    mid = buf.lookup("odom", "base_link", 1_025_000_000)
    np.testing.assert_allclose(mid.translation, [0.5, 0.25, 0.0], atol=1e-12)
    np.testing.assert_allclose(mid.rotation, _yaw(22.5).rotation, atol=1e-12)  # slerp: a quarter of the turn
    # chained with the static edge: odom <- base_link(t) <- cam
    cam = buf.lookup("odom", "cam", 1_050_000_000)
    expect = _yaw(45.0, x=1.0, y=0.5) @ buf.lookup("base_link", "cam")
    np.testing.assert_allclose(cam.rotation, expect.rotation, atol=1e-12)
    np.testing.assert_allclose(cam.translation, expect.translation, atol=1e-12)
    np.testing.assert_allclose(slerp(np.array([0, 0, 0, 1.0]), -np.array([0, 0, 0, 1.0]), 0.5), [0, 0, 0, 1])


def test_lookups_outside_the_samples_by_more_than_the_tolerance_are_missing():
    buf = TransformBuffer("bag /tf", tolerance_ns=20_000_000)
    buf.add_sample("odom", "base_link", 1_000_000_000, _yaw(0.0))
    buf.add_sample("odom", "base_link", 1_100_000_000, _yaw(0.0, x=2.0))
    np.testing.assert_allclose(buf.lookup("odom", "base_link", 1_115_000_000).translation, [2.0, 0, 0])  # nearest
    for stamp in (979_000_000, 1_121_000_000):
        with pytest.raises(InputError, match=r"no transform from 'base_link' to 'odom' at .*tolerance 20 ms"):
            buf.lookup("odom", "base_link", stamp)
    with pytest.raises(InputError, match="without a stamp"):
        buf.lookup("odom", "base_link")
    with pytest.raises(InputError, match=r"unknown frame\(s\) \['map'\]"):
        buf.lookup("map", "base_link", 1_000_000_000)


def test_lookup_full_through_a_fixed_frame_compensates_motion():
    """A point seen by the LiDAR at t1 lands where the camera saw it at t0, though the vehicle moved."""
    buf = TransformBuffer("bag /tf")
    buf.add("base_link", "lidar", Transform(np.eye(3), np.array([0.0, 0.0, 1.9])))
    buf.add("base_link", "cam", _yaw(-90.0, x=1.0))
    for k in range(11):  # 10 m/s along x, turning 1 degree per 10 ms
        buf.add_sample("odom", "base_link", k * 10_000_000, _yaw(float(k), x=0.1 * k))
    world = np.array([[12.0, 3.0, 0.5]])
    t0, t1 = 20_000_000, 70_000_000
    in_lidar = buf.lookup("lidar", "odom", t1).apply(world)
    in_cam = buf.lookup("cam", "odom", t0).apply(world)
    full = buf.lookup_full("cam", t0, "lidar", t1, "odom")
    np.testing.assert_allclose(full.apply(in_lidar), in_cam, atol=1e-9)
    static = buf.lookup("cam", "lidar", t1)  # no fixed frame: the motion in between is not seen
    assert np.linalg.norm(static.apply(in_lidar) - in_cam) > 0.4


def test_old_samples_leave_the_cache():
    buf = TransformBuffer("bag /tf")
    for s in range(0, 12):
        buf.add_sample("odom", "base_link", s * 10**9, _yaw(0.0, x=float(s)))
    with pytest.raises(InputError):
        buf.lookup("odom", "base_link", 0)
    assert buf.lookup("odom", "base_link", 5 * 10**9 + 5 * 10**8).translation[0] == pytest.approx(5.5)


def test_a_nan_translation_is_named_in_plain_numbers(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- {parent: a, child: b, translation: [.nan, 0, 1], rotation: [0, 0, 0, 1]}\n")
    with pytest.raises(InputError, match=r"entry 0 \(a -> b\): translation \[nan, 0.0, 1.0\] is not finite") as info:
        load_extrinsics(path)
    assert "np.float64" not in str(info.value)
    path.write_text("- {parent: a, child: b, translation: [0, 0, 1], rotation: [0, 0, .nan, 1]}\n")
    with pytest.raises(InputError, match=r"rotation \[0.0, 0.0, nan, 1.0\] is not a unit quaternion"):
        load_extrinsics(path)

import numpy as np
import pytest

from cityseg.errors import InputError
from cityseg.fusion.extrinsics import FrameTree, Transform, load_extrinsics

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

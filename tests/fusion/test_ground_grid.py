"""The camera-only grid runner: one grid per rig frame, built when every camera's mask is in (or
with what it has when a camera misses the frame), missing transforms said once and counted."""

from __future__ import annotations

import numpy as np

from cityseg.fusion.config import FusionConfig
from cityseg.fusion.extrinsics import FrameTree
from cityseg.fusion.grid import GridSpec
from cityseg.fusion.ground_grid import GroundGridRunner
from cityseg.fusion.runner import tree_lookup
from cityseg.labels import class_space
from cityseg.ros.bag.lidar_bag import street_rig
from cityseg.synthetic.scene3d import render_labels

CLASSES = [(c.id, c.name) for c in class_space("labelid").classes]
MS = 1_000_000


def _setup(cameras=2, tree_frames=None):
    rig = street_rig(seed=5, cameras=cameras, width=160, height=80)
    tree = FrameTree("rig.yaml")
    for parent, child, t in rig.transforms():
        if tree_frames is None or child in tree_frames:
            tree.add(parent, child, t)
    masks = [render_labels(rig.scene, c.model, c.pose) for c in rig.cameras]
    grids, said = [], []
    runner = GroundGridRunner(FusionConfig("", grid=GridSpec("base_link", 0.5, 60, 60, -15.0, -15.0)), CLASSES,
                              [c.name for c in rig.cameras], grids.append, tree_lookup(tree), said.append)
    return rig, masks, runner, grids, said


def test_one_grid_per_rig_frame_stamped_with_its_newest_mask():
    rig, masks, runner, grids, _ = _setup()
    for frame in range(3):
        base = 1000 * MS + frame * 100 * MS
        for i, c in enumerate(rig.cameras):  # the cameras a few ms apart
            runner.add_mask(i, base + i * 4 * MS, c.name, masks[i], None, c.info, tag=("bag", frame, i))
            assert len(grids) == frame + (i == len(rig.cameras) - 1)  # built when the last camera's mask is in
    assert [g.stamp_ns for g in grids] == [1004 * MS, 1104 * MS, 1204 * MS]
    assert [g.tag for g in grids] == [("bag", f, 1) for f in range(3)]
    assert runner.counters.no_mask == {} and runner.grids == 3
    road = grids[0].grid.label == 7
    assert road.sum() > 100 and (grids[0].grid.cost[road] == 0).all()


def test_a_frame_missing_a_camera_is_built_when_the_next_frame_starts():
    rig, masks, runner, grids, _ = _setup()
    cam0, cam1 = rig.cameras
    runner.add_mask(0, 1000 * MS, cam0.name, masks[0], None, cam0.info)  # cam1 drops this frame
    assert grids == []
    runner.add_mask(0, 1100 * MS, cam0.name, masks[0], None, cam0.info)
    assert len(grids) == 1 and grids[0].stamp_ns == 1000 * MS and runner.counters.no_mask == {cam1.name: 1}
    runner.add_mask(1, 900 * MS, cam1.name, masks[1], None, cam1.info)  # older than the open frame: ignored
    runner.add_mask(1, 1101 * MS, cam1.name, masks[1], None, cam1.info)
    assert len(grids) == 2 and grids[1].stamp_ns == 1101 * MS
    alone, both = (g.grid.label != 255 for g in grids)
    assert both.sum() > alone.sum() > 100  # the second camera adds cells


def test_a_missing_transform_is_said_once_and_counted_and_the_other_cameras_serve_on():
    rig, masks, runner, grids, said = _setup(tree_frames={"cam0"})
    for frame in range(2):
        for i, c in enumerate(rig.cameras):
            runner.add_mask(i, (1000 + 100 * frame) * MS, c.name, masks[i], None, c.info)
    assert runner.counters.no_transform == {"cam1": 2} and len(grids) == 2
    assert len(said) == 1 and said[0].startswith("cam1: ") and "'cam1'" in said[0] and "adds nothing" in said[0]
    assert (grids[0].grid.label != 255).sum() > 100


def test_no_camera_info_yet_adds_nothing_and_finish_builds_the_open_frame():
    rig, masks, runner, grids, said = _setup(cameras=2)
    runner.add_mask(0, 1000 * MS, "cam0", masks[0], None, None)
    runner.add_mask(1, 1000 * MS, "cam1", masks[1], None, None)
    assert len(grids) == 1 and (grids[0].grid.label == 255).all() and "no CameraInfo yet" in said[0]
    runner.add_mask(0, 1100 * MS, "cam0", masks[0], None, rig.cameras[0].info)
    assert len(grids) == 1  # cam1's mask for this frame may still come
    runner.finish()
    assert len(grids) == 2 and runner.counters.no_mask == {"cam1": 1} and (grids[1].grid.label != 255).sum() > 100
    assert np.isin(np.unique(grids[1].grid.label), [6, 7, 8, 9, 22, 255]).all()  # ground classes only

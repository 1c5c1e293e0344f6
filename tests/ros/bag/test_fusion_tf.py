"""`cityseg bag` fusion with the bag's /tf (a vehicle driving: ego motion compensated through a fixed
frame), missing transforms said once per camera and counted, and the camera-only grid."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from cityseg.cli import main as cli_main
from cityseg.errors import InputError
from cityseg.fusion.cloud import CloudLayout
from cityseg.fusion.config import FusionConfig
from cityseg.fusion.grid import GROUND_CLASSES, GridSpec
from cityseg.labels import class_space
from cityseg.ros.bag.lidar_bag import street_rig, write_lidar_rig_bag
from cityseg.ros.bag.replay import replay_bag
from cityseg.ros.core.processor import ProcessorConfig

from support import read_bag

LABELID = ProcessorConfig(id_space="labelid")
SPEED, OFFSET = 20.0, 45_000_000  # 0.9 m driven between the images and the scan


def _label_column(msg) -> np.ndarray:
    layout = CloudLayout.from_message(msg)
    return np.asarray(msg.data, np.uint8).reshape(-1, layout.point_step)[:, layout.field("label").offset]


def _accuracy(out, truth) -> list[float]:
    out_clouds = read_bag(out)["/lidar/segmentation/points"]
    assert len(out_clouds) == len(truth.labels)
    scores = []
    for (_, msg), true in zip(out_clouds, truth.labels):
        label = _label_column(msg)
        seen = label != 255
        assert seen.sum() > 20_000
        scores.append(float((label[seen] == true[seen]).mean()))
    return scores


@pytest.fixture(scope="module")
def moving_bag(tmp_path_factory):
    rig = street_rig(seed=3, cameras=3, width=256, height=128)
    path = tmp_path_factory.mktemp("moving") / "rig"
    truth = write_lidar_rig_bag(path, rig, frames=3, speed_mps=SPEED, cloud_offset_ns=OFFSET)
    return rig, path, truth


def test_bag_tf_is_read_and_a_fixed_frame_compensates_ego_motion(moving_bag, labelid_bundle, tmp_path):
    rig, path, truth = moving_bag
    assert {"/tf", "/tf_static"} <= set(read_bag(path))
    runs = {}
    for fixed in ("", "odom"):
        out = tmp_path / f"out_{fixed or 'none'}"
        summary = replay_bag(path, out, labelid_bundle, config=LABELID, progress=False,
                             fusion=FusionConfig("/lidar/points", fixed_frame=fixed))
        assert summary.fusion["clouds"] == 3 and summary.fusion["no_transform"] == {}
        runs[fixed] = _accuracy(out, truth)
    # camera at the image stamp and LiDAR at the scan stamp, both through odom: the 0.9 m the vehicle
    # drove in between is taken out; without the fixed frame the labels land 0.9 m off
    assert min(runs["odom"]) > 0.92, runs
    assert max(runs[""]) < min(runs["odom"]) - 0.05, runs


def test_a_missing_transform_is_said_once_per_camera_and_counted(moving_bag, labelid_bundle, tmp_path, caplog):
    rig, path, _ = moving_bag
    ext = tmp_path / "rig.yaml"  # every sensor but cam2: its masks cannot be placed
    ext.write_text("".join(f"- {{parent: {p}, child: {c}, translation: {list(map(float, t.translation))}, "
                           f"rotation: {list(t.quaternion())}}}\n" for p, c, t in rig.transforms() if "cam2" not in c))
    with caplog.at_level(logging.WARNING):
        summary = replay_bag(path, tmp_path / "out", labelid_bundle, config=LABELID, progress=False,
                             fusion=FusionConfig("/lidar/points", ext))
    assert summary.fusion["no_transform"] == {"/cam2/image_raw": 3}
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("/cam2/image_raw: no transform")]
    assert len(said) == 1 and "points stay 255" in said[0], said
    assert 0 < summary.fusion["labelled_points"] < summary.fusion["points"]


def test_a_fixed_frame_not_in_the_bags_tf_is_refused_before_the_replay(moving_bag, still_bag, labelid_bundle,
                                                                        tmp_path):
    _, path, _ = moving_bag
    with pytest.raises(InputError, match=r"--fixed-frame map: no frame of that name in .* /tf \(its frames: "
                                         r"base_link, odom\)"):
        replay_bag(path, tmp_path / "out", labelid_bundle, config=LABELID, progress=False,
                   fusion=FusionConfig("/lidar/points", fixed_frame="map"))
    with pytest.raises(InputError, match=r"--fixed-frame odom: .* has no /tf"):
        replay_bag(still_bag[1], tmp_path / "out", labelid_bundle, config=LABELID, progress=False,
                   fusion=FusionConfig("/lidar/points", fixed_frame="odom"))
    assert not (tmp_path / "out").exists()


def test_a_replay_that_labels_no_point_fails_naming_the_reason(moving_bag, labelid_bundle, tmp_path, capsys):
    _, path, _ = moving_bag  # clouds 45 ms after the images: no mask within a 1 ms tolerance
    out = tmp_path / "out"
    assert cli_main(["bag", str(path), str(out), "--model", str(labelid_bundle.path), "--id-space", "labelid",
                     "--points-topic", "/lidar/points", "--sync-tolerance-ms", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "not one of the" in err and "was labelled (no mask in tolerance" in err and "nothing was written" in err
    assert not out.exists()


def test_the_summary_lists_what_was_written_with_counts(still_bag, labelid_bundle, tmp_path, capsys):
    _, path = still_bag
    out = tmp_path / "out"
    assert cli_main(["bag", str(path), str(out), "--model", str(labelid_bundle.path), "--id-space", "labelid",
                     "--points-topic", "/lidar/points", "--grid-frame", "nosuchframe", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "wrote /lidar/segmentation/points (2)" in printed
    assert "nothing written to /lidar/segmentation/grid, /lidar/segmentation/grid/labels" in printed
    assert "points labelled)" in printed
    topics = read_bag(out)
    assert len(topics["/lidar/segmentation/points"]) == 2 and not topics.get("/lidar/segmentation/grid")


def _true_ground(rig, spec: GridSpec) -> np.ndarray:
    """Per cell: the class of the street at its centre (a box standing there: the box's class)."""
    c = spec.cell_centres()
    truth = np.full(len(c), rig.scene.ground, np.uint8)
    for y0, y1, label in rig.scene.strips:
        truth[(c[:, 1] >= y0) & (c[:, 1] < y1)] = label
    for box in rig.scene.boxes:
        if box.lo[2] <= 0:
            inside = (c[:, 0] >= box.lo[0]) & (c[:, 0] < box.hi[0]) & (c[:, 1] >= box.lo[1]) & (c[:, 1] < box.hi[1])
            truth[inside] = box.label
    return truth.reshape(spec.height, spec.width)


@pytest.fixture(scope="module")
def still_bag(tmp_path_factory):
    rig = street_rig(seed=3, cameras=3, width=256, height=128)
    path = tmp_path_factory.mktemp("still") / "rig"
    write_lidar_rig_bag(path, rig, frames=2)
    return rig, path


def test_camera_only_grid_one_per_rig_frame_of_ground_classes(still_bag, labelid_bundle, tmp_path):
    rig, path = still_bag
    spec = GridSpec("base_link", 0.5, 80, 80, -20.0, -20.0)
    out = tmp_path / "out"
    summary = replay_bag(path, out, labelid_bundle, config=LABELID, progress=False,
                         fusion=FusionConfig("", grid=spec, grid_range_m=20.0))
    assert summary.fusion["grids"] == 2 and summary.fusion["no_mask"] == {} and "camera-only" in summary.format()
    topics = read_bag(out)
    assert "/segmentation/points" not in topics and "/lidar/segmentation/points" not in topics
    grids, labels = topics["/segmentation/grid"], topics["/segmentation/grid/labels"]
    images = read_bag(path)["/cam2/image_raw"]
    assert [s for s, _ in grids] == [s for s, _ in labels] == [s for s, _ in images]  # the inputs' stamps
    ground_ids = {c.id for c in class_space("labelid").classes if c.name in GROUND_CLASSES}
    truth = _true_ground(rig, spec)
    for (_, grid), (_, image), (_, src) in zip(grids, labels, images):
        assert grid.header.frame_id == "base_link" and grid.header.stamp.nanosec == src.header.stamp.nanosec
        assert (grid.info.width, grid.info.height, grid.info.origin.position.x) == (80, 80, -20.0)
        label = np.asarray(image.data, np.uint8).reshape(80, 80)
        cost = np.asarray(grid.data, np.int8).reshape(80, 80)
        known = label != 255
        assert known.sum() > 500 and set(np.unique(label[known])) <= ground_ids
        assert ((cost >= 0) == known).all() and (cost[known] <= 20).all()  # ground: free or low cost
        assert (label[known] == truth[known]).mean() > 0.9
        centres = spec.cell_centres().reshape(80, 80, 3)
        assert (np.hypot(centres[..., 0], centres[..., 1])[known] < 20.0 + 2.0).all()  # within range of a camera


def test_cli_grid_frame_alone_writes_the_camera_only_grid(still_bag, labelid_bundle, tmp_path, capsys):
    _, path = still_bag
    out = tmp_path / "out"
    assert cli_main(["bag", str(path), str(out), "--model", str(labelid_bundle.path), "--id-space", "labelid",
                     "--grid-frame", "base_link", "--grid-cells", "40", "--grid-range", "15", "--no-progress"]) == 0
    assert "2 camera-only grids" in capsys.readouterr().out
    assert len(read_bag(out)["/segmentation/grid"]) == 2


@pytest.mark.parametrize("argv, match", [
    (["--extrinsics", "rig.yaml"], "--extrinsics needs --points-topic or --grid-frame"),
    (["--points-topic", "/lidar/points", "--extrinsics", "rig.yaml", "--fixed-frame", "odom"],
     "--fixed-frame needs the bag's /tf"),
])
def test_cli_refuses_fixed_frame_with_a_static_file_and_extrinsics_alone(still_bag, labelid_bundle, tmp_path,
                                                                          capsys, argv, match):
    _, path = still_bag
    (tmp_path / "rig.yaml").write_text("- {parent: a, child: b, translation: [0, 0, 0], rotation: [0, 0, 0, 1]}\n")
    argv = [str(tmp_path / a) if a == "rig.yaml" else a for a in argv]
    assert cli_main(["bag", str(path), str(tmp_path / "out"), "--model", str(labelid_bundle.path), *argv]) != 0
    assert match in capsys.readouterr().err


def test_a_camera_only_grid_in_a_frame_no_transform_reaches_fails(still_bag, labelid_bundle, tmp_path, capsys):
    _, path = still_bag
    out = tmp_path / "out"
    assert cli_main(["bag", str(path), str(out), "--model", str(labelid_bundle.path), "--id-space", "labelid",
                     "--grid-frame", "nosuchframe", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "the camera-only grid replay made 2 grid(s) without one known cell (no transform" in err
    assert "nothing was written" in err
    assert not out.exists()

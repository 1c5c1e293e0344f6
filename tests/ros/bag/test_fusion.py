"""`cityseg bag --points-topic`: labelled clouds (and grids) from a synthetic LiDAR rig bag."""

from __future__ import annotations

import numpy as np
import pytest

from cityseg.cli import main as cli_main
from cityseg.fusion.camera import CameraModel
from cityseg.fusion.cloud import CloudLayout, read_xyz
from cityseg.fusion.config import FusionConfig
from cityseg.fusion.extrinsics import FrameTree
from cityseg.fusion.feed import frame_masks
from cityseg.fusion.grid import GridSpec
from cityseg.fusion.labelling import CameraMask, label_points
from cityseg.ros.bag.lidar_bag import street_rig, write_lidar_rig_bag
from cityseg.ros.bag.replay import load_processor, replay_bag
from cityseg.ros.core.processor import FrameRequest, ProcessorConfig

from support import read_bag

LABELID = ProcessorConfig(id_space="labelid")


@pytest.fixture(scope="module")
def rig_bag(tmp_path_factory):
    rig = street_rig(seed=3, cameras=3, width=256, height=128)
    path = tmp_path_factory.mktemp("rig") / "rig"
    truth = write_lidar_rig_bag(path, rig, frames=2, layout="ouster")
    return rig, path, truth


def _labels(msg):
    layout = CloudLayout.from_message(msg)
    rows = np.asarray(msg.data, np.uint8).reshape(-1, layout.point_step)
    off = {f.name: f.offset for f in layout.fields}
    return layout, rows[:, off["label"]], rows[:, off["confidence"]], rows[:, off["camera"]]


def test_bag_labels_clouds_like_the_fusion_core(rig_bag, labelid_bundle, tmp_path):
    rig, path, truth = rig_bag
    out = tmp_path / "out"
    spec = GridSpec("base_link", 0.5, 80, 80, -20.0, -20.0)
    summary = replay_bag(path, out, labelid_bundle, config=LABELID, progress=False,
                         fusion=FusionConfig("/lidar/points", grid=spec))
    assert summary.fusion["clouds"] == 2 and summary.fusion["bad_clouds"] == 0
    topics = read_bag(out)
    clouds = topics["/lidar/segmentation/points"]
    inputs = read_bag(path)["/lidar/points"]
    assert [s for s, _ in clouds] == [s for s, _ in inputs]
    processor = load_processor(labelid_bundle, LABELID)
    images = {c.name: read_bag(path)[f"/{c.name}/image_raw"] for c in rig.cameras}
    tree = FrameTree()
    for parent, child, t in rig.transforms():
        tree.add(parent, child, t)
    for k, ((_, msg), (_, src)) in enumerate(zip(clouds, inputs)):
        assert msg.header.stamp.sec == src.header.stamp.sec and msg.header.stamp.nanosec == src.header.stamp.nanosec
        assert msg.header.frame_id == "lidar" and (msg.height, msg.width) == (src.height, src.width)
        layout, label, conf, cam = _labels(msg)
        xyz = read_xyz(CloudLayout.from_message(src), np.asarray(src.data, np.uint8))
        cams = []
        batch = processor.process_batch([FrameRequest(images[c.name][k][1]) for c in rig.cameras])  # as replayed
        for c, result in zip(rig.cameras, batch):
            mask, confidence = frame_masks(result.segmentation)
            cams.append(CameraMask(CameraModel.from_camera_info(c.info), tree.lookup(c.name, "lidar"), mask,
                                   confidence))
        expected = label_points(xyz, cams)
        np.testing.assert_array_equal(label, expected.label)
        np.testing.assert_array_equal(cam, expected.camera)
        np.testing.assert_array_equal(conf, expected.confidence)
        hit = truth.labels[k] != 255
        assert (label[~hit] == 255).all()
        assert (label[hit] == truth.labels[k][hit]).mean() > 0.5  # the palette model sees the rendered truth
    grid = topics["/lidar/segmentation/grid"][0][1]
    assert (grid.info.width, grid.info.height, grid.header.frame_id) == (80, 80, "base_link")
    cost = np.asarray(grid.data, np.int8)
    assert (cost == 0).sum() > 50 and (cost == 100).sum() > 20
    labels = topics["/lidar/segmentation/grid/labels"][0][1]
    assert (labels.height, labels.width, labels.encoding) == (80, 80, "mono8")


def _extrinsics_file(rig, path):
    lines = ["transforms:"]
    for parent, child, t in rig.transforms():
        q = t.quaternion()
        lines.append(f"  - {{parent: {parent}, child: {child}, translation: {list(map(float, t.translation))}, "
                     f"rotation: {list(q)}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_points_topic_with_extrinsics_file_and_drop(rig_bag, labelid_bundle, tmp_path, capsys):
    rig, path, _ = rig_bag
    ext = _extrinsics_file(rig, tmp_path / "rig.yaml")
    out = tmp_path / "out"
    code = cli_main(["bag", str(path), str(out), "--model", str(labelid_bundle.path), "--id-space", "labelid",
                     "--points-topic", "/lidar/points", "--extrinsics", str(ext), "--points-drop-labels",
                     "sky,road", "--no-progress"])
    assert code == 0, capsys.readouterr()
    clouds = read_bag(out)["/lidar/segmentation/points"]
    layout, label, _, _ = _labels(clouds[0][1])
    assert layout.height == 1 and not np.isin(label, [7, 23]).any() and (label != 255).sum() > 1000


def test_cli_refuses_a_missing_points_topic(rig_bag, labelid_bundle, tmp_path, capsys):
    _, path, _ = rig_bag
    code = cli_main(["bag", str(path), str(tmp_path / "o"), "--model", str(labelid_bundle.path),
                     "--points-topic", "/velodyne_points", "--no-progress"])
    assert code == 2
    assert "no PointCloud2 topic '/velodyne_points'" in capsys.readouterr().err


def test_cli_refuses_bad_extrinsics_naming_file_and_entry(rig_bag, labelid_bundle, tmp_path, capsys):
    _, path, _ = rig_bag
    ext = tmp_path / "bad.yaml"
    ext.write_text("- {parent: base_link, child: lidar, translation: [0, 0, 1.9], rotation: [0, 0, 0.5, 0.5]}\n")
    args = ["bag", str(path), str(tmp_path / "o"), "--model", str(labelid_bundle.path), "--no-progress"]
    assert cli_main([*args, "--points-topic", "/lidar/points", "--extrinsics", str(ext)]) == 2
    assert f"{ext} entry 0 (base_link -> lidar): rotation" in capsys.readouterr().err
    assert cli_main([*args, "--extrinsics", str(ext)]) == 2
    assert "--extrinsics needs --points-topic" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_refuses_an_unknown_class_to_drop(rig_bag, labelid_bundle, tmp_path, capsys):
    _, path, _ = rig_bag
    code = cli_main(["bag", str(path), str(tmp_path / "o"), "--model", str(labelid_bundle.path), "--no-progress",
                     "--points-topic", "/lidar/points", "--points-drop-labels", "skyy"])
    assert code == 2
    assert "unknown class name(s) ['skyy']" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_params_file_fusion_keys_drive_the_replay_as_they_drive_the_node(rig_bag, labelid_bundle, tmp_path, capsys):
    """The node's params file, fusion keys and all, configures `cityseg bag --params-file` exactly as
    the node (one builder, FusionConfig.from_params): the replay writes the points and grid the same
    settings give as flags, and its FusionConfig is the node's."""
    from cityseg.cli import build_parser
    from cityseg.cli.bag import fusion_config, node_settings
    from cityseg.ros.live.params import check_params_file

    rig, path, _ = rig_bag
    ext = _extrinsics_file(rig, tmp_path / "rig.yaml")
    params = tmp_path / "node.yaml"
    params.write_text(f"""/**:
  ros__parameters:
    model: {labelid_bundle.path}
    id_space: labelid
    points_topic: /lidar/points
    extrinsics_file: {ext}
    points_drop_labels: [sky, road]
    sync_tolerance_ms: 60.0
    grid_frame: base_link
    grid_resolution: 0.5
    grid_cells: 80
    grid_costs: ["sidewalk:50"]
""")
    argv = ["bag", str(path), str(tmp_path / "from_file"), "--params-file", str(params), "--no-progress"]
    args = build_parser().parse_args(argv)
    replay = fusion_config(args, node_settings(args))
    node = FusionConfig.from_params(check_params_file(str(params)))  # what segmentation_node builds
    assert replay == node and replay.grid == GridSpec("base_link", 0.5, 80, 80, -20.0, -20.0)
    assert (replay.extrinsics_file, replay.drop_labels, replay.sync_tolerance_ms) == (ext, ("sky", "road"), 60.0)

    assert cli_main(argv) == 0, capsys.readouterr()
    flags = ["--model", str(labelid_bundle.path), "--id-space", "labelid", "--points-topic", "/lidar/points",
             "--extrinsics", str(ext), "--points-drop-labels", "sky,road", "--sync-tolerance-ms", "60",
             "--grid-frame", "base_link", "--grid-resolution", "0.5", "--grid-cells", "80",
             "--grid-costs", "sidewalk:50"]
    assert cli_main(["bag", str(path), str(tmp_path / "from_flags"), *flags, "--no-progress"]) == 0
    from_file, from_flags = read_bag(tmp_path / "from_file"), read_bag(tmp_path / "from_flags")
    fused = ["/lidar/segmentation/points", "/lidar/segmentation/grid", "/lidar/segmentation/grid/labels"]
    for topic in fused:
        assert len(from_file[topic]) == len(from_flags[topic]) == 2, topic
        for (s1, m1), (s2, m2) in zip(from_file[topic], from_flags[topic]):
            assert s1 == s2 and bytes(m1.data) == bytes(m2.data), topic
    grid = from_file["/lidar/segmentation/grid"][0][1]
    assert (grid.info.resolution, grid.info.width, grid.header.frame_id) == (0.5, 80, "base_link")
    _, label, _, _ = _labels(from_file["/lidar/segmentation/points"][0][1])
    assert not np.isin(label, [7, 23]).any() and (label != 255).sum() > 1000  # dropped, labelled

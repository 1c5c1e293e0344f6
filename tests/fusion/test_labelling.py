import numpy as np
import pytest

from cityseg.fusion.camera import CameraModel
from cityseg.fusion.cloud import read_xyz
from cityseg.fusion.extrinsics import FrameTree, Transform
from cityseg.fusion.labelling import CameraMask, MaskHistory, OcclusionConfig, drop_labels, label_points
from cityseg.synthetic.geometry import PERSON, ROAD, SKY, VEGETATION, WALL
from cityseg.synthetic.lidar import LidarSpec, ouster_cloud, scan, velodyne_cloud
from cityseg.synthetic.scene3d import Box, Scene, camera_pose, make_street, render_labels

W, H = 960, 480
K = (480.0, 0.0, 479.5, 0.0, 480.0, 239.5, 0.0, 0.0, 1.0)  # 90 degrees horizontal
SPEC = LidarSpec(beams=48, lower_deg=-22.0, upper_deg=3.0, azimuth_step_deg=0.3)


def _rig(scene, poses, lidar_pose):
    tree = FrameTree("test rig")
    tree.add("base_link", "lidar", lidar_pose)
    cams = []
    for i, pose in enumerate(poses):
        tree.add("base_link", f"cam{i}", pose)
        model = CameraModel(W, H, "plumb_bob", (), K)
        cams.append(CameraMask(model, tree.lookup(f"cam{i}", "lidar"), render_labels(scene, model, pose)))
    return cams


def _truth_visible(scene, cams, poses, world):
    """bool (cameras, N): the point projects into the camera and nothing hides it from the camera."""
    out = []
    for cam, pose in zip(cams, poses):
        proj = cam.model.project(pose.inverse().apply(world))
        dist, _ = scene.cast(pose.translation, world - pose.translation)
        out.append(proj.valid & (dist >= np.linalg.norm(world - pose.translation, axis=1) - 0.02))
    return np.array(out)


@pytest.fixture(scope="module")
def street_rig():
    scene = make_street(np.random.default_rng(7))
    lidar_pose = Transform(np.eye(3), np.array([0.0, 0.0, 1.9]))
    poses = [camera_pose(1.5, 0.0, 1.6, 0), camera_pose(1.2, 0.6, 1.6, 70), camera_pose(1.2, -0.6, 1.6, -70)]
    return scene, lidar_pose, poses, _rig(scene, poses, lidar_pose), scan(scene, lidar_pose, SPEC)


@pytest.mark.parametrize("layout", ["velodyne", "ouster"])
def test_street_rig_labels_match_truth(street_rig, layout):
    """Ground-truth masks: >= 99 % of the points a camera sees unoccluded take their true labelId;
    no point outside every camera's view (or without a return) takes a label."""
    scene, lidar_pose, poses, cams, s = street_rig
    cloud, data, idx = (velodyne_cloud if layout == "velodyne" else ouster_cloud)(s)
    xyz = read_xyz(cloud, data)
    got = label_points(xyz, cams)
    truth = s.label[idx]
    hit = truth != 255
    world = lidar_pose.apply(np.nan_to_num(xyz))
    seen = _truth_visible(scene, cams, poses, world) & hit
    unoccluded = seen.any(0)
    assert unoccluded.sum() > 20000
    correct = (got.label == truth)[unoccluded].mean()
    assert correct >= 0.99, correct
    in_view = np.array([c.model.project(c.cloud_to_camera.apply(np.nan_to_num(xyz))).valid for c in cams]).any(0)
    assert (got.label[~(in_view & hit)] == 255).all() and (got.camera[~(in_view & hit)] == 255).all()
    assert set(np.unique(got.camera)) <= {0, 1, 2, 255}
    assert (got.label[~hit] == 255).all()  # NaN points kept, unlabelled


def test_no_far_wall_point_takes_the_near_objects_label():
    scene = Scene(boxes=[Box((30.0, -30.0, 0.0), (31.0, 30.0, 15.0), WALL),
                         Box((10.0, -1.0, 0.0), (10.6, 1.0, 2.5), PERSON)], strips=[(-50, 50, ROAD)])
    lidar_pose = Transform(np.eye(3), np.array([0.0, 0.8, 2.2]))  # parallax: the LiDAR sees behind the object
    poses = [camera_pose(0.5, -0.8, 1.4, 0)]
    cams = _rig(scene, poses, lidar_pose)
    s = scan(scene, lidar_pose, SPEC)
    xyz = s.xyz
    wall = s.label == WALL
    behind = wall & cams[0].model.project(cams[0].cloud_to_camera.apply(np.nan_to_num(xyz))).valid
    plain = label_points(xyz, cams, occlusion=None)
    assert ((plain.label == PERSON) & behind).sum() > 50  # without the z-buffer the wall takes the label
    got = label_points(xyz, cams)
    assert not ((got.label == PERSON) & wall).any()
    assert (got.label[s.label == PERSON] == PERSON).mean() > 0.95
    assert (got.label[behind] == WALL).mean() > 0.8


def _one_pixel_camera(label, centre_offset, conf=None):
    model = CameraModel(21, 21, "plumb_bob", (), (10.0, 0, 10.0, 0, 10.0, 10.0, 0, 0, 1))
    shift = Transform(np.eye(3), np.array([centre_offset, 0.0, 0.0]))
    mask = np.full((21, 21), label, np.uint8)
    confidence = None if conf is None else np.full((21, 21), conf, np.uint8)
    return CameraMask(model, shift, mask, confidence)


def test_overlap_takes_most_confident_else_nearest_centre():
    pts = np.array([[0.0, 0.0, 5.0]])
    a, b = _one_pixel_camera(ROAD, 0.0, 90), _one_pixel_camera(SKY, 2.0, 200)
    got = label_points(pts, [a, b])
    assert (got.label[0], got.confidence[0], got.camera[0]) == (SKY, 200, 1)
    a, b = _one_pixel_camera(ROAD, 2.0), _one_pixel_camera(VEGETATION, 0.5)
    got = label_points(pts, [a, None, b])
    assert (got.label[0], got.confidence[0], got.camera[0]) == (VEGETATION, 0, 2)


def test_ignore_pixels_do_not_label():
    got = label_points(np.array([[0.0, 0.0, 5.0]]), [_one_pixel_camera(255, 0.0)])
    assert got.label[0] == 255 and got.camera[0] == 255


def test_occlusion_window_and_margin():
    model = CameraModel(100, 100, "plumb_bob", (), (100.0, 0, 49.5, 0, 100.0, 49.5, 0, 0, 1))
    cam = CameraMask(model, Transform.identity(), np.full((100, 100), WALL, np.uint8))
    near = [0.0, 0.0, 5.0]
    beside = [0.02 * 20, 0.0, 20.0]  # 2 px to the right, far behind
    close_behind = [0.0, 0.0, 5.2]
    got = label_points(np.array([near, beside, close_behind]), [cam], OcclusionConfig(window_px=5))
    assert got.label.tolist() == [WALL, 255, WALL]
    got = label_points(np.array([near, beside]), [cam], OcclusionConfig(window_px=3))
    assert got.label.tolist() == [WALL, WALL]


def test_drop_labels_and_mask_history():
    label = np.array([ROAD, SKY, VEGETATION, 255], np.uint8)
    assert drop_labels(label, [SKY, VEGETATION]).tolist() == [True, False, False, True]
    assert drop_labels(label, []) is None
    history = MaskHistory(depth=3)
    for stamp in (100, 200, 300, 400):
        history.add(stamp, stamp)
    assert history.nearest(260, 50) == 300
    assert history.nearest(120, 50) is None  # 100 was pushed out; 200 is 80 away
    assert history.nearest(1000, 50) is None

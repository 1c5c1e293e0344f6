"""The fast paths of label_points give what the plain ones give: the float32 frustum cull before
the float64 projection, and the two-pass window test against a z-buffer eroded over the mask."""

import cv2
import numpy as np
import pytest

from cityseg.fusion.camera import CameraModel
from cityseg.fusion.extrinsics import Transform
from cityseg.fusion.labelling import OcclusionConfig, cloud_points, project_cloud, visible
from cityseg.synthetic.lidar import LidarSpec, scan
from cityseg.synthetic.scene3d import camera_pose, make_street

K = (500.0, 0.0, 479.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0)
MODELS = [("plumb_bob", (-0.3, 0.1, 0.001, -0.002, -0.02), K, (1, 1), (0, 0, 0, 0)),
          ("rational_polynomial", (0.2, -0.1, 0.001, 0.002, 0.01, 0.3, -0.05, 0.02), K, (1, 1), (0, 0, 0, 0)),
          ("equidistant", (0.1, -0.05, 0.01, -0.002), (300.0, 0, 480, 0, 300.0, 240, 0, 0, 1), (1, 1), (0, 0, 0, 0)),
          ("plumb_bob", (), K, (2, 2), (40, 20, 400, 800))]


@pytest.fixture(scope="module")
def cloud():
    scene = make_street(np.random.default_rng(3))
    lidar = Transform(np.eye(3), np.array([0.0, 0.0, 1.9]))
    xyz = scan(scene, lidar, LidarSpec(beams=32, lower_deg=-20.0, upper_deg=3.0, azimuth_step_deg=0.4)).xyz
    return lidar, xyz.astype(np.float32)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m[0])
@pytest.mark.parametrize("yaw", [0, 75, 180])
def test_project_cloud_is_the_projection_of_every_point(cloud, model, yaw):
    lidar, xyz = cloud
    cam = CameraModel(960, 480, model[0], model[1], model[2], model[3], model[4])
    pose = camera_pose(1.2 * np.cos(np.radians(yaw)), 0.6 * np.sin(np.radians(yaw)), 1.6, yaw)
    to_cam = pose.inverse() @ lidar
    full = cam.project(to_cam.apply(np.nan_to_num(xyz, nan=1e9)))  # NaN: far away, not projected
    assert np.isnan(xyz).any() and full.valid.sum() > 500
    for points in (xyz, xyz.astype(np.float64)):
        seen, u, v, depth = project_cloud(points, cloud_points(points), cam, to_cam)
        np.testing.assert_array_equal(seen, np.flatnonzero(full.valid & ~np.isnan(xyz).any(1)))
        np.testing.assert_array_equal(u, full.u[seen])  # bit for bit: the same float64 arithmetic
        np.testing.assert_array_equal(v, full.v[seen])
        np.testing.assert_array_equal(depth, full.depth[seen])


def _eroded(row, col, depth, shape, config, focal):
    """The window test as a z-buffer over the whole mask, eroded by the window."""
    zbuf = np.full(shape, np.inf, np.float32)
    np.minimum.at(zbuf, (row, col), depth.astype(np.float32))
    k = config.window_px
    zbuf = cv2.erode(zbuf, np.ones((k, k), np.uint8), borderType=cv2.BORDER_REPLICATE)
    nearest = zbuf[row, col]
    return depth <= nearest + config.margin_m + config.margin_ratio(focal) * nearest


@pytest.mark.parametrize("window", [1, 2, 3, 4, 5, 7])
def test_two_pass_window_test_equals_the_eroded_z_buffer(window):
    rng = np.random.default_rng(window)
    shape = (240, 320)
    n = 6000
    row, col = rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)
    row[:200], col[:200] = 0, rng.integers(0, shape[1], 200)  # the mask's border clips windows
    col[200:400] = shape[1] - 1
    depth = rng.uniform(2.0, 40.0, n)
    near = rng.random(n) < 0.1  # a scatter of near objects in front of far ones
    depth[near] = rng.uniform(0.5, 3.0, near.sum())
    config = OcclusionConfig(window_px=window, margin_m=0.2, grazing_deg=2.0)
    got = visible(row, col, depth, shape, config, 300.0)
    want = _eroded(row, col, depth, shape, config, 300.0)
    assert (~want).sum() > 100
    np.testing.assert_array_equal(got, want)

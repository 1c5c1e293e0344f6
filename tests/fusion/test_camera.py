import cv2
import numpy as np
import pytest

from cityseg.errors import InputError
from cityseg.fusion.camera import CameraModel, mask_index

K = (900.0, 0.0, 1010.0, 0.0, 905.0, 530.0, 0.0, 0.0, 1.0)
MODELS = {
    "plumb_bob": (-0.25, 0.07, 0.001, -0.0015, -0.01),
    "rational_polynomial": (0.3, -0.1, 0.0012, -0.001, 0.02, 0.6, -0.05, 0.03),
    "equidistant": (0.05, -0.012, 0.003, -0.0006),
}


def _points(n=5000, seed=0):
    return np.random.default_rng(seed).uniform([-30, -10, 0.5], [30, 10, 50], (n, 3))


@pytest.mark.parametrize("model", MODELS)
def test_projection_equals_opencv(model):
    d = np.array(MODELS[model])
    cam = CameraModel(2048, 1024, model, d, K)
    pts = _points()
    proj = cam.project(pts)
    km = np.array(K).reshape(3, 3)
    if model == "equidistant":
        ref = cv2.fisheye.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), km, d)[0]
    else:
        ref = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), km, d)[0]
    ref = ref.reshape(-1, 2)
    assert proj.valid.sum() > 1000
    err = np.abs(np.stack([proj.u, proj.v], 1)[proj.valid] - ref[proj.valid])
    assert err.max() < 1e-3
    assert ((ref[proj.valid] >= -0.5) & (ref[proj.valid] < [2047.5, 1023.5])).all()


def test_points_behind_or_outside_do_not_project():
    cam = CameraModel(640, 480, "plumb_bob", MODELS["plumb_bob"], K)
    proj = cam.project(np.array([[0, 0, -5.0], [0, 0, 0.0], [500.0, 0, 1.0], [0, 0, 5.0]]))
    assert proj.valid.tolist() == [False, False, False, False]  # K's centre lies outside 640x480
    cam = CameraModel(2048, 1024, "plumb_bob", MODELS["plumb_bob"], K)
    assert cam.project(np.array([[0, 0, 5.0], [1e4, 0, 1.0]])).valid.tolist() == [True, False]


def test_binning_and_roi_shift_and_scale_pixels():
    full = CameraModel(2048, 1024, "plumb_bob", MODELS["plumb_bob"], K)
    cut = CameraModel(2048, 1024, "plumb_bob", MODELS["plumb_bob"], K, binning=(2, 2), roi=(400, 200, 600, 1000))
    assert cut.image_size == (500, 300)
    pts = _points(seed=1)
    a, b = full.project(pts), cut.project(pts)
    both = a.valid & b.valid
    assert both.sum() > 100
    np.testing.assert_allclose(b.u[both], (a.u[both] - 400) / 2, atol=1e-9)
    np.testing.assert_allclose(b.v[both], (a.v[both] - 200) / 2, atol=1e-9)
    assert not (b.valid & ~a.valid).any()
    assert ((b.u[b.valid] < 499.5) & (b.v[b.valid] < 299.5)).all()


def test_mask_index_follows_output_scale():
    cam = CameraModel(2048, 1024, "plumb_bob", (), K)
    proj = cam.project(np.array([[0.0, 0.0, 10.0]]))  # lands on (cx, cy)
    row, col = mask_index(proj, cam.image_size, (256, 512))
    assert (row[0], col[0]) == (int((530 + 0.5) / 4), int((1010 + 0.5) / 4))


def test_camera_info_values_and_bad_models():
    from types import SimpleNamespace
    info = SimpleNamespace(width=2048, height=1024, distortion_model="equidistant", d=MODELS["equidistant"],
                           k=K, binning_x=0, binning_y=0,
                           roi=SimpleNamespace(x_offset=0, y_offset=0, height=0, width=0))
    assert CameraModel.from_camera_info(info).image_size == (2048, 1024)
    with pytest.raises(InputError, match="'kannala' is not supported"):
        CameraModel(2048, 1024, "kannala", (), K)
    with pytest.raises(InputError, match="uncalibrated"):
        CameraModel(2048, 1024, "plumb_bob", (), (0.0,) * 9)


MILD = {"plumb_bob": (-0.08, 0.01, 0.001, -0.001, 0.0),
        "rational_polynomial": (0.1, -0.02, 0.001, -0.001, 0.0, 0.15, -0.01, 0.0),
        "equidistant": MODELS["equidistant"]}


@pytest.mark.parametrize("model", MILD)
def test_pixel_rays_project_back_to_their_pixels(model):
    cam = CameraModel(2048, 1024, model, MILD[model], K, binning=(2, 2))
    rays = cam.pixel_rays(256, 128)
    proj = cam.project(rays.reshape(-1, 3))
    row, col = mask_index(proj, cam.image_size, (128, 256))
    jj, ii = np.meshgrid(np.arange(256), np.arange(128))
    assert proj.valid.all()
    assert (row == ii.ravel()).mean() > 0.999 and (col == jj.ravel()).mean() > 0.999

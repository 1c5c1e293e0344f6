"""A camera's projection from its sensor_msgs/CameraInfo fields, ROS-free: plumb_bob,
rational_polynomial and equidistant distortion, binning and ROI, and the mask's own size (the
node's ``output_scale``).

Points are in the camera's optical frame (x right, y down, z forward). Pixel coordinates follow
OpenCV (pixel centres at integers), in the *received* image: full-resolution coordinates minus the
ROI offset, divided by the binning, as image_geometry's PinholeCameraModel adjusts K. Skew (K[0][1])
is ignored, as ``cv2.projectPoints`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cityseg.errors import InputError

MODELS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
"""Supported CameraInfo.distortion_model values and how many coefficients each uses."""
NEAR = 0.05
"""Points closer than this (metres along the optical axis) do not project."""
_FOV_MARGIN = 1.02
_UNDISTORT = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-12)


@dataclass(frozen=True)
class Projection:
    """Where points land in one camera: pixel (u, v) in the received image, depth, and whether the
    point is in front of the camera and inside its calibrated field of view."""

    u: np.ndarray
    v: np.ndarray
    depth: np.ndarray
    valid: np.ndarray


class CameraModel:
    """One camera's projection, built from CameraInfo values (see :meth:`from_camera_info`)."""

    def __init__(self, width: int, height: int, distortion_model: str, d, k, binning=(1, 1),
                 roi=(0, 0, 0, 0)):
        model = distortion_model or "plumb_bob"
        if model not in MODELS:
            raise InputError(f"CameraInfo distortion_model {distortion_model!r} is not supported "
                             f"(supported: {', '.join(MODELS)}); calibrate with one of them")
        k = np.asarray(k, np.float64).reshape(3, 3)
        if k[0, 0] <= 0 or k[1, 1] <= 0:
            raise InputError(f"CameraInfo K has focal lengths {k[0, 0]}, {k[1, 1]}: the camera is "
                             "uncalibrated; publish its calibration")
        d = np.zeros(MODELS[model]) if not len(d) else np.asarray(d, np.float64)
        self.model = model
        self.dist = np.zeros(MODELS[model])
        self.dist[:min(len(d), MODELS[model])] = d[:MODELS[model]]
        self.k = k
        self.full_size = (int(width), int(height))
        bx, by = (max(1, int(b)) for b in binning)
        x0, y0, rh, rw = (int(v) for v in roi[:4])
        rw, rh = (rw or width - x0, rh or height - y0)
        self.binning, self.roi = (bx, by), (x0, y0, rw, rh)
        self.image_size = (rw // bx, rh // by)
        """(width, height) of the image this camera sends."""
        self._max_radius = self._field_of_view()

    @classmethod
    def from_camera_info(cls, info) -> CameraModel:
        """From anything with CameraInfo's fields (an rclpy/rosbags message or CameraInfoValues)."""
        roi = info.roi
        if not isinstance(roi, tuple):
            roi = (roi.x_offset, roi.y_offset, roi.height, roi.width)
        else:
            roi = (roi[0], roi[1], roi[2], roi[3])
        x0, y0, rh, rw = roi
        return cls(info.width, info.height, info.distortion_model, tuple(info.d), tuple(info.k),
                   (info.binning_x, info.binning_y), (x0, y0, rh, rw))

    def _field_of_view(self) -> float:
        """The largest normalized radius (tan of the angle off-axis; the angle itself for
        equidistant) that lands inside the ROI, plus a margin: points past it do not project (a
        distortion polynomial folds back far outside the calibrated field)."""
        x0, y0, rw, rh = self.roi
        xs, ys = np.linspace(x0, x0 + rw, 64), np.linspace(y0, y0 + rh, 64)
        border = np.concatenate([np.stack([xs, np.full_like(xs, y0)], 1),
                                 np.stack([xs, np.full_like(xs, y0 + rh)], 1),
                                 np.stack([np.full_like(ys, x0), ys], 1),
                                 np.stack([np.full_like(ys, x0 + rw), ys], 1)]).reshape(-1, 1, 2)
        if self.model == "equidistant":
            norm = cv2.fisheye.undistortPoints(border, self.k, self.dist.reshape(4, 1)).reshape(-1, 2)
            radius = np.arctan(np.hypot(norm[:, 0], norm[:, 1]))
        else:
            norm = self._undistort(border).reshape(-1, 2)
            radius = np.hypot(norm[:, 0], norm[:, 1])
        return float(radius.max() * _FOV_MARGIN)

    @property
    def focal_px(self) -> tuple[float, float]:
        """(fx, fy) in received-image pixels (after binning)."""
        return self.k[0, 0] / self.binning[0], self.k[1, 1] / self.binning[1]

    def _undistort(self, pixels: np.ndarray) -> np.ndarray:
        if not self.dist.any():
            k = self.k
            return (pixels - (k[0, 2], k[1, 2])) / (k[0, 0], k[1, 1])
        return cv2.undistortPoints(pixels, self.k, self.dist, None, None, criteria=_UNDISTORT)

    def distort(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalized coordinates -> full-resolution pixel (u, v), and whether inside the field of view."""
        r2 = x * x + y * y
        if self.model == "equidistant":
            r = np.sqrt(r2)
            theta = np.arctan(r)
            t2 = theta * theta
            k1, k2, k3, k4 = self.dist
            theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
            scale = np.divide(theta_d, r, out=np.ones_like(r), where=r > 1e-12)
            xd, yd = x * scale, y * scale
            inside = theta <= self._max_radius
        elif not self.dist.any():  # the polynomial below would give exactly x, y
            xd, yd = x, y
            inside = r2 <= self._max_radius ** 2
        else:
            k1, k2, p1, p2, k3, *rest = self.dist
            radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
            if rest:
                k4, k5, k6 = rest
                radial = radial / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
            xy = x * y
            xd = x * radial + 2 * p1 * xy + p2 * (r2 + 2 * x * x)
            yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * xy
            inside = r2 <= self._max_radius ** 2
        k = self.k
        return k[0, 0] * xd + k[0, 2], k[1, 1] * yd + k[1, 2], inside

    def project(self, points: np.ndarray) -> Projection:
        """Camera-frame points (N, 3) -> :class:`Projection` in the received image's pixels.

        Points behind the camera or outside the calibrated field of view are culled before the
        distortion model runs (their u, v are NaN)."""
        p = np.asarray(points, np.float64)
        index, uf, vf = self.project_xyz(p[:, 0], p[:, 1], p[:, 2])
        u = np.full(len(p), np.nan)
        v = np.full(len(p), np.nan)
        u[index], v[index] = uf, vf
        valid = np.zeros(len(p), bool)
        valid[index] = True
        return Projection(u, v, p[:, 2], valid)

    @property
    def axis_limit(self) -> float:
        """Points with |x/z| or |y/z| above this do not project (what :meth:`project_xyz` culls
        before the distortion model; a cheaper frustum test may use it)."""
        return float(np.tan(min(self._max_radius, 1.55))) if self.model == "equidistant" else self._max_radius

    def project_xyz(self, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                    index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Camera-frame coordinates (1-D each) -> (indices of the points that land in the image,
        their u, their v). ``index``: the points' own indices (default 0..N-1).

        Arrays are compacted only where points drop out (a caller that culled already pays no copy)."""
        with np.errstate(invalid="ignore"):
            ahead = z > NEAR
        front = None if ahead.all() else np.flatnonzero(ahead)
        if front is not None:
            x, y, z = x[front], y[front], z[front]
        xn, yn = x / z, y / z
        limit = self.axis_limit
        near_axis = (np.abs(xn) <= limit) & (np.abs(yn) <= limit)
        if not near_axis.all():
            near_axis = np.flatnonzero(near_axis)
            front = near_axis if front is None else front[near_axis]
            xn, yn = xn[near_axis], yn[near_axis]
        uf, vf, inside = self.distort(xn, yn)
        x0, y0, _, _ = self.roi
        bx, by = self.binning
        if x0 or bx != 1:
            uf = (uf - x0) / bx
        if y0 or by != 1:
            vf = (vf - y0) / by
        w, h = self.image_size
        ok = inside & (uf >= -0.5) & (uf < w - 0.5) & (vf >= -0.5) & (vf < h - 0.5)  # False for NaN, inf
        ok = np.flatnonzero(ok)
        front = ok if front is None else front[ok]
        return (front if index is None else index[front]), uf[ok], vf[ok]

    def pixel_rays(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        """Unit-depth rays (H, W, 3) through the centre of every pixel of an image of this camera
        resampled to ``width`` x ``height`` (default: the received size): what a renderer casts."""
        w0, h0 = self.image_size
        width, height = width or w0, height or h0
        jj, ii = np.meshgrid((np.arange(width) + 0.5) * w0 / width - 0.5,
                             (np.arange(height) + 0.5) * h0 / height - 0.5)
        x0, y0, _, _ = self.roi
        bx, by = self.binning
        full = np.stack([jj * bx + x0, ii * by + y0], -1).reshape(-1, 1, 2)
        if self.model == "equidistant":
            norm = cv2.fisheye.undistortPoints(full, self.k, self.dist.reshape(4, 1))
        else:
            norm = self._undistort(full)
        norm = norm.reshape(height, width, 2)
        return np.concatenate([norm, np.ones((height, width, 1))], -1)


def mask_index(projection: Projection, image_size: tuple[int, int], mask_shape: tuple[int, int],
               index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row and column (int) in a mask of ``mask_shape`` (H, W) of the projected points ``index``
    (default: the valid ones); the mask covers the received image (``image_size`` W, H)
    resampled, as the node's output_scale does."""
    index = np.flatnonzero(projection.valid) if index is None else index
    return pixel_index(projection.u[index], projection.v[index], image_size, mask_shape)


def pixel_index(u: np.ndarray, v: np.ndarray, image_size: tuple[int, int],
                mask_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column in a mask of ``mask_shape`` of image pixels (u, v) (see :func:`mask_index`)."""
    w, h = image_size
    mh, mw = mask_shape
    col, row = u + 0.5, v + 0.5
    if mw != w:
        col *= mw / w
    if mh != h:
        row *= mh / h
    col, row = col.astype(np.int64), row.astype(np.int64)  # truncation: floor where it is not clipped
    np.clip(col, 0, mw - 1, out=col)
    np.clip(row, 0, mh - 1, out=row)
    return row, col

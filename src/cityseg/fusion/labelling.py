"""Labelling LiDAR points with every camera's mask, ROS-free: projection, occlusion, the
multi-camera overlap rule, time sync and the class-drop filter.

Occlusion: each camera keeps a z-buffer of its projected points at mask resolution; a point is
hidden when a point nearer by more than the margin lies within ``window_px`` of its pixel (LiDAR
is sparser than pixels, so the nearest point is looked for in a window). The margin grows with
depth so that one surface seen at a grazing angle (the road ahead, a facade along the street)
does not hide itself: across half the window such a surface's depth changes by about
depth x half-window / (focal length x tan(grazing angle)). A hidden point takes no label from
that camera. Overlap: a point seen by several cameras takes the label
of the one with the highest confidence at its pixel; without scores (or on a tie), of the one
where it lands nearest the image centre.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from cityseg.fusion.camera import CameraModel, pixel_index
from cityseg.fusion.cloud import UNKNOWN
from cityseg.fusion.extrinsics import Transform

_CENTRE_STEPS = 1024  # closeness to the image centre, below one confidence step


@dataclass(frozen=True)
class OcclusionConfig:
    """How the z-buffer decides a point is hidden."""

    window_px: int = 5
    """Side of the square pixel window (mask pixels) searched for a nearer point; 1: same pixel."""
    margin_m: float = 0.3
    """A nearer point hides this one only when nearer by more than margin_m plus the grazing term."""
    grazing_deg: float = 1.0
    """Surfaces seen at least this steeply do not hide themselves within the window."""

    def __post_init__(self) -> None:
        if self.window_px < 1 or self.margin_m < 0 or not 0 < self.grazing_deg <= 90:
            raise ValueError(f"occlusion window must be >= 1 px, margin >= 0, grazing angle in (0, 90], "
                             f"got {self}")

    def margin_ratio(self, focal_px: float) -> float:
        """Depth-proportional part of the margin for a mask with this focal length (pixels)."""
        return (self.window_px // 2) / (focal_px * np.tan(np.radians(self.grazing_deg)))


@dataclass
class CameraMask:
    """One camera's mask for one cloud, and how cloud points reach its pixels."""

    model: CameraModel
    cloud_to_camera: Transform
    """Maps cloud-frame points into the camera's optical frame."""
    mask: np.ndarray
    """uint8 (H, W) class ids (any size: the received image times output_scale)."""
    confidence: np.ndarray | None = None
    """uint8 (H, W) 0..255 confidence, or None when the model gives no scores."""


@dataclass
class PointLabels:
    """Per point: class id (255 unknown), confidence 0..255 (0 unknown), camera index (255 none)."""

    label: np.ndarray
    confidence: np.ndarray
    camera: np.ndarray

    @classmethod
    def unknown(cls, n: int) -> PointLabels:
        return cls(np.full(n, UNKNOWN, np.uint8), np.zeros(n, np.uint8), np.full(n, UNKNOWN, np.uint8))


def _threshold(nearest: np.ndarray, config: OcclusionConfig, ratio: float) -> np.ndarray:
    """The farthest depth a point may have and still be seen past ``nearest`` (float32, as the
    z-buffer; monotone in ``nearest``)."""
    return nearest + config.margin_m + ratio * nearest


def visible(row: np.ndarray, col: np.ndarray, depth: np.ndarray, shape: tuple[int, int],
            config: OcclusionConfig, focal_px: float) -> np.ndarray:
    """bool per point: no point nearer by the margin lies within the window around its pixel
    (``window_px`` square, anchored as cv2.erode does: window // 2 before; clipped to the mask
    ``shape``).

    Exactly that test, in two passes: a z-buffer of window x window cells, where the (at most)
    2 x 2 cells a point's window overlaps clear nearly every point; the few they do not clear are
    tested pixel by pixel against the points in those cells."""
    if not len(row):
        return np.ones(0, bool)
    k = config.window_px
    ratio = config.margin_ratio(focal_px)
    depth32 = depth.astype(np.float32)
    cells = _Cells(row, col, shape, k)
    grid = np.full(cells.size, np.inf, np.float32)
    np.minimum.at(grid, cells.own, depth32)
    seen = depth <= _threshold(cells.window_min(grid), config, ratio)
    doubt = np.flatnonzero(~seen) if k > 1 else ()  # 1 x 1 cells: that was the test itself
    if len(doubt):
        mark = np.zeros(cells.size, bool)
        mark[cells.window_cells(doubt)] = True
        close = np.flatnonzero(mark[cells.own])  # every point that can lie in a doubtful window
        nearest = _exact_min(row, col, depth32, doubt, close, k, shape)
        seen[doubt] = depth[doubt] <= _threshold(nearest, config, ratio)
    return seen


class _Cells:
    """The points' k x k cells (one cell of nothing around the mask), and the (at most 2 x 2)
    cells each point's window overlaps: rows lo..hi, columns lo..hi."""

    def __init__(self, row: np.ndarray, col: np.ndarray, shape: tuple[int, int], k: int):
        half = k // 2
        self.width = (shape[1] + k) // k + 2
        self.size = ((shape[0] + k) // k + 2) * self.width
        self.own = ((row + k) // k) * self.width + (col + k) // k
        self.row_lo = ((row + (k - half)) // k) * self.width
        self.row_hi = ((row + (2 * k - 1 - half)) // k) * self.width
        self.col_lo, self.col_hi = (col + (k - half)) // k, (col + (2 * k - 1 - half)) // k

    def window_min(self, grid: np.ndarray) -> np.ndarray:
        """Per point the least of ``grid`` over its window's cells: at most its window's least depth."""
        out = grid[self.row_lo + self.col_lo]
        np.minimum(out, grid[self.row_lo + self.col_hi], out=out)
        np.minimum(out, grid[self.row_hi + self.col_lo], out=out)
        return np.minimum(out, grid[self.row_hi + self.col_hi], out=out)

    def window_cells(self, at: np.ndarray) -> np.ndarray:
        """The cells the windows of points ``at`` overlap (with repeats)."""
        lo, hi = self.row_lo[at], self.row_hi[at]
        return np.concatenate([lo + self.col_lo[at], lo + self.col_hi[at], hi + self.col_lo[at], hi + self.col_hi[at]])


class _Scratch(threading.local):
    """A z-buffer at mask resolution per thread, all +inf between uses (filling a fresh one would
    cost more than the few points it holds)."""

    def __init__(self) -> None:
        self.zbuf = np.zeros(0, np.float32)

    def buffer(self, size: int) -> np.ndarray:
        if self.zbuf.size < size:
            self.zbuf = np.full(size, np.inf, np.float32)
        return self.zbuf


_SCRATCH = _Scratch()


def _exact_min(row: np.ndarray, col: np.ndarray, depth: np.ndarray, doubt: np.ndarray, close: np.ndarray,
               k: int, shape: tuple[int, int]) -> np.ndarray:
    """The least depth of the points ``close`` in the k x k pixel window around each point ``doubt``."""
    half = k // 2
    w = shape[1] + k  # k columns of nothing: a window never wraps onto the next row
    keys = (row[close] + half) * w + (col[close] + half)
    zbuf = _SCRATCH.buffer((shape[0] + k) * w)
    try:
        np.minimum.at(zbuf, keys, depth[close])
        window = (np.arange(-half, k - half)[:, None] * w + np.arange(-half, k - half)).ravel()
        centre = (row[doubt] + half) * w + (col[doubt] + half)
        return zbuf[centre[:, None] + window].min(axis=1)
    finally:
        zbuf[keys] = np.inf


def _centre_closeness(model: CameraModel, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    w, h = model.image_size
    cx, cy = (w - 1) / 2, (h - 1) / 2
    dist = np.hypot((u - cx) / max(cx, 1), (v - cy) / max(cy, 1)) / np.sqrt(2)
    return ((_CENTRE_STEPS - 1) * (1 - np.clip(dist, 0, 1))).astype(np.int64)


def _in_frustum(points: np.ndarray, transform: Transform, limit: float) -> np.ndarray:
    """Indices of the float32 points (N, 1, 3) that may land in a camera whose projection culls
    |x/z| above ``limit``: the two side planes of its frustum (cv2.transform onto each, their
    minimum), loose enough that float32 rounding drops no point the float64
    projection keeps (the cloud's points lie around the horizon: the top and bottom are left to
    the projection). Points behind the camera and NaN points drop out."""
    if not len(points):
        return np.zeros(0, np.intp)
    lim = limit * (1 + 1e-4)
    r, t = transform.rotation, transform.translation
    eps = 1e-2 + 1e-6 * float(np.abs(t).max())
    side = []
    for sign in (-1.0, 1.0):
        plane = np.empty((1, 4), np.float64)
        plane[0, :3] = lim * r[2] + sign * r[0]
        plane[0, 3] = lim * t[2] + sign * t[0]
        side.append(cv2.transform(points, plane.astype(np.float32)))
    return np.flatnonzero(np.minimum(side[0], side[1], out=side[0]) >= -eps)  # NaN: False


@dataclass
class _Seen:
    """The points one camera labels (ascending cloud indices), where they land, their confidence."""

    model: CameraModel
    target: np.ndarray
    u: np.ndarray
    v: np.ndarray
    kept: np.ndarray
    """Positions in ``u`` and ``v`` (all the camera's projected points) of the points in ``target``."""
    conf: np.ndarray

    def priority(self, at: np.ndarray) -> np.ndarray:
        """Overlap priority of the points ``at`` (positions in ``target``): confidence first, then
        closeness to the image centre."""
        where = self.kept[at]
        return self.conf[at].astype(np.int64) * _CENTRE_STEPS + _centre_closeness(self.model, self.u[where],
                                                                                   self.v[where])


def _overlap_winners(current: np.ndarray, new: _Seen, earlier: dict[int, _Seen]) -> np.ndarray | slice:
    """Which of ``new``'s points take its label: those no earlier camera labelled, and those whose
    priority beats the labelling camera's (``current``: camera per point, 255 none). Priorities
    are worked out only where cameras overlap."""
    taken = np.flatnonzero(current != UNKNOWN)
    if not len(taken):
        return slice(None)
    win = np.ones(len(current), bool)
    mine = new.priority(taken)
    owner = current[taken]
    for index, other in earlier.items():
        here = np.flatnonzero(owner == index) if len(earlier) > 1 else np.arange(len(taken))
        if len(here):
            at = taken[here]
            theirs = other.priority(other.target.searchsorted(new.target[at]))
            win[at] = mine[here] > theirs
    return win


def cloud_points(xyz: np.ndarray) -> np.ndarray:
    """float32 (N, 1, 3) points of a cloud (N, 3) (no copy for float32): what :func:`project_cloud`
    culls with, made once per cloud."""
    cloud = np.asarray(xyz)
    return np.ascontiguousarray(cloud, np.float32).reshape(len(cloud), 1, 3)


def project_cloud(xyz: np.ndarray, points: np.ndarray, model: CameraModel, cloud_to_camera: Transform,
                  max_range: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The cloud points (N, 3) that land in one camera: their indices (ascending), pixel u and v,
    and depth. The cloud is culled in float32 first (:func:`_in_frustum`, on ``points`` from
    :func:`cloud_points`); the points left are transformed and projected in float64, as
    :meth:`CameraModel.project_xyz` alone would. ``max_range``: metres from the camera."""
    t = cloud_to_camera
    ahead = _in_frustum(points, t, model.axis_limit)
    source = np.asarray(xyz)
    px, py, pz = (source[ahead, i].astype(np.float64) for i in range(3))
    with np.errstate(invalid="ignore", divide="ignore"):  # infinite points: NaN, then culled
        x, y, z = (t.apply_row(i, px, py, pz) for i in range(3))
        if max_range is not None:
            near = np.flatnonzero(x * x + y * y + z * z <= max_range ** 2)
            ahead, x, y, z = ahead[near], x[near], y[near], z[near]
        local, u, v = model.project_xyz(x, y, z)
    return ahead[local], u, v, z[local]


def mask_focal(model: CameraModel, mask_shape: tuple[int, int]) -> float:
    """The smaller focal length in pixels of a mask of ``mask_shape`` (H, W) over the camera's image."""
    return min(model.focal_px[0] * mask_shape[1] / model.image_size[0],
               model.focal_px[1] * mask_shape[0] / model.image_size[1])


def label_points(xyz: np.ndarray, cameras: Sequence[CameraMask | None],
                 occlusion: OcclusionConfig | None = OcclusionConfig(),
                 max_range: float | None = None) -> PointLabels:
    """Label cloud-frame points (N, 3; NaN kept, labelled 255) with the cameras' masks. ``cameras``
    is in the node's camera order; None (no mask in tolerance, no transform) contributes nothing.
    ``occlusion`` None skips the z-buffer; ``max_range`` (metres from the camera) limits each camera.

    Each camera's points come from :func:`project_cloud`."""
    n = len(xyz)
    out = PointLabels.unknown(n)
    cloud = np.asarray(xyz)
    if not n or all(cam is None for cam in cameras):
        return out
    points = cloud_points(cloud)
    earlier: dict[int, _Seen] = {}
    for index, cam in enumerate(cameras):
        if cam is None:
            continue
        seen, u, v, depth = project_cloud(cloud, points, cam.model, cam.cloud_to_camera, max_range)
        if not len(seen):
            continue
        mh, mw = cam.mask.shape[:2]
        row, col = pixel_index(u, v, cam.model.image_size, (mh, mw))
        flat = row * mw + col
        label = cam.mask.reshape(-1)[flat] if cam.mask.ndim == 2 else cam.mask[row, col]
        keep = label != UNKNOWN
        if occlusion is not None:
            keep &= visible(row, col, depth, (mh, mw), occlusion, mask_focal(cam.model, (mh, mw)))
        kept = np.flatnonzero(keep)
        target, label = seen[kept], label[kept]
        if cam.confidence is not None and cam.confidence.shape == (mh, mw):
            conf = cam.confidence.reshape(-1)[flat[kept]]
        elif cam.confidence is not None:
            conf = cam.confidence[row[kept], col[kept]]
        else:
            conf = np.zeros(len(kept), np.uint8)
        seen_by = _Seen(cam.model, target, u, v, kept, conf)
        win = _overlap_winners(out.camera[target], seen_by, earlier)
        earlier[index] = seen_by
        target = target[win]
        out.label[target] = label[win]
        out.confidence[target] = conf[win]
        out.camera[target] = index
    return out


def drop_labels(label: np.ndarray, drop_ids: Sequence[int]) -> np.ndarray | None:
    """bool per point to keep (its label not in ``drop_ids``), or None when nothing is dropped."""
    if not len(drop_ids):
        return None
    return ~np.isin(label, np.asarray(drop_ids, np.uint8))


class MaskHistory:
    """One camera's recent masks by stamp; :meth:`nearest` picks the one for a cloud."""

    def __init__(self, depth: int = 8):
        self._items: deque[tuple[int, Any]] = deque(maxlen=depth)

    def add(self, stamp_ns: int, item: Any) -> None:
        self._items.append((int(stamp_ns), item))

    def nearest(self, stamp_ns: int, tolerance_ns: int) -> Any | None:
        """The item stamped nearest ``stamp_ns`` and within ``tolerance_ns`` of it, else None."""
        best = min(self._items, key=lambda it: abs(it[0] - stamp_ns), default=None)
        if best is None or abs(best[0] - stamp_ns) > tolerance_ns:
            return None
        return best[1]

    def __len__(self) -> int:
        return len(self._items)

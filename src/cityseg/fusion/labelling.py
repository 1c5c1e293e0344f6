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

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from cityseg.fusion.camera import NEAR, CameraModel, pixel_index
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


def visible(row: np.ndarray, col: np.ndarray, depth: np.ndarray, shape: tuple[int, int],
            config: OcclusionConfig, focal_px: float) -> np.ndarray:
    """bool per point: no point nearer by the margin lies within the window around its pixel.
    The z-buffer covers only the box the points fall in (plus the window)."""
    if not len(row):
        return np.ones(0, bool)
    half = config.window_px // 2
    r0, c0 = max(int(row.min()) - half, 0), max(int(col.min()) - half, 0)
    h = min(int(row.max()) + half + 1, shape[0]) - r0
    w = min(int(col.max()) + half + 1, shape[1]) - c0
    flat = (row - r0) * w + (col - c0)
    zbuf = np.full(h * w, np.inf, np.float32)
    np.minimum.at(zbuf, flat, depth.astype(np.float32))
    if config.window_px > 1:
        k = config.window_px
        zbuf = cv2.erode(zbuf.reshape(h, w), np.ones((k, k), np.uint8), borderType=cv2.BORDER_REPLICATE).ravel()
    nearest = zbuf[flat]
    return depth <= nearest + config.margin_m + config.margin_ratio(focal_px) * nearest


def _centre_closeness(model: CameraModel, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    w, h = model.image_size
    cx, cy = (w - 1) / 2, (h - 1) / 2
    dist = np.hypot((u - cx) / max(cx, 1), (v - cy) / max(cy, 1)) / np.sqrt(2)
    return ((_CENTRE_STEPS - 1) * (1 - np.clip(dist, 0, 1))).astype(np.int64)


def label_points(xyz: np.ndarray, cameras: Sequence[CameraMask | None],
                 occlusion: OcclusionConfig | None = OcclusionConfig(),
                 max_range: float | None = None) -> PointLabels:
    """Label cloud-frame points (N, 3; NaN kept, labelled 255) with the cameras' masks. ``cameras``
    is in the node's camera order; None (no mask in tolerance, no transform) contributes nothing.
    ``occlusion`` None skips the z-buffer; ``max_range`` (metres from the camera) limits each camera."""
    n = len(xyz)
    out = PointLabels.unknown(n)
    finite = np.flatnonzero(np.isfinite(xyz).all(axis=1))
    if not len(finite):
        return out
    best = np.full(n, -1, np.int64)
    points = np.asarray(xyz, np.float64)[finite]
    px, py, pz = (np.ascontiguousarray(points[:, i]) for i in range(3))
    for index, cam in enumerate(cameras):
        if cam is None:
            continue
        t = cam.cloud_to_camera
        z = t.apply_row(2, px, py, pz)
        ahead = np.flatnonzero(z > NEAR)
        x, y, z = t.apply_row(0, px[ahead], py[ahead], pz[ahead]), t.apply_row(1, px[ahead], py[ahead], pz[ahead]), \
            z[ahead]
        if max_range is not None:
            near = np.flatnonzero(x * x + y * y + z * z <= max_range ** 2)
            ahead, x, y, z = ahead[near], x[near], y[near], z[near]
        local, u, v = cam.model.project_xyz(x, y, z)
        if not len(local):
            continue
        seen, depth = ahead[local], z[local]
        row, col = pixel_index(u, v, cam.model.image_size, cam.mask.shape[:2])
        label = cam.mask[row, col]
        if occlusion is None:
            keep = np.ones(len(seen), bool)
        else:
            focal = min(cam.model.focal_px[0] * cam.mask.shape[1] / cam.model.image_size[0],
                        cam.model.focal_px[1] * cam.mask.shape[0] / cam.model.image_size[1])
            keep = visible(row, col, depth, cam.mask.shape[:2], occlusion, focal)
        keep &= label != UNKNOWN
        conf = cam.confidence[row, col] if cam.confidence is not None else np.zeros(len(seen), np.uint8)
        priority = conf.astype(np.int64) * _CENTRE_STEPS + _centre_closeness(cam.model, u, v)
        target = finite[seen]
        better = keep & (priority > best[target])
        target = target[better]
        best[target] = priority[better]
        out.label[target] = label[better]
        out.confidence[target] = conf[better]
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

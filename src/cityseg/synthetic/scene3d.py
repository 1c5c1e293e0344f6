"""A 3-D street of boxes on labelled ground strips that cameras and a LiDAR see through the same
ray caster, so rendered masks and LiDAR points share one geometry and carry true labelIds.

World frame as ROS's base_link: x forward, y left, z up, ground at z = 0. Camera optical frames
follow REP 103 (x right, y down, z forward). Labels are Cityscapes labelIds (cityseg.labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cityseg.fusion.camera import CameraModel
from cityseg.fusion.extrinsics import Transform
from cityseg.synthetic.geometry import BUILDING, CAR, PERSON, POLE, ROAD, SIDEWALK, SKY, TERRAIN, VEGETATION, WALL

MAX_RANGE = 200.0
OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
"""Rotation from a camera's optical frame to a body frame looking along +x."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box [lo, hi] of one class."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    label: int


@dataclass
class Scene:
    """Boxes on the ground plane; the ground's class by lateral band (y0, y1, label), else terrain."""

    boxes: list[Box] = field(default_factory=list)
    strips: list[tuple[float, float, int]] = field(default_factory=list)
    ground: int = TERRAIN

    def cast(self, origin: np.ndarray, dirs: np.ndarray, max_range: float = MAX_RANGE):
        """First hit of rays from ``origin`` (3,) along ``dirs`` (N, 3): (distance along the unit
        ray, labelId); misses are (inf, sky)."""
        origin = np.asarray(origin, np.float64)
        d = np.asarray(dirs, np.float64)
        d = d / np.linalg.norm(d, axis=1, keepdims=True)
        best = np.full(len(d), np.inf)
        label = np.full(len(d), SKY, np.uint8)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_ground = np.where(d[:, 2] < -1e-9, -origin[2] / d[:, 2], np.inf)
            inv = 1.0 / d
        hit = t_ground < max_range
        best[hit] = t_ground[hit]
        y = origin[1] + d[:, 1] * np.where(hit, t_ground, 0)
        ground = np.full(len(d), self.ground, np.uint8)
        for y0, y1, strip_label in self.strips:
            ground[(y >= y0) & (y < y1)] = strip_label
        label[hit] = ground[hit]
        for box in self.boxes:
            with np.errstate(invalid="ignore"):
                t0 = (np.asarray(box.lo) - origin) * inv
                t1 = (np.asarray(box.hi) - origin) * inv
            near = np.nanmax(np.minimum(t0, t1), axis=1)
            far = np.nanmin(np.maximum(t0, t1), axis=1)
            t = np.where(near > 1e-6, near, far)
            ok = (far >= np.maximum(near, 1e-6)) & (t < best)
            best[ok] = t[ok]
            label[ok] = box.label
        return best, label


def camera_pose(x: float, y: float, z: float, yaw_deg: float, pitch_deg: float = 0.0) -> Transform:
    """Optical frame -> world of a camera at (x, y, z) looking along yaw (left positive), pitched down."""
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    ry = np.array([[np.cos(pitch), 0, np.sin(pitch)], [0, 1, 0], [-np.sin(pitch), 0, np.cos(pitch)]])
    return Transform(rz @ ry @ OPTICAL, np.array([x, y, z], np.float64))


def render_labels(scene: Scene, model: CameraModel, pose: Transform, size: tuple[int, int] | None = None):
    """The camera's true labelId mask (H, W) at ``size`` (W, H; default the received image)."""
    w, h = size or model.image_size
    rays = model.pixel_rays(w, h).reshape(-1, 3) @ pose.rotation.T
    return scene.cast(pose.translation, rays)[1].reshape(h, w)


def make_street(rng: np.random.Generator, length: float = 80.0) -> Scene:
    """A random street along +x: road, sidewalks, terrain; buildings and walls behind, cars, people,
    poles and trees (as boxes) around the origin."""
    half = float(rng.uniform(3.5, 6.0))
    walk = half + float(rng.uniform(2.0, 4.0))
    scene = Scene(strips=[(-half, half, ROAD), (half, walk, SIDEWALK), (-walk, -half, SIDEWALK)])
    for side in (-1, 1):
        x = -length / 2
        while x < length:
            depth, width = rng.uniform(6, 14), rng.uniform(8, 20)
            y0 = side * (walk + rng.uniform(1.0, 4.0))
            y1 = y0 + side * depth
            kind = BUILDING if rng.random() < 0.8 else WALL
            height = rng.uniform(6, 25) if kind == BUILDING else rng.uniform(1.5, 3)
            scene.boxes.append(Box((x, min(y0, y1), 0.0), (x + width, max(y0, y1), height), kind))
            x += width + rng.uniform(0.0, 3.0)
        for x in rng.uniform(-length / 2, length, 6):
            y = side * rng.uniform(half + 0.3, walk - 0.3)
            cls, size = (POLE, (0.25, 0.25, 4.0)) if rng.random() < 0.5 else (PERSON, (0.5, 0.6, 1.8))
            scene.boxes.append(Box((x, y, 0.0), (x + size[0], y + size[1], size[2]), cls))
        for x in rng.uniform(-length / 2, length, 3):
            y = side * rng.uniform(walk, walk + 0.8)
            scene.boxes.append(Box((x, y - 1.0, 1.5), (x + 2.5, y + 1.0, 4.0), VEGETATION))
    for x in rng.uniform(-length / 2, length, 8):
        if abs(x) < 4:
            continue  # the ego vehicle's own place
        y = rng.uniform(-half + 1.0, half - 1.0)
        scene.boxes.append(Box((x, y - 0.9, 0.0), (x + 4.5, y + 0.9, 1.5), CAR))
    return scene

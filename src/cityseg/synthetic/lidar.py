"""A synthetic spinning LiDAR: rays cast against a :class:`~cityseg.synthetic.scene3d.Scene`, each
return with its true labelId, packed as real drivers' PointCloud2 layouts (Velodyne-style
x, y, z, intensity, ring, time at 22 bytes; Ouster-style 48-byte organized points, NaN where no
return).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cityseg.fusion.cloud import CloudLayout, make_cloud
from cityseg.fusion.extrinsics import Transform
from cityseg.synthetic.scene3d import Scene

NO_RETURN = 255


@dataclass(frozen=True)
class LidarSpec:
    """Beams between two elevations, one column per azimuth step, returns up to max_range."""

    beams: int = 64
    lower_deg: float = -24.0
    upper_deg: float = 4.0
    azimuth_step_deg: float = 0.2
    max_range: float = 120.0

    @property
    def columns(self) -> int:
        return int(round(360.0 / self.azimuth_step_deg))


@dataclass
class Scan:
    """One revolution, organized (beams x columns, row-major): lidar-frame points (NaN: no
    return), true labelId (255: no return), ring, intensity, time offset in seconds."""

    xyz: np.ndarray
    label: np.ndarray
    ring: np.ndarray
    intensity: np.ndarray
    time: np.ndarray
    beams: int
    columns: int

    @property
    def hit(self) -> np.ndarray:
        return self.label != NO_RETURN


def scan(scene: Scene, pose: Transform, spec: LidarSpec = LidarSpec(), period_s: float = 0.1) -> Scan:
    """Cast one revolution from the sensor at ``pose`` (lidar frame -> world)."""
    elev = np.radians(np.linspace(spec.lower_deg, spec.upper_deg, spec.beams))
    azim = np.radians(np.arange(spec.columns) * spec.azimuth_step_deg - 180.0)
    el, az = np.meshgrid(elev, azim, indexing="ij")
    local = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)
    dist, label = scene.cast(pose.translation, local @ pose.rotation.T, spec.max_range)
    hit = dist < spec.max_range
    xyz = np.where(hit[:, None], local * np.where(hit, dist, 0)[:, None], np.nan).astype(np.float32)
    label = np.where(hit, label, NO_RETURN).astype(np.uint8)
    ring = np.repeat(np.arange(spec.beams, dtype=np.uint16), spec.columns)
    intensity = np.where(hit, 10.0 + label.astype(np.float32), 0.0).astype(np.float32)
    time = np.tile(np.arange(spec.columns, dtype=np.float32) * (period_s / spec.columns), spec.beams)
    return Scan(xyz, label, ring, intensity, time, spec.beams, spec.columns)


def velodyne_cloud(s: Scan) -> tuple[CloudLayout, bytes, np.ndarray]:
    """Velodyne-style unorganized cloud of the returns (x, y, z, intensity float32, ring uint16,
    time float32: 22 bytes); also the returns' indices into the scan."""
    idx = np.flatnonzero(s.hit)
    layout, data = make_cloud([("x", s.xyz[idx, 0]), ("y", s.xyz[idx, 1]), ("z", s.xyz[idx, 2]),
                               ("intensity", s.intensity[idx]), ("ring", s.ring[idx]), ("time", s.time[idx])])
    assert layout.point_step == 22
    return layout, data, idx


def ouster_cloud(s: Scan) -> tuple[CloudLayout, bytes, np.ndarray]:
    """Ouster-style organized cloud (beams x columns, 48-byte points: x, y, z at 0, intensity at
    16, t at 20, reflectivity at 24, ring at 26, ambient at 28, range at 32), NaN where no return."""
    n = len(s.label)
    rng = np.where(s.hit, np.linalg.norm(np.nan_to_num(s.xyz), axis=1) * 1000, 0).astype(np.uint32)
    columns = [("x", s.xyz[:, 0]), ("y", s.xyz[:, 1]), ("z", s.xyz[:, 2]), ("_pad", np.zeros(n, np.float32)),
               ("intensity", s.intensity), ("t", (s.time * 1e9).astype(np.uint32)),
               ("reflectivity", s.label.astype(np.uint16)), ("ring", s.ring.astype(np.uint16)),
               ("ambient", np.zeros(n, np.uint16)), ("_pad2", np.zeros(n, np.uint16)), ("range", rng)]
    layout, data = make_cloud(columns, point_step=48, height=s.beams)
    fields = tuple(f for f in layout.fields if not f.name.startswith("_"))
    return CloudLayout(layout.height, layout.width, fields, 48, layout.row_step), data, np.arange(n)

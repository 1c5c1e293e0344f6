"""The bird's-eye semantic grid, ROS-free: a cost grid (nav_msgs/OccupancyGrid values: 0..100,
-1 unknown) and a class-id grid (255 unknown) of the same geometry, from labelled points or, for
camera-only vehicles, from the masks' ground classes projected onto the ground plane.

Cell (row r, column c) covers x in [origin_x + c*res, +res), y in [origin_y + r*res, +res) of the
grid frame (z up, the ground at z = 0), row-major from the origin as OccupancyGrid.data is.
Several points in one cell: the cell takes the highest cost among them (an obstacle beats the
road under it) and that point's class.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cityseg.fusion.cloud import UNKNOWN
from cityseg.fusion.extrinsics import Transform
from cityseg.fusion.labelling import CameraMask, label_points

UNKNOWN_COST = -1
FREE, LOW, LETHAL = 0, 20, 100
DEFAULT_COSTS: dict[str, int] = {
    "road": FREE, "parking": FREE,
    "sidewalk": LOW, "terrain": LOW, "ground": LOW, "rail track": LETHAL,
    "building": LETHAL, "wall": LETHAL, "fence": LETHAL, "guard rail": LETHAL, "bridge": LETHAL,
    "tunnel": LETHAL, "pole": LETHAL, "polegroup": LETHAL, "traffic light": LETHAL,
    "traffic sign": LETHAL, "vegetation": LETHAL, "person": LETHAL, "rider": LETHAL, "car": LETHAL,
    "truck": LETHAL, "bus": LETHAL, "caravan": LETHAL, "trailer": LETHAL, "train": LETHAL,
    "motorcycle": LETHAL, "bicycle": LETHAL, "static": LETHAL, "dynamic": LETHAL,
}
"""Cost per class name (Cityscapes names); any other class (sky, unlabeled, ego vehicle) is -1."""
GROUND_CLASSES = ("road", "sidewalk", "parking", "terrain", "ground")
"""The classes a camera-only grid projects onto the ground plane (nothing else lies on it)."""


@dataclass(frozen=True)
class GridSpec:
    """Grid geometry: frame, metres per cell, size in cells, origin of cell (0, 0)'s corner."""

    frame: str = "base_link"
    resolution: float = 0.2
    width: int = 250
    height: int = 250
    origin_x: float = -25.0
    origin_y: float = -25.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.resolution) and self.resolution > 0):
            raise ValueError(f"grid resolution must be a positive number of metres per cell, got {self.resolution}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"grid width and height must be positive numbers of cells, got {self.width}x{self.height}")
        if not (math.isfinite(self.origin_x) and math.isfinite(self.origin_y)):
            raise ValueError(f"grid origin must be two finite numbers (metres), got {self.origin_x}, {self.origin_y}")

    def cell_centres(self) -> np.ndarray:
        """float64 (height*width, 3) centres of the cells on the ground plane, row-major."""
        xs = self.origin_x + (np.arange(self.width) + 0.5) * self.resolution
        ys = self.origin_y + (np.arange(self.height) + 0.5) * self.resolution
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], 1)


@dataclass
class SemanticGrid:
    """int8 (H, W) costs (-1 unknown) and uint8 (H, W) class ids (255 unknown)."""

    spec: GridSpec
    cost: np.ndarray
    label: np.ndarray


def cost_table(classes: Iterable[tuple[int, str]], costs: Mapping[str, int] | None = None,
               overrides: Mapping[str, int] | None = None) -> np.ndarray:
    """int16[256]: mask id -> cost, from (id, name) pairs and a name -> cost table (default
    DEFAULT_COSTS; names it lacks: -1), with ``overrides`` on top. Refuses costs outside -1..100
    and names no class has (in ``costs`` and ``overrides``)."""
    classes = list(classes)
    table = dict(DEFAULT_COSTS if costs is None else costs)
    names = {name for _, name in classes}
    given = set(costs or ()) | set(overrides or ())
    unknown = sorted(given - names)
    if unknown:
        raise ValueError(f"grid cost table names unknown class(es) {unknown}; classes: {sorted(names)}")
    table.update(overrides or {})
    bad = {k: v for k, v in table.items() if not -1 <= int(v) <= 100}
    if bad:
        raise ValueError(f"grid costs must be within -1..100 (OccupancyGrid), got {bad}")
    lut = np.full(256, UNKNOWN_COST, np.int16)
    for mask_id, name in classes:
        lut[mask_id] = int(table.get(name, UNKNOWN_COST))
    return lut


def parse_costs(entries: Iterable[str]) -> dict[str, int]:
    """'name:cost' entries (e.g. ['sidewalk:50', 'vegetation:-1']) -> {name: cost}; ValueError
    naming a malformed entry."""
    out = {}
    for entry in entries:
        name, sep, value = str(entry).rpartition(":")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = int(value)
        except ValueError:
            raise ValueError(f"grid cost {entry!r} is not 'class name:cost' (e.g. 'sidewalk:50')") from None
    return out


def class_ids(classes: Iterable[tuple[int, str]], names: Iterable[str]) -> list[int]:
    """Mask ids of the classes called ``names`` (ValueError naming any unknown name)."""
    by_name = {name: mask_id for mask_id, name in classes}
    missing = sorted(set(names) - set(by_name))
    if missing:
        raise ValueError(f"unknown class name(s) {missing}; classes: {sorted(by_name)}")
    return [by_name[n] for n in names]


def grid_from_points(spec: GridSpec, points: np.ndarray, label: np.ndarray, costs: np.ndarray) -> SemanticGrid:
    """Grid from grid-frame points (N, 3) and their labels; ``costs`` from :func:`cost_table`."""
    return grid_from_cloud(spec, points, label, costs)


def grid_from_cloud(spec: GridSpec, xyz: np.ndarray, label: np.ndarray, costs: np.ndarray,
                    to_grid: Transform | None = None) -> SemanticGrid:
    """Grid from a cloud's points (N, 3) and their labels, ``to_grid`` mapping the cloud's frame
    into the grid's (None: the points are in the grid's frame). Only the labelled points with a
    cost are transformed (float64), and only their x and y: what the node and the bag tool call."""
    keys = _cell_keys(costs)
    used = np.flatnonzero((keys >= 0)[label])
    points = np.asarray(xyz)
    if to_grid is None:
        gx, gy = points[used, 0], points[used, 1]
    else:
        px, py, pz = (points[used, i].astype(np.float64) for i in range(3))
        gx, gy = to_grid.apply_row(0, px, py, pz), to_grid.apply_row(1, px, py, pz)
    x = np.floor((gx - spec.origin_x) / spec.resolution)
    y = np.floor((gy - spec.origin_y) / spec.resolution)
    inside = np.flatnonzero((x >= 0) & (x < spec.width) & (y >= 0) & (y < spec.height))
    y *= spec.width
    y += x  # the cell, exactly (whole numbers far below 2**53)
    cell = y[inside].astype(np.intp)
    key = np.full(spec.width * spec.height, -1, np.int32)
    np.maximum.at(key, cell, keys[label[used[inside]]])
    return _grid(spec, key)


def _cell_keys(costs: np.ndarray) -> np.ndarray:
    """int32[256]: per class id the key a cell keeps the largest of, cost x 256 + id (-1: the
    class has no cost, and for UNKNOWN)."""
    ids = np.arange(256, dtype=np.int32)
    keys = np.where(costs >= 0, costs.astype(np.int32) * 256 + ids, -1).astype(np.int32)
    keys[UNKNOWN] = -1
    return keys


def _grid(spec: GridSpec, key: np.ndarray) -> SemanticGrid:
    """Cost and class grids from per-cell keys (cost x 256 + id; -1 unknown, which the shift and
    the mask turn into -1 and 255)."""
    cost = (key >> 8).astype(np.int8).reshape(spec.height, spec.width)
    label = (key & 255).astype(np.uint8).reshape(spec.height, spec.width)
    return SemanticGrid(spec, cost, label)


def grid_from_masks(spec: GridSpec, cameras: Sequence[CameraMask | None], ground_ids: Sequence[int],
                    costs: np.ndarray, max_range: float = 30.0) -> SemanticGrid:
    """Camera-only grid: each cell centre on the ground plane takes the class of the pixel it
    projects to, when that class is a ground class and the cell is within ``max_range`` of the
    camera (each CameraMask's transform maps *grid-frame* points into the camera). A pixel of any
    other class (a car, a wall) leaves the cell unknown: flat-ground projection places only the
    ground correctly; anything standing on it would be smeared far behind its foot."""
    centres = spec.cell_centres()
    labels = label_points(centres, cameras, occlusion=None, max_range=max_range).label
    ground = np.isin(labels, np.asarray(list(ground_ids), np.uint8))
    key = np.where(ground, costs[labels].astype(np.int32) * 256 + labels, -1)
    key[costs[labels] < 0] = -1
    return _grid(spec, key.astype(np.int32))


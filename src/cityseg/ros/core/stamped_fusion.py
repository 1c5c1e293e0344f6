"""The stamped-transform and camera-only options (:class:`FusionOptions`) and the camera-only
bird's-eye grid (:class:`GroundGridRunner`, one per rig frame), for the bag replay and the node.
ROS-free; the transforms come from a :data:`cityseg.ros.core.fusion_runner.Lookup` (a bag's /tf and
/tf_static, an extrinsics file, or tf2 in the node), as the labelled clouds' FusionRunner takes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cityseg.errors import InputError
from cityseg.fusion.camera import CameraModel
from cityseg.fusion.extrinsics import TF_TOLERANCE_NS
from cityseg.fusion.grid import (
    GROUND_CLASSES,
    SemanticGrid,
    cost_table,
    grid_from_masks,
)
from cityseg.fusion.labelling import CameraMask
from cityseg.ros.core.fusion_runner import FusionConfig, FusionCounters, Lookup

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class FusionOptions(FusionConfig):
    """FusionConfig plus the stamped-transform and camera-only grid settings. ``points_topic``
    empty with a ``grid``: the camera-only grid (:class:`GroundGridRunner`)."""

    fixed_frame: str = ""
    """A frame that does not move with the vehicle (odom): each sensor's pose is looked up at its own
    stamp through it, compensating ego motion between them; empty: one stamp per lookup."""
    grid_range_m: float = 30.0
    """Camera-only grid: cells farther than this from a camera take nothing from it."""
    tf_tolerance_ms: float = TF_TOLERANCE_NS / 1e6
    """A /tf lookup this far outside the samples takes the nearest; farther: missing."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.grid_range_m <= 0 or self.tf_tolerance_ms < 0:
            raise ValueError(f"grid range must be > 0 and tf tolerance >= 0, got {self.grid_range_m}, "
                             f"{self.tf_tolerance_ms}")

    @property
    def camera_only(self) -> bool:
        return not self.points_topic and self.grid is not None


def options_of(config: FusionConfig) -> FusionOptions:
    """``config`` as FusionOptions (the defaults for the fields a plain FusionConfig lacks)."""
    if isinstance(config, FusionOptions):
        return config
    return FusionOptions(**{k: getattr(config, k) for k in FusionConfig.__dataclass_fields__})


def _count(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


@dataclass
class GroundGrid:
    """One camera-only grid: the stamp of the rig frame's newest mask and what came with that mask."""

    stamp_ns: int
    grid: SemanticGrid
    tag: Any = None


class GroundGridRunner:
    """The camera-only grid: masks in (:meth:`add_mask`), one grid out per rig frame (``emit``).

    A rig frame is the cameras' masks stamped within ``sync_tolerance_ms`` of its first mask. Its
    grid is built as soon as every camera has a mask in it, stamped with the newest; a frame still
    missing a camera when a mask beyond the tolerance arrives (a camera stopped or dropped one) is
    built with what it has, that camera counted in ``no_mask``. A mask older than the open frame is
    ignored. The grid frame is looked up at the grid's stamp and each camera at its mask's stamp."""

    def __init__(self, config: FusionOptions, classes: Sequence[tuple[int, str]], cameras: Sequence[str],
                 emit: Callable[[GroundGrid], None], lookup: Lookup, say: Callable[[str], None] = log.warning):
        if config.grid is None:
            raise InputError("fusion without a points topic builds the camera-only grid: give it a grid "
                             "(--grid-frame / grid_frame), or give a points topic")
        classes = list(classes)
        try:
            self.costs = cost_table(classes, overrides=config.grid_costs)
        except ValueError as exc:
            raise InputError(f"grid costs: {exc}") from None
        self.ground_ids = [i for i, name in classes if name in GROUND_CLASSES]
        self.config, self.spec, self.emit, self.lookup, self.say = config, config.grid, emit, lookup, say
        self.cameras = list(cameras)
        self.counters = FusionCounters()
        self.grids = 0
        self._tolerance_ns = int(config.sync_tolerance_ms * 1e6)
        self._open: dict[int, tuple] = {}
        self._first_ns = 0
        self._info: dict[int, Any] = {}
        self._said: set[str] = set()

    def warn_once(self, key: str, text: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.say(text)

    def add_mask(self, camera: int, stamp_ns: int, frame_id: str, mask: np.ndarray, confidence, camera_info,
                 tag: Any = None) -> None:
        """Camera ``camera``'s mask for the image stamped ``stamp_ns``; ``tag`` comes back with the grid
        when this mask is the newest of its rig frame."""
        camera_info = camera_info if camera_info is not None else self._info.get(camera)
        self._info[camera] = camera_info
        if self._open and stamp_ns < self._first_ns - self._tolerance_ns:
            return  # older than the open rig frame: its own frame is gone
        if self._open and stamp_ns > self._first_ns + self._tolerance_ns:
            self._build()
        if not self._open:
            self._first_ns = stamp_ns
        self._open[camera] = (stamp_ns, frame_id, mask, camera_info, tag)
        if len(self._open) == len(self.cameras):
            self._build()

    def finish(self) -> None:
        """Build the open rig frame's grid (the bag ended)."""
        if self._open:
            self._build()

    def _build(self) -> None:
        entries, self._open = self._open, {}
        newest = max(entries, key=lambda i: entries[i][0])
        grid_ns, tag = entries[newest][0], entries[newest][4]
        masks: list[CameraMask | None] = []
        for index, name in enumerate(self.cameras):
            entry = entries.get(index)
            if entry is None:
                _count(self.counters.no_mask, name)
                masks.append(None)
                continue
            stamp_ns, frame_id, mask, info, _ = entry
            if info is None:
                self.warn_once(f"info:{name}", f"{name or 'camera'}: no CameraInfo yet; it adds nothing to the grid")
                masks.append(None)
                continue
            try:
                transform = self.lookup(frame_id, stamp_ns, self.spec.frame, grid_ns)
                model = CameraModel.from_camera_info(info)
            except InputError as exc:
                _count(self.counters.no_transform, name)
                self.warn_once(f"tf:{name}", f"{name or 'camera'}: {exc}; it adds nothing to the grid")
                masks.append(None)
                continue
            masks.append(CameraMask(model, transform, mask))
        grid = grid_from_masks(self.spec, masks, self.ground_ids, self.costs, self.config.grid_range_m)
        self.grids += 1
        self.emit(GroundGrid(grid_ns, grid, tag))

"""The camera-only bird's-eye grid (:class:`GroundGridRunner`, one per rig frame), for the bag
replay and the node.
ROS-free; the transforms come from a :data:`cityseg.fusion.runner.Lookup` (a bag's /tf and
/tf_static, an extrinsics file, or tf2 in the node), as the labelled clouds' FusionRunner takes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cityseg.errors import InputError
from cityseg.fusion.config import FusionConfig
from cityseg.fusion.feed import MaskInput
from cityseg.fusion.grid import (
    GROUND_CLASSES,
    SemanticGrid,
    cost_table,
    grid_from_masks,
)
from cityseg.fusion.labelling import CameraMask
from cityseg.fusion.runner import CameraResolver, FusionCounters, Lookup

log = logging.getLogger(__name__)

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

    def __init__(self, config: FusionConfig, classes: Sequence[tuple[int, str]], cameras: Sequence[str],
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
        self.config, self.spec, self.emit = config, config.grid, emit
        self.cameras = list(cameras)
        self.counters = FusionCounters()
        self.grids = 0
        self._tolerance_ns = int(config.sync_tolerance_ms * 1e6)
        self._open: dict[int, MaskInput] = {}
        self._first_ns = 0
        self._info: dict[int, Any] = {}
        self.resolver = CameraResolver(lookup, self.counters, say, "it adds nothing to the grid")

    def feed(self, item: MaskInput) -> None:
        """A camera's segmented frame (its class ids are all the grid takes)."""
        self.add_mask(item.camera, item.stamp_ns, item.frame_id, item.masks()[0], None, item.camera_info, item.tag)

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
        self._open[camera] = MaskInput(camera, stamp_ns, frame_id, mask, camera_info, tag)
        if len(self._open) == len(self.cameras):
            self._build()

    def finish(self) -> None:
        """Build the open rig frame's grid (the bag ended)."""
        if self._open:
            self._build()

    def _build(self) -> None:
        entries, self._open = self._open, {}
        newest = max(entries.values(), key=lambda entry: entry.stamp_ns)
        grid_ns, tag = newest.stamp_ns, newest.tag
        masks: list[CameraMask | None] = []
        for index, name in enumerate(self.cameras):
            entry = entries.get(index)
            if entry is None:
                self.counters.missed_mask(name)
                masks.append(None)
                continue
            masks.append(self.resolver.camera_mask(name, entry.frame_id, entry.stamp_ns, entry.frame, None,
                                                   entry.camera_info, self.spec.frame, grid_ns))
        grid = grid_from_masks(self.spec, masks, self.ground_ids, self.costs, self.config.grid_range_m)
        self.grids += 1
        self.emit(GroundGrid(grid_ns, grid, tag))

"""What the fusion is asked to do (:class:`FusionConfig`), built in one place from the node's
parameters (:meth:`FusionConfig.from_params`) for the node, ``cityseg bag`` and ``cityseg fleet``
alike, so a replay fuses exactly as the node it replays. The extrinsics file is read here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cityseg.fusion.extrinsics import TF_TOLERANCE_NS, FrameTree, load_extrinsics
from cityseg.fusion.grid import GridSpec, parse_costs
from cityseg.fusion.labelling import OcclusionConfig


@dataclass(frozen=True)
class FusionConfig:
    """What the node's fusion parameters (and ``cityseg bag``'s and ``cityseg fleet``'s options) say.
    ``points_topic`` empty with a ``grid``: the camera-only grid
    (:class:`cityseg.fusion.ground_grid.GroundGridRunner`)."""

    points_topic: str
    extrinsics_file: Path | None = None
    sync_tolerance_ms: float = 50.0
    drop_labels: tuple[str, ...] = ()
    grid: GridSpec | None = None
    grid_costs: dict[str, int] | None = None
    """Costs by class name on top of cityseg.fusion.grid.DEFAULT_COSTS."""
    occlusion: OcclusionConfig = field(default_factory=OcclusionConfig)
    fixed_frame: str = ""
    """A frame that does not move with the vehicle (odom): each sensor's pose is looked up at its own
    stamp through it, compensating ego motion between them; empty: one stamp per lookup."""
    grid_range_m: float = 30.0
    """Camera-only grid: cells farther than this from a camera take nothing from it."""
    tf_tolerance_ms: float = TF_TOLERANCE_NS / 1e6
    """A /tf lookup this far outside the samples takes the nearest; farther: missing."""
    extrinsics: FrameTree | None = field(default=None, compare=False, repr=False)
    """``extrinsics_file`` as read (once, when the config is made; InputError naming the file and
    the entry); every runner takes its transforms from here."""

    def __post_init__(self) -> None:
        if self.sync_tolerance_ms < 0 or self.grid_range_m <= 0 or self.tf_tolerance_ms < 0:
            raise ValueError(f"sync_tolerance_ms and tf tolerance must be >= 0 and grid range > 0, got "
                             f"{self.sync_tolerance_ms}, {self.tf_tolerance_ms}, {self.grid_range_m}")
        if self.extrinsics_file is not None and self.extrinsics is None:
            object.__setattr__(self, "extrinsics", load_extrinsics(self.extrinsics_file))

    @property
    def camera_only(self) -> bool:
        return not self.points_topic and self.grid is not None

    @classmethod
    def from_params(cls, params: Any, *, tf_tolerance_ms: float = TF_TOLERANCE_NS / 1e6,
                    grid_origin: tuple[float, float] | None = None) -> FusionConfig | None:
        """The fusion the node's parameters ask for (``params``: a
        :class:`cityseg.ros.live.params.NodeParams`, already validated, or anything with its
        ``points_topic``, ``extrinsics_file``, ``fixed_frame``, ``sync_tolerance_ms``,
        ``points_drop_labels``, ``grid_*`` fields); None with neither ``points_topic`` nor
        ``grid_frame``. ``tf_tolerance_ms`` and ``grid_origin`` (cell (0, 0)'s corner; default:
        the grid centred on its frame's origin) are the bag tool's own options."""
        if not params.points_topic and not params.grid_frame:
            return None
        grid = None
        if params.grid_frame:
            half = params.grid_cells * params.grid_resolution / 2
            x0, y0 = grid_origin if grid_origin is not None else (-half, -half)
            grid = GridSpec(params.grid_frame, params.grid_resolution, params.grid_cells, params.grid_cells, x0, y0)
        return cls(params.points_topic, Path(params.extrinsics_file) if params.extrinsics_file else None,
                   params.sync_tolerance_ms, tuple(params.points_drop_labels), grid,
                   parse_costs(params.grid_costs) or None, fixed_frame=params.fixed_frame,
                   grid_range_m=params.grid_range, tf_tolerance_ms=tf_tolerance_ms)

"""Labelling clouds with the cameras' masks as they come, for the bag replay and the node: each
camera's recent masks by header stamp, the clouds waiting for masks, the transforms, the counters.
What it is fed, and the node's queue and thread, are :mod:`cityseg.fusion.feed`.

ROS-free: a cloud arrives as any object with PointCloud2's fields (read by
:meth:`cityseg.fusion.cloud.CloudLayout.from_message`). A cloud is labelled once every camera has a
mask stamped at least ``sync_tolerance`` after it (or at :meth:`FusionRunner.finish`), with each
camera's mask nearest its stamp within the tolerance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cityseg.errors import InputError
from cityseg.fusion.camera import CameraModel
from cityseg.fusion.cloud import CloudLayout, read_xyz, write_labelled
from cityseg.fusion.config import FusionConfig
from cityseg.fusion.extrinsics import FrameTree, Transform, TransformBuffer
from cityseg.fusion.feed import CloudInput, MaskInput
from cityseg.fusion.grid import SemanticGrid, class_ids, cost_table, grid_from_cloud
from cityseg.fusion.labelling import CameraMask, MaskHistory, drop_labels, label_points

log = logging.getLogger(__name__)
MAX_PENDING = 32
"""Clouds waiting for masks beyond this are labelled with what is there."""

Lookup = Callable[[str, int, str, int], Transform]
"""(target frame, target stamp ns, source frame, source stamp ns) -> the transform mapping source
points into target; InputError when it is not known."""


def tree_lookup(tree: FrameTree, fixed_frame: str = "") -> Lookup:
    """A Lookup over ``tree``: static (stamps ignored), or a TransformBuffer at the stamps, through
    ``fixed_frame`` when one is given."""
    if not isinstance(tree, TransformBuffer):
        return lambda target, _t, source, _s: tree.lookup(target, source)
    if fixed_frame:
        return lambda target, t, source, s: tree.lookup_full(target, t, source, s, fixed_frame)
    return lambda target, _t, source, s: tree.lookup(target, source, s)


@dataclass
class FusionCounters:
    """Diagnostics counters: clouds labelled, bad clouds, cameras without a mask in tolerance,
    missing transforms (per camera frame)."""

    clouds: int = 0
    bad_clouds: int = 0
    no_mask: dict[str, int] = field(default_factory=dict)
    no_transform: dict[str, int] = field(default_factory=dict)

    def missed_mask(self, camera: str) -> None:
        self.no_mask[camera] = self.no_mask.get(camera, 0) + 1

    def missed_transform(self, camera: str) -> None:
        self.no_transform[camera] = self.no_transform.get(camera, 0) + 1


class CameraResolver:
    """Turns one camera's stored mask into a :class:`CameraMask` (its model from CameraInfo, its
    transform from ``lookup``), or None, counting and saying (once per camera, through ``say``) why:
    what the labelled clouds and the camera-only grid share."""

    def __init__(self, lookup: Lookup, counters: FusionCounters, say: Callable[[str], None],
                 consequence: str):
        self.lookup, self.counters, self.say, self.consequence = lookup, counters, say, consequence
        self._said: set[str] = set()

    def warn_once(self, key: str, text: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.say(text)

    def camera_mask(self, name: str, frame_id: str, mask_ns: int, mask: np.ndarray, confidence, info,
                    target_frame: str, target_ns: int) -> CameraMask | None:
        """The mask of camera ``name`` (frame ``frame_id``, stamped ``mask_ns``) with the transform from
        ``target_frame`` at ``target_ns``; None without CameraInfo or transform."""
        label = name or "camera"
        if info is None:
            self.warn_once(f"info:{name}", f"{label}: no CameraInfo yet; {self.consequence}")
            return None
        try:
            transform = self.lookup(frame_id, mask_ns, target_frame, target_ns)
            model = CameraModel.from_camera_info(info)
        except InputError as exc:
            self.counters.missed_transform(name)
            self.warn_once(f"tf:{name}", f"{label}: {exc}; {self.consequence}")
            return None
        return CameraMask(model, transform, mask, confidence)


@dataclass
class LabelledCloud:
    """One labelled cloud: the input header's stamp and frame, its layout and data, the grid."""

    stamp_ns: int
    frame_id: str
    layout: CloudLayout
    data: bytes
    grid: SemanticGrid | None
    tag: Any = None
    """What the caller gave with the cloud (the bag tool: its bag timestamp and header)."""


@dataclass(frozen=True)
class _StoredMask:
    """One camera's mask as its history keeps it."""

    frame_id: str
    mask: np.ndarray
    confidence: np.ndarray | None
    camera_info: Any
    stamp_ns: int


@dataclass
class _Camera:
    name: str
    history: MaskHistory = field(default_factory=lambda: MaskHistory(16))
    latest_ns: int = -1
    camera_info: Any = None


class FusionRunner:
    """Masks in (:meth:`add_mask`), clouds in (:meth:`add_cloud`), labelled clouds out (``emit``).

    Transforms come from ``lookup`` (a bag's /tf and /tf_static, an extrinsics file, or tf2 in the
    node; default: ``tree`` at each sensor's stamp, through the config's ``fixed_frame`` when it has
    one): each camera at its mask's stamp, the cloud at its own. Warnings go through ``say`` (the
    node's logger), each once per key."""

    def __init__(self, config: FusionConfig, classes: Sequence[tuple[int, str]], cameras: Sequence[str],
                 emit: Callable[[LabelledCloud], None], tree: FrameTree | None = None,
                 lookup: Lookup | None = None, say: Callable[[str], None] = log.warning):
        self.config, self.emit = config, emit
        self.tree = tree if tree is not None else (config.extrinsics or FrameTree("/tf_static"))
        self.lookup = lookup or tree_lookup(self.tree, config.fixed_frame)
        try:
            self.drop_ids = class_ids(classes, config.drop_labels) if config.drop_labels else []
            self.costs = cost_table(classes, overrides=config.grid_costs) if config.grid else None
        except ValueError as exc:  # a class name the model's label set lacks
            raise InputError(f"points_drop_labels / grid costs: {exc}") from None
        self.cameras = [_Camera(name) for name in cameras]
        self.counters = FusionCounters()
        self.resolver = CameraResolver(self.lookup, self.counters, say, "its points stay 255")
        self.warn_once = self.resolver.warn_once
        self._pending: list[CloudInput] = []
        self._tolerance_ns = int(config.sync_tolerance_ms * 1e6)
        self._cloud_ns = 0

    def feed(self, item: MaskInput | CloudInput) -> None:
        """A camera's segmented frame or a cloud, as the node's queue and the bag replay give them."""
        if isinstance(item, CloudInput):
            self._pending.append(item)
            self._drain(final=False)
        else:
            self.add_mask(item.camera, item.stamp_ns, item.frame_id, *item.masks(), item.camera_info)

    def add_mask(self, camera: int, stamp_ns: int, frame_id: str, mask: np.ndarray,
                 confidence: np.ndarray | None, camera_info) -> None:
        """Camera ``camera``'s mask (and confidence) for the image stamped ``stamp_ns``."""
        cam = self.cameras[camera]
        if camera_info is None:  # a frame that came before (or without) its CameraInfo: the last one
            camera_info = cam.camera_info
        cam.camera_info = camera_info
        cam.history.add(stamp_ns, _StoredMask(frame_id, mask, confidence, camera_info, int(stamp_ns)))
        cam.latest_ns = max(cam.latest_ns, stamp_ns)
        self._drain(final=False)

    def add_cloud(self, stamp_ns: int, frame_id: str, msg, tag: Any = None) -> None:
        """A PointCloud2 message stamped ``stamp_ns`` in ``frame_id``; labelled when its masks are in
        (or when more than MAX_PENDING clouds wait: a camera that stopped does not hold them all)."""
        self.feed(CloudInput(stamp_ns, frame_id, msg, tag))

    def finish(self) -> None:
        """Label every cloud still waiting (the bag ended: no later mask will come)."""
        self._drain(final=True)

    def _drain(self, final: bool) -> None:
        ready = min((c.latest_ns for c in self.cameras), default=-1) - self._tolerance_ns
        waiting = []
        overflow = len(self._pending) - MAX_PENDING
        for i, item in enumerate(self._pending):
            if final or item.stamp_ns <= ready or i < overflow:
                self._label(item)
            else:
                waiting.append(item)
        self._pending = waiting

    def camera_masks(self, stamp_ns: int, cloud_frame: str) -> list[CameraMask | None]:
        """Each camera's mask nearest ``stamp_ns`` within tolerance, its transform looked up from the
        cloud at ``stamp_ns`` to the camera at the mask's stamp; None without one."""
        self._cloud_ns = stamp_ns
        out: list[CameraMask | None] = []
        for cam in self.cameras:
            item = cam.history.nearest(stamp_ns, self._tolerance_ns)
            if item is None:
                self.counters.missed_mask(cam.name)
                out.append(None)
                continue
            out.append(self.resolver.camera_mask(cam.name, item.frame_id, item.stamp_ns, item.mask,
                                                 item.confidence, item.camera_info, cloud_frame, stamp_ns))
        return out

    def _label(self, cloud: CloudInput) -> None:
        stamp_ns, frame_id, msg = cloud.stamp_ns, cloud.frame_id, cloud.msg
        try:
            layout = CloudLayout.from_message(msg)
            data = np.asarray(msg.data, np.uint8)
            xyz = read_xyz(layout, data)
        except InputError as exc:
            self.counters.bad_clouds += 1
            self.warn_once(f"cloud:{exc}", f"skipping a PointCloud2 in {frame_id!r}: {exc}")
            return
        labels = label_points(xyz, self.camera_masks(stamp_ns, frame_id), self.config.occlusion)
        keep = drop_labels(labels.label, self.drop_ids)
        out_layout, out_data = write_labelled(layout, data, labels.label, labels.confidence, labels.camera, keep)
        grid = self._grid(xyz, labels.label, frame_id)
        self.counters.clouds += 1
        self.emit(LabelledCloud(stamp_ns, frame_id, out_layout, out_data, grid, cloud.tag))

    def _grid(self, xyz: np.ndarray, label: np.ndarray, cloud_frame: str) -> SemanticGrid | None:
        spec = self.config.grid
        if spec is None:
            return None
        try:
            to_grid = self.lookup(spec.frame, self._cloud_ns, cloud_frame, self._cloud_ns)
        except InputError as exc:
            self.warn_once("tf:grid", f"grid: {exc}; no grid")
            return None
        return grid_from_cloud(spec, xyz, label, self.costs, to_grid)  # labelled points are finite

"""What the fusion runners are fed (:class:`MaskInput`, :class:`CloudInput`: plain dataclasses, the
same from the node and the bag replay) and :class:`FusionQueue`, the bounded queue and thread a
node runs a runner on, so labelling never delays a camera frame. ROS-free.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def frame_masks(seg, with_confidence: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """The class ids (and confidence x 255, None without scores or ``with_confidence``) a frame's
    Segmentation labels points with: the network-resolution arrays ``~/mask`` and ``~/confidence``
    are upsampled from (the camera model maps image pixels onto them), so the node and the bag tool
    label alike and neither upsamples for the fusion."""
    return seg.classes, (seg.confidence_low if with_confidence and seg.has_confidence else None)


@dataclass(frozen=True)
class MaskInput:
    """Camera ``camera``'s (its index) segmented frame stamped ``stamp_ns`` in ``frame_id``."""

    camera: int
    stamp_ns: int
    frame_id: str
    frame: Any
    """The frame's :class:`cityseg.inference.segmenter.Segmentation` (its confidence is worked out
    when the runner takes it, off the camera path), or its class ids alone (uint8 array: the
    camera-only grid takes no scores)."""
    camera_info: Any = None
    """The camera's CameraInfo message; None: the last one this camera had."""
    tag: Any = None
    """Comes back with the camera-only grid when this mask is the newest of its rig frame."""

    def masks(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(class ids, confidence x 255 or None)."""
        if isinstance(self.frame, np.ndarray):
            return self.frame, None
        return frame_masks(self.frame)


@dataclass(frozen=True)
class CloudInput:
    """A PointCloud2 (any object with its fields) stamped ``stamp_ns`` in ``frame_id``."""

    stamp_ns: int
    frame_id: str
    msg: Any
    tag: Any = None
    """Comes back with the labelled cloud (the node: the header; the bag: bag timestamp and header)."""


class FusionQueue:
    """A runner (anything with ``feed(item)``) on its own thread behind a queue of ``depth`` inputs.

    :meth:`put` never blocks: when the thread is ``depth`` inputs behind, the input is dropped,
    counted in ``dropped`` and said through ``on_drop``. An exception of the runner goes to
    ``on_error`` and the thread serves on."""

    def __init__(self, runner, depth: int, on_drop: Callable[[str], None] = log.warning,
                 on_error: Callable[[str], None] = log.error):
        self.runner, self.depth = runner, depth
        self.on_drop, self.on_error = on_drop, on_error
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(depth)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fusion", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Let the thread finish what it holds (at most ``timeout_s``) and end."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout_s)
            self._thread = None

    def put(self, item: MaskInput | CloudInput) -> bool:
        """Queue ``item``; False (dropped) when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            self.on_drop(f"fusion is {self.depth} inputs behind: an input was dropped")
            return False
        return True

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self.runner.feed(item)
            except Exception as exc:  # a bad input is said; the node serves on
                self.on_error(f"fusion failed: {type(exc).__name__}: {exc}")

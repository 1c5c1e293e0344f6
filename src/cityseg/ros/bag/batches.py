"""Frames of several cameras of a bag through one FrameProcessor.process_batch, outputs written per camera.

A batch holds at most one frame per camera and at most ``max_batch`` frames, in bag order: a
camera's next frame, a full batch or the end of the bag closes it. So each output topic is
written in its input's bag-timestamp order, and the result of every frame is what segmenting
its camera alone gives (the model sees each frame on its own; only the backend call is shared).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cityseg.errors import CitysegError, InputError
from cityseg.ros.bag.summary import CameraSummary, FailedFrame
from cityseg.ros.core.messages import header_fields
from cityseg.ros.core.outputs import LABEL_INFO
from cityseg.ros.core.processor import FrameProcessor, FrameRequest, ProcessedFrame

log = logging.getLogger(__name__)


@dataclass
class CameraReplay:
    """One image topic being replayed: its summary, its writer connections, its latest CameraInfo."""

    summary: CameraSummary
    connections: dict[str, Any]
    """Output suffix -> writer connection."""
    camera_info: Any = None


@dataclass
class _Frame:
    camera: CameraReplay
    index: int
    stamp: int
    msg: Any
    camera_info: Any


class BagBatcher:
    """Collects deserialised image messages into batches, segments and writes them."""

    def __init__(self, processor: FrameProcessor, writer, max_batch: int,
                 on_frame: Callable[[], None] | None = None,
                 on_result: Callable[[str, Any, Any, ProcessedFrame, int], None] | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.processor, self.writer, self.max_batch = processor, writer, max_batch
        self.on_frame = on_frame or (lambda: None)
        self.on_result = on_result
        """Called with (image topic, image message, CameraInfo, result, bag timestamp) after each frame
        is written."""
        self._batch: list[_Frame] = []

    def add(self, camera: CameraReplay, stamp: int, msgtype: str, deserialize: Callable[[], Any]) -> None:
        """One image message of ``camera`` (``deserialize()`` gives the ``msgtype`` message); a frame
        that cannot be deserialised is recorded as failed at once."""
        summary = camera.summary
        index = summary.frames_in
        summary.frames_in += 1
        try:
            msg = deserialize()
        except Exception as exc:  # corrupt CDR / ROS 1 bytes raise assorted errors
            self._failed(_Frame(camera, index, stamp, None, None), f"cannot deserialize {msgtype}: {exc}")
            return
        if any(frame.camera is camera for frame in self._batch):
            self.flush()
        self._batch.append(_Frame(camera, index, stamp, msg, camera.camera_info))
        if len(self._batch) >= self.max_batch:
            self.flush()

    def flush(self) -> None:
        """Segment and write the frames collected so far."""
        batch, self._batch = self._batch, []
        if not batch:
            return
        for frame, result in zip(batch, self._results(batch)):
            if isinstance(result, ProcessedFrame):
                self._write(frame, result)
            else:
                self._failed(frame, str(result) if isinstance(result, InputError)
                             else f"internal error: {type(result).__name__}: {result}")

    def _results(self, batch: list[_Frame]) -> list[ProcessedFrame | Exception]:
        """One result per frame; a batch that fails as a whole is retried frame by frame, so one
        bad frame fails alone. A CitysegError other than bad input (the model, the bundle) stops."""
        requests = [FrameRequest(frame.msg, frame.camera_info) for frame in batch]
        try:
            return list(self.processor.process_batch(requests))
        except InputError as exc:
            if len(batch) == 1:
                return [exc]
        except CitysegError:
            raise  # the model or bundle is wrong: the same for every frame, so stop and say so
        except Exception as exc:  # anything else is a frame's problem: find it, keep going
            if len(batch) == 1:
                log.exception("%s: frame %d failed", batch[0].camera.summary.image_topic, batch[0].index)
                return [exc]
        return [self._results([frame])[0] for frame in batch]

    def _write(self, frame: _Frame, result: ProcessedFrame) -> None:
        summary, out = frame.camera.summary, frame.camera.connections
        serialize = self.processor.factory.serialize
        t0 = time.perf_counter()
        if summary.frames_out == 0:
            label = self.processor.label_info(*header_fields(frame.msg))
            self.writer.write(out[LABEL_INFO], frame.stamp, serialize(label))
        for suffix, message in result.messages.items():
            self.writer.write(out[suffix], frame.stamp, serialize(message))
        result.timings["publish"] = (time.perf_counter() - t0) * 1e3
        summary.written(result.timings)
        if self.on_result is not None:
            self.on_result(summary.image_topic, frame.msg, frame.camera_info, result, frame.stamp)
        self.on_frame()

    def _failed(self, frame: _Frame, reason: str) -> None:
        summary = frame.camera.summary
        summary.failed.append(FailedFrame(frame.index, frame.stamp, reason, summary.image_topic))
        self.on_frame()

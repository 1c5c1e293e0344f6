"""FrameProcessor: one camera message in, the segmentation node's output messages out. No ROS.

The node (rclpy) and the bag tool (rosbags) run exactly this code; they differ only in the
message factory they pass and in what they do with the returned messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cityseg import labels
from cityseg.bundle import Bundle
from cityseg.errors import InputError
from cityseg.inference import Segmentation, Segmenter, postprocess
from cityseg.preprocess import resize_image, upsample_nearest
from cityseg.ros.core.images import DecodedImage, decode_message, encode_compressed
from cityseg.ros.core.messages import CameraInfoValues, MessageFactory, header_fields
from cityseg.ros.core.outputs import (
    BY_SUFFIX,
    CAMERA_INFO,
    COLOR_MASK,
    COMPRESSED_OUTPUTS,
    CONFIDENCE,
    MASK,
    OVERLAY,
    RAW_DEFAULT_OUTPUTS,
    check_outputs,
    raw_of,
    sources,
)

STAGES = ("convert", "preprocess", "infer", "postprocess", "publish")
"""Per-frame stages timed in milliseconds; 'publish' is filled in by the caller."""


@dataclass(frozen=True)
class ProcessorConfig:
    """What the processor publishes and how."""

    outputs: frozenset[str] = RAW_DEFAULT_OUTPUTS
    """Suffixes of the per-frame outputs to build (cityseg.ros.core.outputs); camera_info is built
    when a CameraInfo has been received. Default: the raw ones (compressed copies when named)."""
    overlay_alpha: float = 0.5
    id_space: str | None = None
    """Id space of the mask: 'labelid' / 'trainid' (Cityscapes models), 'auto' (labelid for
    Cityscapes models, else the bundle's own label set), None: the segmenter's."""
    output_scale: float = 1.0
    """Scale of every output image relative to the input (1.0 = input resolution)."""
    mono16_max: int = 65535
    """16-bit white level for mono16 / 16UC1 input (4095 for a 12-bit sensor)."""
    artifact: str | None = None
    """The bundle's model file to run, by its card key; None: the backend's automatic pick."""
    jpeg_quality: int = 80
    """JPEG quality (1-100) of the compressed colour mask and overlay."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "outputs", check_outputs(self.outputs))
        if not 0.0 <= self.overlay_alpha <= 1.0:
            raise ValueError(f"overlay_alpha must be within [0, 1], got {self.overlay_alpha}")
        if not 0.0 < self.output_scale <= 1.0:
            raise ValueError(f"output_scale must be within (0, 1], got {self.output_scale}")
        if not 1 <= self.mono16_max <= 65535:
            raise ValueError(f"mono16_max must be within [1, 65535], got {self.mono16_max}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be within [1, 100], got {self.jpeg_quality}")


@dataclass
class ProcessedFrame:
    """The output of one frame."""

    messages: dict[str, Any]
    """Topic suffix (see cityseg.ros.core.outputs) -> message; only the enabled outputs."""
    timings: dict[str, float] = field(default_factory=dict)
    """Milliseconds per stage (STAGES); 'publish' is the sink's time, or added by the caller."""
    input_size: tuple[int, int] = (0, 0)
    output_size: tuple[int, int] = (0, 0)
    segmentation: Segmentation | None = None
    sent: bool = False
    """True: every message went to the request's sink as soon as it was built (do not send again)."""


class FrameProcessor:
    """Segments Image / CompressedImage messages and builds the output messages with a factory."""

    def __init__(self, segmenter: Segmenter, factory: MessageFactory, config: ProcessorConfig | None = None):
        self.segmenter = segmenter
        self.factory = factory
        self.config = config or ProcessorConfig()
        wanted = self.config.id_space
        if wanted not in (None, "auto") and wanted != segmenter.space.name:
            raise ValueError(f"the segmenter produces {segmenter.space.name} ids but the config asks "
                             f"for {wanted}; create the Segmenter with id_space={wanted!r}")
        self.unavailable: dict[str, str] = {}
        """Outputs asked for that this model cannot give -> why (e.g. confidence from an argmax head)."""
        if not segmenter.has_confidence:
            lost = {s for s in self.config.outputs if raw_of(s) == CONFIDENCE}
            self.unavailable.update(dict.fromkeys(sorted(lost), segmenter.confidence_unavailable_reason))
            self.config = replace(self.config, outputs=self.config.outputs - lost)

    @classmethod
    def from_bundle(cls, model: Bundle | str | Path, factory: MessageFactory,
                    config: ProcessorConfig | None = None, backend: str = "auto") -> FrameProcessor:
        """Open ``model`` with ``backend`` in the config's id space and wrap it."""
        config = config or ProcessorConfig()
        bundle = model if isinstance(model, Bundle) else Bundle.load(model)
        id_space = mask_id_space(config.id_space, bundle)
        segmenter = Segmenter(bundle, backend=backend, id_space=id_space, artifact=config.artifact,
                              need_confidence=CONFIDENCE in sources(config.outputs))
        return cls(segmenter, factory, replace(config, id_space=id_space))

    def label_classes(self) -> list[tuple[int, str]]:
        """(id, name) of every value the mask can hold, from the bundle's label set; its ignore id (255
        for trainIds: vision_msgs reserves the largest id of the mask type) is 'unlabeled'."""
        space = self.segmenter.space
        classes = [(c.id, c.name) for c in space.classes]
        if space.ignore_index is not None and space.ignore_index not in space.ids:
            classes.append((space.ignore_index, "unlabeled"))
        return classes

    def label_info(self, sec: int = 0, nanosec: int = 0, frame_id: str = "") -> Any:
        """The vision_msgs/LabelInfo of the mask ids; threshold 0 (argmax, no confidence cut)."""
        return self.factory.label_info(self.factory.header(sec, nanosec, frame_id), self.label_classes(), 0.0)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """(height, width) of the output images for an input of ``input_size``."""
        scale = self.config.output_scale
        if scale == 1.0:
            return input_size
        return max(1, round(input_size[0] * scale)), max(1, round(input_size[1] * scale))

    def process(self, msg, camera_info=None, outputs: Collection[str] | None = None,
                sink: Callable[[str, Any], None] | None = None) -> ProcessedFrame:
        """Segment one image message into the enabled outputs that are also in ``outputs`` (None:
        every enabled one); raise ImageError (an InputError) if it cannot be decoded.

        Each output image is written once, at output resolution, straight into the buffer of its
        message (the factory's :meth:`~cityseg.ros.core.messages.MessageFactory.image_buffer`).
        """
        result = self.process_batch([FrameRequest(msg, camera_info, outputs, sink)])[0]
        if isinstance(result, InputError):
            raise result
        return result

    def process_batch(self, requests: Sequence[FrameRequest]) -> list[ProcessedFrame | InputError]:
        """Several frames (any sizes, e.g. one per camera) through one backend call; each result in
        its request's place, with its own header. A frame that cannot be decoded gets its
        InputError in its place and does not affect the others."""
        results: list[ProcessedFrame | InputError | None] = [None] * len(requests)
        decoded: dict[int, tuple[DecodedImage, float]] = {}
        for i, request in enumerate(requests):
            t0 = time.perf_counter()
            try:
                decoded[i] = decode_message(request.msg, self.config.mono16_max), (time.perf_counter() - t0) * 1e3
            except InputError as exc:
                results[i] = exc
        for order in sorted({d.channel_order for d, _ in decoded.values()}):  # one call per channel order
            indices = [i for i, (d, _) in decoded.items() if d.channel_order == order]
            segmentations = self.segmenter.segment_batch([decoded[i][0].frame for i in indices], order)
            for i, result in zip(indices, segmentations):
                results[i] = self._outputs(requests[i], *decoded[i], result)
        return results  # type: ignore[return-value]

    def _outputs(self, request: FrameRequest, decoded: DecodedImage, convert_ms: float,
                 result: Segmentation) -> ProcessedFrame:
        wanted = self.config.outputs if request.outputs is None else self.config.outputs & frozenset(request.outputs)
        t0 = time.perf_counter()
        out_size = self.output_size(decoded.size)
        header = self.factory.header(*header_fields(request.msg))
        writer = OutputWriter(self.factory, self.config, header, decoded, result, out_size)
        messages = writer.build(wanted, request.camera_info, request.sink)
        build_ms = (time.perf_counter() - t0) * 1e3 - writer.sink_ms
        timings = {"convert": convert_ms, "preprocess": result.timings["preprocess"],
                   "infer": result.timings["infer"], "postprocess": result.timings["argmax"] + build_ms}
        if request.sink is not None:
            timings["publish"] = writer.sink_ms
        return ProcessedFrame(messages, timings, decoded.size, out_size, result, sent=request.sink is not None)


@dataclass(frozen=True)
class FrameRequest:
    """One frame for :meth:`FrameProcessor.process_batch`."""

    msg: Any
    """Image or CompressedImage (a message, or a cityseg.ros.core.cdr view)."""
    camera_info: Any = None
    outputs: Collection[str] | None = None
    """The outputs to build (None: every enabled one)."""
    sink: Callable[[str, Any], None] | None = None
    """Called with (suffix, message) as each output is built, to publish it at once (the node);
    None: the messages are only returned (the bag tool)."""


class OutputWriter:
    """Writes one frame's output images into their message buffers, each pixel once.

    The colour mask is the palette at network resolution, nearest-upsampled into its buffer; the
    overlay blends that colour image (the colour mask's own pixels when it is published in the
    same channel order) with the frame in one uint8 pass; masks and confidence are upsampled
    straight into theirs. No full-resolution float intermediate exists. A compressed output is
    encoded once (OpenCV) from its raw output's pixels: the raw message's own when that is built
    too, else a scratch array.
    """

    def __init__(self, factory: MessageFactory, config: ProcessorConfig, header, decoded: DecodedImage,
                 result: Segmentation, out_size: tuple[int, int]):
        self.factory, self.config = factory, config
        self.header, self.decoded, self.result = header, decoded, result
        self.height, self.width = out_size
        self._colors: dict[str, np.ndarray] = {}
        self._raw = {MASK: ("mono8", self._fill_mask), COLOR_MASK: ("rgb8", self._fill_color),
                     OVERLAY: (decoded.overlay_encoding, self._fill_overlay),
                     CONFIDENCE: ("mono8", self._fill_confidence)}
        """Raw image output -> (encoding, writer of its pixels into an array or a new one)."""

    def build(self, wanted: frozenset[str], camera_info=None, sink=None) -> dict[str, Any]:
        """Suffix -> message (or CDR bytes) of each output in ``wanted``, in publishing order.

        ``sink(suffix, message)``, when given, is called with each message as soon as it is built
        (the node publishes it at once: the mask leaves before the overlay is computed); the time
        spent in it is :attr:`sink_ms`.
        """
        messages: dict[str, Any] = {}
        pixels: dict[str, np.ndarray] = {}
        self.sink_ms = 0.0
        emit = self._emitter(messages, sink)
        for suffix, (encoding, fill) in self._raw.items():
            if suffix in wanted:
                out = self._image(encoding, 1 if encoding == "mono8" else 3)
                pixels[suffix] = fill(out.pixels)
                emit(suffix, out.message())  # the bytes stay alive in ``messages`` while encoding
        for suffix in COMPRESSED_OUTPUTS:
            if suffix in wanted:
                raw = raw_of(suffix)
                if raw not in pixels:
                    pixels[raw] = self._raw[raw][1](None)
                emit(suffix, self._compressed(suffix, pixels[raw], self._raw[raw][0]))
        if CAMERA_INFO in wanted and camera_info is not None:
            info = CameraInfoValues.from_message(camera_info).resized(self.decoded.size, (self.height, self.width))
            emit(CAMERA_INFO, self.factory.camera_info(self.header, info))
        return messages

    def _emitter(self, messages: dict[str, Any], sink):
        def emit(suffix: str, message) -> None:
            messages[suffix] = message
            if sink is not None:
                t0 = time.perf_counter()
                sink(suffix, message)
                self.sink_ms += (time.perf_counter() - t0) * 1e3
        return emit

    def _image(self, encoding: str, channels: int):
        return self.factory.image_buffer(self.header, self.height, self.width, encoding, channels)

    def _compressed(self, suffix: str, pixels: np.ndarray, encoding: str):
        fmt, data = encode_compressed(pixels, BY_SUFFIX[suffix].codec, self.config.jpeg_quality, encoding)
        return self.factory.compressed_output(self.header, fmt, data)

    def _fill_mask(self, out: np.ndarray | None) -> np.ndarray:
        return upsample_nearest(self.result.classes, self.height, self.width, out=out)

    def _fill_confidence(self, out: np.ndarray | None) -> np.ndarray:
        return upsample_nearest(self.result.confidence_low, self.height, self.width, out=out)

    def _color(self, order: str, out: np.ndarray | None = None) -> np.ndarray:
        """The colour mask at output resolution in ``order`` (written into ``out`` when given)."""
        if order not in self._colors:
            low = postprocess.colorize(self.result.classes, self.result.space.palette, order)
            self._colors[order] = upsample_nearest(low, self.height, self.width, out=out)
        elif out is not None:
            np.copyto(out, self._colors[order])
        return self._colors[order] if out is None else out

    def _fill_color(self, out: np.ndarray | None) -> np.ndarray:
        return self._color("RGB", out)

    def _fill_overlay(self, out: np.ndarray | None) -> np.ndarray:
        decoded = self.decoded
        base = decoded.color_frame()
        if base.shape[:2] != (self.height, self.width):
            base = resize_image(base, self.height, self.width, "area")
        order = "BGR" if decoded.overlay_encoding == "bgr8" else "RGB"
        return postprocess.overlay(base, self._color(order), self.config.overlay_alpha, out=out)


def mask_id_space(wanted: str | None, bundle: Bundle) -> str | None:
    """The id space to build the Segmenter with (:func:`cityseg.labels.mask_id_space`, the one rule)."""
    return labels.mask_id_space(wanted, bundle.card.space, where=str(bundle.path), option="id_space")

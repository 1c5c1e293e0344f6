"""Segmenter: frame(s) -> preprocess (as in training) -> backend -> class masks, confidence, colours, overlays."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from cityseg.bundle import Bundle
from cityseg.bundle import raw_output as model_outputs
from cityseg.errors import BundleError, CitysegError, InputError
from cityseg.inference import postprocess
from cityseg.inference.backends import open_backend
from cityseg.labels import LabelSet, class_space, conversion_lut
from cityseg.preprocess import letterbox_box, to_channel_order, upsample_nearest

log = logging.getLogger(__name__)

ConfidenceSource = np.ndarray | Callable[[], np.ndarray]
"""uint8 HxW confidence at network resolution, or a function computing it on first use."""


class ConfidenceUnavailable(CitysegError):
    """The model only outputs class ids, so there is no per-pixel confidence."""


@dataclass
class Segmentation:
    """The result for one frame. Full-resolution images are computed on first access."""

    classes: np.ndarray
    """uint8 class ids at network resolution (at the frame's for a fused-I/O model, the frame's times
    ``tile_scale`` for a ``tiles`` card), in the requested id space."""
    frame_size: tuple[int, int]
    """(height, width) of the input frame."""
    space: LabelSet
    timings: dict[str, float] = field(default_factory=dict)
    """Milliseconds per stage (the batch's share for batched calls)."""
    confidence_source: ConfidenceSource | None = field(default=None, repr=False)
    """Top-class probability x 255 at network resolution (or how to compute it); None: the model
    gives none (an argmax-only head)."""
    unavailable_reason: str = field(default="", repr=False)
    """Why there is no confidence, when ``confidence_source`` is None."""
    io: str = "tensor"
    """'fused': resize, normalisation, argmax and upsampling ran inside the model graph, so
    ``timings['infer']`` includes them and the network alone is not timed; 'tensor': they ran on the CPU."""

    @cached_property
    def mask(self) -> np.ndarray:
        """uint8 HxW class ids at the input frame's resolution."""
        return upsample_nearest(self.classes, *self.frame_size)

    @property
    def has_confidence(self) -> bool:
        return self.confidence_source is not None

    @cached_property
    def confidence_low(self) -> np.ndarray:
        """uint8 top-class probability x 255 at network resolution (ConfidenceUnavailable if none)."""
        source = self.confidence_source
        if source is None:
            raise ConfidenceUnavailable(self.unavailable_reason or "this result carries no confidence")
        return source() if callable(source) else source

    @cached_property
    def confidence(self) -> np.ndarray:
        """uint8 HxW top-class probability x 255 at the mask's resolution (the frame's); raises
        ConfidenceUnavailable for argmax-only models (check :attr:`has_confidence`)."""
        return upsample_nearest(self.confidence_low, *self.frame_size)

    def resized(self, frame_size: tuple[int, int]) -> Segmentation:
        """The same result at another output size (mask, confidence and colours follow it)."""
        source = self.confidence_source
        if source is not None and "confidence_low" in self.__dict__:
            source = self.confidence_low
        return Segmentation(self.classes, tuple(frame_size), self.space, dict(self.timings), source,
                            self.unavailable_reason, self.io)

    _colors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def color(self, order: str = "RGB") -> np.ndarray:
        """HxWx3 colour mask (the label set's colours) at frame resolution, in ``order`` (RGB/BGR)."""
        key = order.upper()
        if key not in self._colors:
            low = postprocess.colorize(self.classes, self.space.palette, key)
            self._colors[key] = upsample_nearest(low, *self.frame_size)
        return self._colors[key]

    def overlay(self, frame: np.ndarray, alpha: float = 0.5, order: str = "RGB") -> np.ndarray:
        """The colour mask alpha-blended over ``frame`` (HxWx3 in ``order``)."""
        return postprocess.overlay(frame, self.color(order), alpha)


def _cropped(source: Callable[[], np.ndarray], top: int, left: int, h: int, w: int) -> Callable[[], np.ndarray]:
    """A lazily computed confidence, cut to the letterboxed frame's part when it is computed."""
    return lambda: source()[top:top + h, left:left + w]


def _stitched_source(grid, tiles: list[ConfidenceSource | None]) -> ConfidenceSource | None:
    """The tiles' confidence stitched like their classes: at once when the model gave it, on first
    use when it is computed from the scores; None when the tiles carry none."""
    if tiles[0] is None:
        return None
    if not any(callable(s) for s in tiles):
        return grid.stitch(tiles)
    return lambda: grid.stitch([s() if callable(s) else s for s in tiles])


class Segmenter:
    """Runs a model bundle on frames of any size with the bundle's own preprocessing.

    ``space`` is the label set of the masks (names, ids, colours, ignore id); ``has_confidence``
    says whether results carry a per-pixel confidence. ``need_confidence`` makes the automatic
    artifact choice prefer one that gives it (scores, or an argmax head with a confidence output).

    A fused-I/O artifact (``cityseg export --fused-io``) takes frames of its camera size as they are
    and returns the mask at that size; a frame of another size goes, with a one-time warning, through
    the bundle's unfused model instead (never a silently wrong mask). ``io`` ('tensor'/'fused')
    restricts the automatic choice to that kind.
    """

    def __init__(self, bundle: Bundle | str | Path, backend: str = "auto",
                 id_space: str | None = None, artifact: str | None = None, *, need_confidence: bool = False,
                 io: str | None = None):
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        self.backend = open_backend(self.bundle, backend, artifact, need_confidence=need_confidence, io=io)
        self._id_space = id_space
        self._fallback: Segmenter | None = None
        self.model_space = self.bundle.card.space
        self.space = class_space(id_space) if id_space else self.model_space
        try:
            lut = conversion_lut(self.model_space, self.space)
        except ValueError as exc:
            raise BundleError(f"{self.bundle.path}: {exc} (leave the id space unset)") from None
        if not self.space.identity_ids:
            lut = self.space.index_to_id()[lut]
        self._lut = None if np.array_equal(lut, np.arange(256)) else lut
        self._checked = False

    @property
    def input_size(self) -> tuple[int, int]:
        return self.bundle.card.input_height, self.bundle.card.input_width

    @property
    def fused_io(self) -> bool:
        """True when the model graph itself resizes, normalises, takes the argmax and upsamples."""
        return self.backend.artifact.fused

    @property
    def camera_size(self) -> tuple[int, int] | None:
        """(height, width) of the frames a fused-I/O model takes; None for unfused models (any size)."""
        return self.backend.artifact.camera.size if self.fused_io else None

    @property
    def max_batch(self) -> int | None:
        """The most frames one backend call takes; :meth:`segment_batch` splits a larger batch into
        calls of at most this many (the backend does). None: any batch in one call."""
        return self.backend.max_batch

    @property
    def has_confidence(self) -> bool:
        """True when results carry a per-pixel confidence (scores, or an argmax head's confidence output)."""
        return not self.confidence_unavailable_reason

    @property
    def confidence_unavailable_reason(self) -> str:
        """Why results carry no confidence ('' when they do)."""
        artifact = self.backend.artifact
        if artifact.output != "argmax" or artifact.confidence:
            return ""
        if artifact.fused:
            return (f"{self.backend.path.name} is a fused-I/O graph without a confidence output; re-export it "
                    "with `cityseg export --fused-io --confidence --force`, or run the bundle's scores model")
        card = self.bundle.card
        scores = [k for k, a in card.artifacts.items() if a.output != "argmax" and a.format != "keras"]
        fixes = []
        if scores:
            fixes.append(f"run one of the bundle's scores models ({', '.join(scores)}: `cityseg bag --artifact "
                         "KEY`, the node's artifact:=KEY; `cityseg segment --backend` picks by backend)")
        if not card.imported:  # trained by cityseg: its Keras model gives the head a confidence output
            fixes.append("export the argmax head with its confidence output from the bundle's Keras model "
                         "(`cityseg export BUNDLE --argmax-head --confidence --force`)")
        return (f"{self.backend.path.name} outputs class ids only (an argmax head), so there is no "
                "per-pixel confidence; " + ("; or ".join(fixes) if fixes else
                                            "this imported bundle has no scores model to take it from"))

    def preprocess(self, frames: Sequence[np.ndarray], channel_order: str = "RGB") -> np.ndarray:
        """Frames (uint8, any size) -> float32 network input, as the card says (for fit ``tiles``
        every tile of every frame: :meth:`ModelCard.network_batch`)."""
        return self.bundle.card.network_batch(frames, channel_order)

    def standardize(self, output: np.ndarray) -> tuple[np.ndarray, str]:
        """A raw backend output -> (NxHxWxC scores or NxHxW ids at the input size, their kind)."""
        artifact = self.backend.artifact
        try:
            canonical, kind = model_outputs.standardize(output, artifact.output, artifact.output_layout,
                                                 self.input_size)
        except model_outputs.OutputError as exc:
            raise BundleError(f"{self.backend.path}: {exc}; the card ({artifact.output}, "
                              f"{artifact.output_layout}) and the model file do not belong together") from None
        if not self._checked:
            self._check_classes(canonical, kind)
            self._checked = True
        return canonical, kind

    def to_ids(self, canonical: np.ndarray, kind: str) -> np.ndarray:
        """Canonical output (:meth:`standardize`) -> uint8 NxHxW mask ids in :attr:`space`."""
        return postprocess.remap(postprocess.to_classes(canonical, kind), self._lut)

    def _check_classes(self, canonical: np.ndarray, kind: str) -> None:
        card = self.bundle.card
        if kind != "argmax" and canonical.shape[-1] != card.num_classes:
            raise BundleError(f"{self.backend.path}: the model outputs {canonical.shape[-1]} classes but "
                              f"the card declares {card.num_classes} ({card.space.name}); the card "
                              "and the model file do not belong together - re-export the bundle")

    def segment(self, frame: np.ndarray, channel_order: str = "RGB") -> Segmentation:
        """Segment one frame (HxW, HxWx3 or HxWx4 uint8 in ``channel_order``)."""
        return self.segment_batch([frame], channel_order)[0]

    def segment_batch(self, frames: Sequence[np.ndarray], channel_order: str = "RGB") -> list[Segmentation]:
        """Segment several frames (any sizes) in one backend call."""
        if len(frames) == 0:
            raise InputError("segment_batch needs at least one frame")
        if self.fused_io:
            if all(frame.shape[:2] == self.camera_size for frame in frames):
                return self._segment_fused(frames, channel_order)
            return self._unfused(frames).segment_batch(frames, channel_order)
        t0 = time.perf_counter()
        batch = self.preprocess(frames, channel_order)
        t1 = time.perf_counter()
        output, confidence = self.backend.run(batch)
        t2 = time.perf_counter()
        results = self.results(output, confidence, [frame.shape[:2] for frame in frames])
        t3 = time.perf_counter()
        n = len(frames)
        timings = {"preprocess": (t1 - t0) * 1e3 / n, "infer": (t2 - t1) * 1e3 / n,
                   "argmax": (t3 - t2) * 1e3 / n}
        for result in results:
            result.timings.update(timings)
        return results

    def results(self, output: np.ndarray, confidence: np.ndarray | None,
                frame_sizes: Sequence[tuple[int, int]]) -> list[Segmentation]:
        """The backend's output (and confidence output) for :meth:`preprocess` of frames of
        ``frame_sizes`` -> one result per frame: class ids in :attr:`space`, a letterboxed mask cut
        back to the frame's part, the tiles of a ``tiles`` card stitched into one mask."""
        canonical, kind = self.standardize(output)
        classes = self.to_ids(canonical, kind)
        sources = self._confidence_sources(canonical, kind, confidence, len(classes))
        reason = self.confidence_unavailable_reason
        card = self.bundle.card
        if card.fit == "tiles":
            return self._stitched(classes, sources, frame_sizes)
        if len(classes) != len(frame_sizes):
            raise BundleError(f"{self.backend.path}: {len(classes)} outputs for {len(frame_sizes)} frames")
        results = [Segmentation(classes[i], tuple(size), self.space, {}, sources[i], reason)
                   for i, size in enumerate(frame_sizes)]
        return [self._fit_back(r) for r in results] if card.fit == "letterbox" else results

    def _stitched(self, classes: np.ndarray, sources: list[ConfidenceSource | None],
                  frame_sizes: Sequence[tuple[int, int]]) -> list[Segmentation]:
        """Per-tile class ids (and confidence) -> one result per frame at its scaled size."""
        grids = [self.bundle.card.tile_grid(size) for size in frame_sizes]
        if sum(g.count for g in grids) != len(classes):
            raise BundleError(f"{self.backend.path}: {len(classes)} outputs for {sum(g.count for g in grids)} tiles")
        results, start = [], 0
        for grid, size in zip(grids, frame_sizes):
            end = start + grid.count
            mask = grid.stitch(classes[start:end])
            source = _stitched_source(grid, sources[start:end])
            results.append(Segmentation(mask, tuple(size), self.space, {}, source,
                                        self.confidence_unavailable_reason))
            start = end
        return results

    def _fit_back(self, result: Segmentation) -> Segmentation:
        """A letterboxed result cut back to the frame's part of the input (padding dropped)."""
        top, left, h, w = letterbox_box(result.frame_size, *self.input_size)
        source = result.confidence_source
        if callable(source):  # computed from the scores on first use, as for stretch
            source = _cropped(source, top, left, h, w)
        elif source is not None:
            source = source[top:top + h, left:left + w]
        return Segmentation(result.classes[top:top + h, left:left + w], result.frame_size, result.space,
                            result.timings, source, result.unavailable_reason, result.io)

    def _confidence_sources(self, canonical, kind, confidence, n) -> list[ConfidenceSource | None]:
        if confidence is not None:
            layout = self.backend.artifact.output_layout
            try:
                low = model_outputs.standardize_confidence(confidence, layout, self.input_size)
            except model_outputs.OutputError as exc:
                raise BundleError(f"{self.backend.path}: confidence output: {exc}") from None
            return list(low)
        if kind == "argmax":
            return [None] * n
        return [lambda s=canonical[i]: model_outputs.top_probability(s, kind) for i in range(n)]

    def _segment_fused(self, frames: Sequence[np.ndarray], channel_order: str) -> list[Segmentation]:
        """Camera-size frames -> the fused graph -> masks (and confidence) already at frame resolution."""
        t0 = time.perf_counter()
        wanted = self.backend.artifact.camera.channel_order
        converted = [to_channel_order(f, channel_order, wanted) for f in frames]
        batch = np.ascontiguousarray(converted[0][None] if len(converted) == 1 else np.stack(converted))
        t1 = time.perf_counter()
        output, confidence = self.backend.run(batch)
        t2 = time.perf_counter()
        expected = (len(frames), *self.camera_size)
        if output.shape != expected or output.dtype != np.uint8:
            raise BundleError(f"{self.backend.path}: the fused model returned {output.dtype} {list(output.shape)}, "
                              f"expected uint8 {list(expected)}; re-export it with `cityseg export --fused-io --force`")
        classes = postprocess.remap(output, self._lut)
        t3 = time.perf_counter()
        n = len(frames)
        timings = {"preprocess": (t1 - t0) * 1e3 / n, "infer": (t2 - t1) * 1e3 / n, "argmax": (t3 - t2) * 1e3 / n}
        reason = self.confidence_unavailable_reason
        return [Segmentation(classes[i], frames[i].shape[:2], self.space, dict(timings),
                             None if confidence is None else confidence[i], reason, "fused") for i in range(n)]

    def _unfused(self, frames: Sequence[np.ndarray]) -> Segmenter:
        """The bundle's unfused model, for frames that are not the fused model's camera size (opened once)."""
        if self._fallback is None:
            sizes = sorted({"x".join(map(str, f.shape[1::-1])) for f in frames if f.shape[:2] != self.camera_size})
            camera = "x".join(map(str, self.camera_size[::-1]))
            try:
                self._fallback = Segmenter(self.bundle, "auto", self._id_space, io="tensor",
                                           need_confidence=self.has_confidence)
            except CitysegError as exc:
                raise InputError(f"{self.backend.path}: takes {camera} frames, got {', '.join(sizes)}, and the "
                                 f"bundle has no unfused model to run them ({exc}); export one for this camera "
                                 f"(`cityseg export {self.bundle.path} --fused-io --camera-size {sizes[0]}`) "
                                 "or run the unfused ONNX") from None
            log.warning("%s takes %s frames; %s frames run through %s instead (CPU pre/postprocessing)",
                        self.backend.path.name, camera, ", ".join(sizes), self._fallback.backend.describe())
        return self._fallback

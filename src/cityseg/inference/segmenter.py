"""Segmenter: frame(s) -> preprocess (as in training) -> backend -> class masks, colours, overlays."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from cityseg.bundle import Bundle
from cityseg.errors import BundleError, InputError
from cityseg.inference import postprocess
from cityseg.inference.backends import open_backend
from cityseg.labels import ClassSpace, class_space, conversion_lut


@dataclass
class Segmentation:
    """The result for one frame. Full-resolution images are computed on first access."""

    classes: np.ndarray
    """uint8 class ids at network resolution, in the requested id space."""
    frame_size: tuple[int, int]
    """(height, width) of the input frame."""
    space: ClassSpace
    timings: dict[str, float] = field(default_factory=dict)
    """Milliseconds per stage (the batch's share for batched calls)."""

    @cached_property
    def mask(self) -> np.ndarray:
        """uint8 HxW class ids at the input frame's resolution."""
        return postprocess.upsample_nearest(self.classes, *self.frame_size)

    _colors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def color(self, order: str = "RGB") -> np.ndarray:
        """HxWx3 Cityscapes-palette colour mask at frame resolution, in ``order`` (RGB/BGR)."""
        key = order.upper()
        if key not in self._colors:
            low = postprocess.colorize(self.classes, self.space.palette, key)
            self._colors[key] = postprocess.upsample_nearest(low, *self.frame_size)
        return self._colors[key]

    def overlay(self, frame: np.ndarray, alpha: float = 0.5, order: str = "RGB") -> np.ndarray:
        """The colour mask alpha-blended over ``frame`` (HxWx3 in ``order``)."""
        return postprocess.overlay(frame, self.color(order), alpha)


class Segmenter:
    """Runs a model bundle on frames of any size with the bundle's own preprocessing."""

    def __init__(self, bundle: Bundle | str | Path, backend: str = "auto",
                 id_space: str | None = None, artifact: str | None = None):
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        card = self.bundle.card
        self.backend = open_backend(self.bundle, backend, artifact)
        self.model_space = card.space
        self.space = class_space(id_space) if id_space else self.model_space
        lut = conversion_lut(self.model_space, self.space)
        self._lut = None if self.space.name == self.model_space.name else lut
        self._checked = False

    @property
    def input_size(self) -> tuple[int, int]:
        return self.bundle.card.input_height, self.bundle.card.input_width

    def preprocess(self, frames: Sequence[np.ndarray], channel_order: str = "RGB") -> np.ndarray:
        """Frames (uint8, any size) -> float32 NxHxWx3 network input, as the card says."""
        return self.bundle.card.preprocess(frames, channel_order)

    def _check_output(self, batch: np.ndarray, output: np.ndarray) -> None:
        card = self.bundle.card
        kind = self.backend.output_kind
        expected_ndim = 3 if kind == "argmax" else 4
        if output.ndim != expected_ndim or output.shape[0] != batch.shape[0]:
            raise BundleError(f"{self.backend.path}: output shape {output.shape} is not the "
                              f"{'NxHxW class map' if kind == 'argmax' else 'NxHxWxC scores'} the card "
                              f"declares ({kind}); the card and the model file do not belong together")
        if kind != "argmax" and output.shape[-1] != card.num_classes:
            raise BundleError(f"{self.backend.path}: the model outputs {output.shape[-1]} classes but "
                              f"the card declares {card.num_classes} ({card.class_space}); the card "
                              "and the model file do not belong together - re-export the bundle")

    def segment(self, frame: np.ndarray, channel_order: str = "RGB") -> Segmentation:
        """Segment one frame (HxW, HxWx3 or HxWx4 uint8 in ``channel_order``)."""
        return self.segment_batch([frame], channel_order)[0]

    def segment_batch(self, frames: Sequence[np.ndarray], channel_order: str = "RGB") -> list[Segmentation]:
        """Segment several frames (any sizes) in one backend call."""
        if len(frames) == 0:
            raise InputError("segment_batch needs at least one frame")
        t0 = time.perf_counter()
        batch = self.preprocess(frames, channel_order)
        t1 = time.perf_counter()
        output = self.backend.infer(batch)
        if not self._checked:
            self._check_output(batch, output)
            self._checked = True
        t2 = time.perf_counter()
        classes = postprocess.remap(postprocess.to_classes(output, self.backend.output_kind), self._lut)
        t3 = time.perf_counter()
        n = len(frames)
        timings = {"preprocess": (t1 - t0) * 1e3 / n, "infer": (t2 - t1) * 1e3 / n,
                   "argmax": (t3 - t2) * 1e3 / n}
        return [Segmentation(classes[i], frames[i].shape[:2], self.space, dict(timings))
                for i in range(n)]

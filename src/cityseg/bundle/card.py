"""The model card: ``model.json``, what a bundle's model is and how to feed and read it.

The card records everything inference needs to preprocess exactly as in training (input size,
channel order, resize method, normalisation), what the outputs mean (label set, class names,
output kind) and where each artifact lives. Loading validates all of it. The directory that holds
the card and the model files is :class:`cityseg.bundle.directory.Bundle`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

from cityseg import __version__
from cityseg.bundle.precision import PRECISIONS, Precision
from cityseg.config import to_mapping
from cityseg.labels import ID_SPACES, LabelSet, class_space, label_set_to_dict, parse_label_set
from cityseg.preprocess import (
    FIT_POLICIES,
    RESIZE_METHODS,
    Normalization,
    TileGrid,
    normalize,
    prepare_frame_fit,
    prepare_frame_tiles,
    tile_grid,
    to_layout,
)

CARD_FILE = "model.json"
MODELS_ENV = "CITYSEG_MODELS"
"""Folder(s) holding model bundles, searched for bare bundle names (``os.pathsep``-separated)."""
CARD_FORMAT_VERSION = 1
OutputKind = Literal["probabilities", "logits", "sigmoid", "argmax"]
ArtifactFormat = Literal["keras", "onnx", "tensorrt"]
Layout = Literal["NHWC", "NCHW"]
IOKind = Literal["tensor", "fused"]
CUSTOM_SPACE = "custom"
"""``class_space`` of a card whose classes are its own ``labels`` (not a Cityscapes set)."""


@dataclass
class CameraInput:
    """The frames a fused-I/O artifact takes: uint8 ``height`` x ``width`` x 3 in ``channel_order``."""

    height: int
    width: int
    channel_order: Literal["RGB", "BGR"] = "RGB"

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"camera size must be positive, got {self.height}x{self.width}")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.height, self.width


@dataclass
class Artifact:
    """One model file of the bundle and what its output is."""

    path: str
    """File name relative to the bundle directory."""
    format: ArtifactFormat
    output: OutputKind = "probabilities"
    """'probabilities'/'logits': class scores; 'sigmoid': one channel, the probability of class 1
    of a 2-class model; 'argmax': class indices (NxHxW, or Nx1xHxW)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Format-specific facts: ONNX opset, TensorRT version/GPU/precision, parity figures..."""
    output_layout: Layout = "NHWC"
    """Where the class axis of score outputs is: last (NHWC) or after the batch (NCHW). Scores may
    be at a stride of the input size; they are upsampled bilinearly to it before the argmax."""
    confidence: str | None = None
    """Name of a second, uint8 output holding the top-class probability x 255 (argmax heads)."""
    io: IOKind = "tensor"
    """'tensor': float32 network input at the card's size, preprocessed on the CPU (cards without
    the field); 'fused': uint8 camera frames of ``camera`` size in, resize and normalisation inside
    the graph, the uint8 mask (and confidence) at camera resolution out (``cityseg export --fused-io``)."""
    camera: CameraInput | None = None
    """The frames a fused artifact takes (None for tensor I/O)."""
    precision: Precision = "fp32"
    """The numbers the model computes in (:mod:`cityseg.bundle.precision`): 'fp32' (cards without the
    field), 'fp16' / 'int8' (an fp16 or Q/DQ ONNX, `cityseg export --precision`, and a TensorRT engine
    built from one), 'bf16' (the fp32 ONNX run by OpenVINO in bf16)."""
    runtime: str | None = None
    """The only backend that runs this entry as recorded (e.g. 'openvino' for bf16); None: any."""

    def __post_init__(self) -> None:
        if self.format == "tensorrt" and self.precision == "fp32" and self.details.get("precision") in PRECISIONS:
            self.precision = self.details["precision"]  # a card written before engines recorded it here
        if self.io == "fused" and (self.camera is None or self.output != "argmax"):
            raise ValueError(f"artifact {self.path}: a fused-I/O artifact needs its 'camera' size and "
                             "an 'argmax' output; re-export it with `cityseg export --fused-io --force`")

    @property
    def fused(self) -> bool:
        return self.io == "fused"

    @property
    def gated(self) -> bool:
        """fp32, or a reduced precision whose accuracy gate (details['gate']) passed - for an engine,
        its parity with the gated ONNX it was built from (details['parity']): may be picked."""
        passed = self.details.get("parity" if self.format == "tensorrt" else "gate", {}).get("passed")
        return self.precision == "fp32" or bool(passed)

    def frame_shape(self, card: ModelCard) -> tuple[int, int, int]:
        """One frame of this artifact's input: the camera's HxWx3 (fused) or the card's network input."""
        if self.camera is not None and self.fused:
            return (self.camera.height, self.camera.width, 3)
        return card.input_shape


@dataclass
class ModelCard:
    """Everything needed to run a model exactly as it was trained."""

    name: str
    architecture: str
    input_height: int
    input_width: int
    class_space: str
    """'trainid' or 'labelid' (the Cityscapes sets), or 'custom': the classes are ``labels``."""
    class_names: tuple[str, ...]
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    channel_order: Literal["RGB", "BGR"] = "RGB"
    resize: str = "lanczos3"
    normalization: Normalization = field(default_factory=Normalization)
    input_layout: Layout = "NHWC"
    """Layout of the network input: NHWC (our Keras models) or NCHW (most PyTorch/Paddle exports)."""
    labels: dict[str, Any] | None = None
    """A custom label set (name, ignore_id, classes [{id, name, color}], optionally label_map:
    dataset label id -> class id); see cityseg.labels. Cards without label_map still load."""
    input_dtype: Literal["float32", "uint8"] = "float32"
    """'float32': normalised input (cards without the field); 'uint8': the resized frame as it is,
    no normalisation (int8 TFLite models and other uint8-input graphs)."""
    fit: Literal["stretch", "letterbox", "tiles"] = "stretch"
    """How frames of another aspect fill the input (cityseg.preprocess.FIT_POLICIES); cards without
    the field stretch."""
    tile_scale: float = 1.0
    """For fit ``tiles``: the factor frames are resized by before they are cut into input-sized
    tiles (1.0: the camera's own pixels; cards without the field). Unused by other fits."""
    imported: dict[str, Any] = field(default_factory=dict)
    """For a model cityseg did not train: the source file, its sha256, and what was detected or given."""
    frameworks: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    format_version: int = CARD_FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.input_height <= 0 or self.input_width <= 0:
            raise ValueError(f"input size must be positive, got {self.input_height}x{self.input_width}")
        if self.resize not in RESIZE_METHODS:
            raise ValueError(f"resize {self.resize!r} is not one of {', '.join(RESIZE_METHODS)}")
        if self.fit not in FIT_POLICIES:
            raise ValueError(f"fit {self.fit!r} is not one of {', '.join(FIT_POLICIES)}")
        if not (isinstance(self.tile_scale, (int, float)) and math.isfinite(self.tile_scale) and self.tile_scale > 0):
            raise ValueError(f"tile_scale {self.tile_scale!r} is not a positive number (the factor frames are "
                             "resized by before tiling, e.g. 1.0)")
        if self.input_dtype not in ("float32", "uint8"):
            raise ValueError(f"input_dtype {self.input_dtype!r} is not float32 or uint8")
        if self.class_space == CUSTOM_SPACE and self.labels is None:
            raise ValueError("class_space 'custom' needs the card's 'labels' (the classes with ids, "
                             "names and colours); re-import the model with --labels")
        if self.class_space not in ID_SPACES + (CUSTOM_SPACE,):
            raise ValueError(f"class_space: {self.class_space!r} is not one of {', '.join(ID_SPACES)}, "
                             f"{CUSTOM_SPACE}")
        expected = self.space.names
        if tuple(self.class_names) != expected:
            raise ValueError(f"class_names ({len(self.class_names)} names) do not match the "
                             f"{self.space.name} label set ({len(expected)} classes: "
                             f"{', '.join(expected[:3])}, ...)")
        if self.format_version > CARD_FORMAT_VERSION:
            raise ValueError(f"card format {self.format_version} is newer than this cityseg "
                             f"understands ({CARD_FORMAT_VERSION}); upgrade cityseg")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @cached_property
    def space(self) -> LabelSet:
        """The label set the model's class indices belong to."""
        if self.class_space == CUSTOM_SPACE:
            return parse_label_set(self.labels, "model card labels")
        return class_space(self.class_space)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One frame of network input, in the card's layout: (H, W, 3) or (3, H, W)."""
        h, w = self.input_height, self.input_width
        return (3, h, w) if self.input_layout == "NCHW" else (h, w, 3)

    def to_dict(self) -> dict:
        return to_mapping(self)

    def preprocess(self, frames: Sequence[np.ndarray], channel_order: str = "RGB") -> np.ndarray:
        """Frames (uint8, any size, in ``channel_order``) -> float32 network input (NxHxWx3, or
        Nx3xHxW for an NCHW card), one input per frame, exactly as this model was trained: the card's
        resize method, fit, channel order and normalisation (none for a uint8-input card: the resized
        uint8 frame). A ``tiles`` card gives each frame's middle tile here (what export checks and
        calibration sample); :meth:`network_batch` gives every tile, as the Segmenter runs them."""
        batch = np.empty((len(frames), self.input_height, self.input_width, 3), dtype=np.uint8)
        for i, frame in enumerate(frames):
            batch[i] = prepare_frame_fit(frame, channel_order, self.input_height, self.input_width,
                                         self.resize, self.channel_order, self.fit, self.tile_scale)
        return self._finish(batch)

    def tile_grid(self, frame_size: tuple[int, int]) -> TileGrid | None:
        """The tiles a frame of ``frame_size`` (H, W) is cut into (None unless the fit is ``tiles``)."""
        if self.fit != "tiles":
            return None
        return tile_grid(frame_size, self.input_height, self.input_width, self.tile_scale)

    def network_batch(self, frames: Sequence[np.ndarray], channel_order: str = "RGB") -> np.ndarray:
        """What the model runs on for ``frames``: :meth:`preprocess`, except that a ``tiles`` card gives
        every tile of every frame (frame by frame, each frame's tiles row-major, :meth:`tile_grid`)."""
        if self.fit != "tiles":
            return self.preprocess(frames, channel_order)
        tiles = [prepare_frame_tiles(frame, channel_order, self.input_height, self.input_width, self.resize,
                                     self.channel_order, self.tile_scale)[0] for frame in frames]
        return self._finish(tiles[0] if len(tiles) == 1 else np.concatenate(tiles))

    def _finish(self, batch: np.ndarray) -> np.ndarray:
        """A uint8 NHWC batch -> the network's input dtype and layout."""
        if self.input_dtype == "uint8":
            return to_layout(batch, self.input_layout)
        return to_layout(normalize(batch, self.normalization), self.input_layout)


def class_fields(space: LabelSet, *, with_label_map: bool | None = None) -> dict[str, Any]:
    """The card fields that record ``space``: ``class_space``, ``class_names`` and, for a label set
    that is not a Cityscapes one, ``labels`` (for ``ModelCard(..., **class_fields(space))``).

    ``labels`` holds the set's ``label_map`` (dataset label id -> class id, what lets ``cityseg
    evaluate`` map ground truth into the set) when the set has one, or ``with_label_map`` says so."""
    if space.is_cityscapes:
        return {"class_space": space.name, "class_names": space.names, "labels": None}
    mapped = space.has_label_map if with_label_map is None else with_label_map
    return {"class_space": CUSTOM_SPACE, "class_names": space.names,
            "labels": label_set_to_dict(space, with_label_map=mapped)}


def framework_versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` (plus python and cityseg), for the card."""
    versions = {"python": platform.python_version(), "cityseg": __version__}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def replace_card(card: ModelCard, **changes) -> ModelCard:
    """A copy of ``card`` with fields changed (validated again)."""
    return dataclasses.replace(card, **changes)

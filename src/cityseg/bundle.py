"""Model bundles: a directory with ``model.json`` (the model card) and the model files.

The card records everything inference needs to preprocess exactly as in training (input size,
channel order, resize method, normalisation), what the outputs mean (class space, class names,
output kind) and where each artifact lives. Loading validates all of it.

Layout::

    <bundle>/model.json       the card (this module)
    <bundle>/model.keras      written by the trainer
    <bundle>/model.onnx       written by ``cityseg export --onnx``
    <bundle>/*.engine         written by ``cityseg export --tensorrt``

A bare bundle name (``unet_lite``, no path separator) is looked up in ``./models``, then
``$CITYSEG_MODELS``, then the installed share directory (:func:`resolve_bundle`).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from cityseg import __version__
from cityseg.config import ConfigError, from_mapping, to_mapping
from cityseg.errors import BundleError
from cityseg.fileio import write_json_atomic
from cityseg.labels import ClassSpace, class_space
from cityseg.preprocess import RESIZE_METHODS, Normalization, normalize, prepare_frame

CARD_FILE = "model.json"
MODELS_ENV = "CITYSEG_MODELS"
"""Folder(s) holding model bundles, searched for bare bundle names (``os.pathsep``-separated)."""
CARD_FORMAT_VERSION = 1
OutputKind = Literal["probabilities", "logits", "argmax"]
ArtifactFormat = Literal["keras", "onnx", "tensorrt"]


@dataclass
class Artifact:
    """One model file of the bundle and what its output is."""

    path: str
    """File name relative to the bundle directory."""
    format: ArtifactFormat
    output: OutputKind = "probabilities"
    """'probabilities'/'logits': NxHxWxC scores; 'argmax': NxHxW class indices."""
    details: dict[str, Any] = field(default_factory=dict)
    """Format-specific facts: ONNX opset, TensorRT version/GPU/precision, parity figures..."""


@dataclass
class ModelCard:
    """Everything needed to run a model exactly as it was trained."""

    name: str
    architecture: str
    input_height: int
    input_width: int
    class_space: Literal["trainid", "labelid"]
    class_names: tuple[str, ...]
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    channel_order: Literal["RGB", "BGR"] = "RGB"
    resize: str = "lanczos3"
    normalization: Normalization = field(default_factory=Normalization)
    frameworks: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    format_version: int = CARD_FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.input_height <= 0 or self.input_width <= 0:
            raise ValueError(f"input size must be positive, got {self.input_height}x{self.input_width}")
        if self.resize not in RESIZE_METHODS:
            raise ValueError(f"resize {self.resize!r} is not one of {', '.join(RESIZE_METHODS)}")
        expected = class_space(self.class_space).names
        if tuple(self.class_names) != expected:
            raise ValueError(f"class_names ({len(self.class_names)} names) do not match the "
                             f"{self.class_space} class space ({len(expected)} classes: "
                             f"{', '.join(expected[:3])}, ...)")
        if self.format_version > CARD_FORMAT_VERSION:
            raise ValueError(f"card format {self.format_version} is newer than this cityseg "
                             f"understands ({CARD_FORMAT_VERSION}); upgrade cityseg")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def space(self) -> ClassSpace:
        return class_space(self.class_space)

    def to_dict(self) -> dict:
        return to_mapping(self)

    def preprocess(self, frames: Sequence[np.ndarray], channel_order: str = "RGB") -> np.ndarray:
        """Frames (uint8, any size, in ``channel_order``) -> float32 NxHxWx3 network input, exactly
        as this model was trained: the card's resize method, channel order and normalisation."""
        batch = np.empty((len(frames), self.input_height, self.input_width, 3), dtype=np.uint8)
        for i, frame in enumerate(frames):
            batch[i] = prepare_frame(frame, channel_order, self.input_height, self.input_width,
                                     self.resize, self.channel_order)
        return normalize(batch, self.normalization)


def framework_versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` (plus python and cityseg), for the card."""
    versions = {"python": platform.python_version(), "cityseg": __version__}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


class Bundle:
    """A model bundle directory and its validated card."""

    def __init__(self, path: Path, card: ModelCard):
        self.path = Path(path)
        self.card = card

    @classmethod
    def load(cls, path: str | Path) -> "Bundle":
        """Load and validate the bundle at ``path`` (a directory or its ``model.json``, or a bare
        bundle name found by :func:`resolve_bundle`)."""
        root = resolve_bundle(path)
        if root.name == CARD_FILE:
            root = root.parent
        card_path = root / CARD_FILE
        if not root.is_dir():
            raise BundleError(f"{root}: no such model bundle directory; train one with "
                              "`cityseg train` or `cityseg demo`, or check the path")
        if not card_path.is_file():
            raise BundleError(f"{root}: not a model bundle, {CARD_FILE} is missing")
        try:
            raw = json.loads(card_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{card_path}: corrupt model card ({exc}); restore it from the "
                              "training run directory") from None
        try:
            card = from_mapping(ModelCard, raw, where=str(card_path))
        except ConfigError as exc:
            raise BundleError(f"invalid model card: {exc}") from None
        bundle = cls(root, card)
        for key, artifact in card.artifacts.items():
            if not (root / artifact.path).is_file():
                raise BundleError(f"{root / artifact.path}: the card lists artifact {key!r} but "
                                  "the file is missing; copy the whole bundle directory, or "
                                  "re-run `cityseg export` to recreate it")
        return bundle

    @classmethod
    def create(cls, path: str | Path, card: ModelCard, *, overwrite: bool = False) -> "Bundle":
        """Start a new bundle directory holding ``card``; refuse to replace one unless ``overwrite``."""
        root = Path(path)
        if (root / CARD_FILE).exists() and not overwrite:
            raise BundleError(f"{root}: a model bundle already exists there; choose another "
                              "output directory or pass --force to replace it")
        root.mkdir(parents=True, exist_ok=True)
        bundle = cls(root, card)
        bundle.save()
        return bundle

    def save(self) -> None:
        """Write the card atomically."""
        write_json_atomic(self.path / CARD_FILE, self.card.to_dict())

    def artifact_path(self, key: str) -> Path:
        return self.path / self.card.artifacts[key].path

    def artifacts(self, fmt: str) -> dict[str, Artifact]:
        """The card's artifacts of one format (keras, onnx, tensorrt), in card order."""
        return {k: a for k, a in self.card.artifacts.items() if a.format == fmt}

    def add_artifact(self, key: str, artifact: Artifact) -> None:
        """Record an artifact (its file must already be in place) and save the card."""
        if not (self.path / artifact.path).is_file():
            raise BundleError(f"{self.path / artifact.path}: cannot record a missing artifact")
        self.card.artifacts[key] = artifact
        self.save()

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, {self.card.architecture}, {list(self.card.artifacts)})"


def resolve_bundle(path: str | Path) -> Path:
    """Where the bundle ``path`` is. A path with a separator (or ``.``, ``..``, ``model.json``) is
    returned as given; a bare name is the first ``<dir>/<name>`` holding a model card among
    :func:`bundle_dirs`, else ``./<name>``; BundleError naming every place searched when none is."""
    text = os.fspath(path)
    separators = {os.sep, os.altsep} - {None}
    if any(s in text for s in separators) or text in ("", ".", "..", CARD_FILE):
        return Path(path)
    searched = []
    for where, directory in bundle_dirs():
        candidate = directory / text
        if (candidate / CARD_FILE).is_file():
            return candidate
        searched.append(f"{candidate} ({where})")
    if Path(text).is_dir():
        return Path(text)
    if not os.environ.get(MODELS_ENV):
        searched.insert(1, f"${MODELS_ENV} (not set)")
    searched.append(f"{Path(text).resolve()} (as a path)")
    raise BundleError(f"{text}: no model bundle of that name; looked in\n  " + "\n  ".join(searched)
                      + f"\nPut the bundle directory (with its {CARD_FILE}) in ./models/ (see models/README.md) "
                      f"or in a folder named by {MODELS_ENV}, or give the bundle's path (e.g. ./{text})")


def bundle_dirs() -> list[tuple[str, Path]]:
    """The folders searched for bare bundle names, in order, as (why searched, folder)."""
    dirs = [("./models", Path("models"))]
    dirs += [(f"${MODELS_ENV}", Path(d)) for d in os.environ.get(MODELS_ENV, "").split(os.pathsep) if d]
    dirs.append(("installed", Path(sys.prefix) / "share" / "cityseg" / "models"))
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(("ament share", Path(get_package_share_directory("cityseg")) / "models"))
    except (ImportError, LookupError, ValueError):  # no ROS 2, or cityseg not in the ament index
        pass
    unique = {}
    for where, directory in dirs:
        unique.setdefault(directory.resolve(), (where, directory))
    return list(unique.values())


def replace_card(card: ModelCard, **changes) -> ModelCard:
    """A copy of ``card`` with fields changed (validated again)."""
    return dataclasses.replace(card, **changes)

"""Calibration and evaluation frames for reduced-precision exports: which images, checked, hashed.

Frames come from a folder (``--calib-images DIR``), a split of a dataset in the Cityscapes layout
(``--calib-data ROOT --calib-split NAME``, also the gate's ``--eval-data``), or generated street
scenes. Every frame is checked before any work: readable, 3-channel colour, all of one size. The
calibration set is identified by a SHA-256 over its pixels, recorded on the card. Activations are
then fed to ONNX Runtime's calibrator through the bundle's own preprocessing
(:meth:`cityseg.bundle.ModelCard.preprocess`, what inference runs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from cityseg.bundle import ModelCard
from cityseg.data.cityscapes import DatasetError
from cityseg.data.layouts import find_split
from cityseg.errors import InputError
from cityseg.export.parity import parity_frames
from cityseg.label_maps import LabelMap

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")
DEFAULT_CALIB_LIMIT = 64
"""Calibration frames used by default (spread evenly over the folder or split): enough for stable
activation ranges of these models (docs/EXPORT.md), and an int8 export of the demo bundle in well
under two minutes on two cores."""
MIN_CALIB_FRAMES = 8
"""Fewer frames than this give activation ranges of a few scenes only: refused."""


@dataclass
class FrameSet:
    """RGB uint8 frames (one size), where they came from, optional label-id maps, and their hash."""

    frames: list[np.ndarray]
    source: str
    labels: list[np.ndarray] | None = None
    files: list[Path] = field(default_factory=list)
    label_map: LabelMap | None = None
    """With ``labels`` of another dataset: the map from the model's classes to its set (the labels
    are then that set's ids, e.g. CamVid's through ``cityscapes-to-camvid``)."""

    @property
    def sha256(self) -> str:
        """SHA-256 over the frames' pixels, in order (what the card records as the set's identity)."""
        digest = hashlib.sha256()
        for frame in self.frames:
            digest.update(np.ascontiguousarray(frame).tobytes())
        return digest.hexdigest()

    def describe(self) -> dict:
        height, width = self.frames[0].shape[:2]
        return {"frames": len(self.frames), "source": self.source, "size": f"{width}x{height}",
                "sha256": self.sha256}


def image_files(directory: Path, limit: int | None = DEFAULT_CALIB_LIMIT, option: str = "--calib-images") -> list[Path]:
    """Images under ``directory`` (recursively, sorted), at most ``limit`` spread evenly over them."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{option} {directory}: no such directory; point it at a folder of "
                         "representative frames (e.g. leftImg8bit/train/aachen)")
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"{option} {directory}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return spread(files, limit)


def spread(items: list, limit: int | None) -> list:
    """At most ``limit`` of ``items``, picked evenly from first to last."""
    if limit is None or len(items) <= limit:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def read_colour_image(path: Path, option: str = "--calib-images") -> np.ndarray:
    """One colour image as RGB uint8; InputError naming the file when it is unreadable, grey or 4-channel."""
    raw = np.fromfile(path, dtype=np.uint8) if path.is_file() else np.empty(0, np.uint8)
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if image is None or image.size == 0:
        raise InputError(f"{option}: {path} cannot be read as an image; remove it from the folder or replace it")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        what = f"{image.shape[2]}-channel" if image.ndim == 3 else "single-channel"
        raise InputError(f"{option}: {path} is a {what} {image.dtype} image; calibration frames are 8-bit "
                         "3-channel camera frames (convert it, or leave it out)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_one_size(frames: list[np.ndarray], names: list[str], option: str) -> None:
    """InputError when the frames are not all of one size (another camera's frames mixed in)."""
    height, width = frames[0].shape[:2]
    for frame, name in zip(frames, names):
        if frame.shape[:2] != (height, width):
            raise InputError(f"{option}: {name} is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                             f"{names[0]} is {width}x{height}; use frames of one camera (one size)")


def require_count(count: int, minimum: int, option: str) -> None:
    if count < minimum:
        raise InputError(f"{option}: {count} frame(s) found, at least {minimum} are needed for stable "
                         "activation ranges; add frames (a few dozen from the training set)")


def folder_frames(directory: Path, limit: int | None = DEFAULT_CALIB_LIMIT, *,
                  minimum: int = MIN_CALIB_FRAMES, option: str = "--calib-images") -> FrameSet:
    """Checked frames of a folder."""
    files = image_files(directory, limit, option)
    frames = [read_colour_image(p, option) for p in files]  # read first: the count is of frames, not names
    require_count(len(frames), minimum, option)
    check_one_size(frames, [str(p) for p in files], option)
    return FrameSet(frames, f"images:{Path(directory).name}", files=files)


def dataset_frames(root: Path, split: str, limit: int | None = DEFAULT_CALIB_LIMIT, *,
                   minimum: int = MIN_CALIB_FRAMES, option: str = "--calib-data",
                   with_labels: bool = False, layout: str = "cityscapes",
                   label_map: LabelMap | None = None) -> FrameSet:
    """Checked frames (and, ``with_labels``, their label maps: labelIds, or with ``label_map`` the
    ids of its target set) of a split of a dataset in ``layout`` (docs/DATA.md)."""
    try:
        samples = spread(find_split(root, layout, split, check_files=False), limit)
    except DatasetError as exc:
        raise InputError(f"{option} {root}: {exc}") from None
    require_count(len(samples), minimum, f"{option} {root} split {split}")
    frames = [read_colour_image(s.image, option) for s in samples]
    check_one_size(frames, [str(s.image) for s in samples], option)
    labels = None
    if with_labels:
        missing = [s.image for s in samples if s.label is None]
        if missing:
            raise InputError(f"{option} {root}: split {split} has no ground truth ({missing[0]}); use a "
                             "labelled split (val) or leave the option out to compare with the fp32 model")
        labels = [read_label_map(s.label, option) for s in samples]
    return FrameSet(frames, f"{split}:{Path(root).name}", labels=labels, files=[s.image for s in samples],
                    label_map=label_map if with_labels else None)


def read_label_map(path: Path, option: str) -> np.ndarray:
    """A labelIds PNG as uint8 HxW; InputError naming it when unreadable or not single-channel."""
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None or label.ndim != 2:
        raise InputError(f"{option}: {path} is not a single-channel labelIds PNG; check the dataset")
    return label.astype(np.uint8)


def generated_frames(card: ModelCard, count: int, seed: int = 1) -> FrameSet:
    """Street scenes from :mod:`cityseg.synthetic.dataset` at twice the network size (labels kept)."""
    frames, source = parity_frames(card, count=count, seed=seed)
    return FrameSet(frames, source)


class FrameFeed:
    """ONNX Runtime's CalibrationDataReader protocol: ``get_next()`` -> {input name: batch} or None.

    Batches of ``batch`` frames preprocessed with the card (float32, the card's layout). With
    ``len()`` and ``set_range()`` it is also a strided reader (``CalibStridedMinMax``): the
    calibrator then holds the activations of one range of batches at a time, not of the whole set."""

    def __init__(self, frames: FrameSet, card: ModelCard, input_name: str, batch: int = 1):
        self.frames, self.card, self.input_name, self.batch = frames.frames, card, input_name, max(1, batch)
        self.position, self.end = 0, len(self)

    def __len__(self) -> int:
        """Whole batches in the set (a last partial batch is left out)."""
        return len(self.frames) // self.batch

    def set_range(self, start_index: int, end_index: int) -> None:
        """Read batches ``start_index`` to ``end_index`` (exclusive) next."""
        self.position, self.end = start_index, min(end_index, len(self))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= self.end:
            return None
        first = self.position * self.batch
        chunk = self.frames[first:first + self.batch]
        self.position += 1
        dtype = np.uint8 if self.card.input_dtype == "uint8" else np.float32  # a uint8-input card: the frame
        return {self.input_name: np.ascontiguousarray(self.card.preprocess(chunk), dtype=dtype)}

    def rewind(self) -> None:
        self.set_range(0, len(self))

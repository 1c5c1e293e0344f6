"""Find Cityscapes samples on disk, pair images with labels by key, and make the splits.

A Cityscapes root holds::

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Images and labels are paired by their key ``<city>_<seq>_<frame>`` (never by position in two
sorted lists, the original study's flaw). Unpaired or unreadable files are refused with their paths.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cityseg.errors import CitysegError, listing

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
OFFICIAL_SPLITS = ("train", "val", "test")
KEY_PATTERN = re.compile(r"^[^_]+_\d{6}_\d{6}$")
STUDY_FRACTIONS = (60, 15)
"""Percent of the pooled, key-sorted train+val samples in the study's train and dev splits;
the rest (25 %) is its test split: 2085 / 521 / 869 of 3475."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class DatasetError(CitysegError):
    """The dataset on disk is missing, incomplete, unpaired or unreadable."""


@dataclass(frozen=True)
class Sample:
    """One frame: its key (Cityscapes' city_seq_frame, else the file stem), image file and
    annotation file (None when unlabelled), and the split it came from."""

    key: str
    image: Path
    label: Path | None
    split: str




def _index(folder: Path, suffix: str) -> tuple[dict[str, Path], list[Path]]:
    """key -> path of every ``*<suffix>`` file under ``folder/<city>/``; also duplicate keys."""
    found: dict[str, Path] = {}
    duplicates = []
    for path in sorted(folder.glob(f"*/*{suffix}")):
        key = path.name[: -len(suffix)]
        if key in found:
            duplicates += [found[key], path]
        found[key] = path
    return found, duplicates


def find_samples(root: str | Path, split: str, *, check_files: bool = True) -> list[Sample]:
    """All samples of official ``split`` under ``root``, sorted by key, paired by key.

    A split without a ``gtFine/<split>`` folder is allowed only for ``test`` (labels None).
    ``check_files`` reads each PNG header (cheap) to refuse unreadable files before training.
    """
    root = Path(root).expanduser()
    if split not in OFFICIAL_SPLITS:
        raise DatasetError(f"unknown split {split!r}; Cityscapes splits are {', '.join(OFFICIAL_SPLITS)}")
    image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    if not image_dir.is_dir():
        raise DatasetError(
            f"{image_dir}: no such folder. The data root must hold leftImg8bit/<split>/<city>/"
            f"*{IMAGE_SUFFIX} and gtFine/<split>/<city>/*{LABEL_SUFFIX} (unzip leftImg8bit_trainvaltest.zip "
            "and gtFine_trainvaltest.zip into it), or generate synthetic data with `cityseg synth --out DIR`")
    images, dup_images = _index(image_dir, IMAGE_SUFFIX)
    if not images:
        raise DatasetError(f"{image_dir}: no *{IMAGE_SUFFIX} files in its city folders; "
                           "is this the Cityscapes root (the folder holding leftImg8bit/ and gtFine/)?")
    if not label_dir.is_dir():
        if split != "test":
            raise DatasetError(f"{label_dir}: no such folder, so the {split} images have no labels; "
                               "unzip gtFine_trainvaltest.zip into the data root")
        labels, dup_labels = {}, []
    else:
        labels, dup_labels = _index(label_dir, LABEL_SUFFIX)
    if dup_images or dup_labels:
        raise DatasetError(listing(dup_images + dup_labels, "files share a key with another file") +
                           "\nkeys must be unique within a split; remove the copies")
    bad_names = [images[k] for k in images if not KEY_PATTERN.match(k)]
    bad_names += [labels[k] for k in labels if not KEY_PATTERN.match(k)]
    if bad_names:
        raise DatasetError(listing(bad_names, "files are not named <city>_<seq:6 digits>_<frame:6 digits>"
                                    "_...") + "\nrename them as Cityscapes does")
    if labels or split != "test":  # an unlabelled test split is normal; elsewhere every image needs a label
        _refuse_unpaired(images, labels, image_dir, label_dir)
    samples = [Sample(key, images[key], labels.get(key), split) for key in sorted(images)]
    if check_files:
        check_readable(samples)
    return samples


def _refuse_unpaired(images: dict[str, Path], labels: dict[str, Path], image_dir: Path, label_dir: Path) -> None:
    lonely_images = [images[k] for k in sorted(images.keys() - labels.keys())]
    lonely_labels = [labels[k] for k in sorted(labels.keys() - images.keys())]
    problems = []
    if lonely_images:
        problems.append(listing(lonely_images, f"images without a *{LABEL_SUFFIX} in {label_dir}"))
    if lonely_labels:
        problems.append(listing(lonely_labels, f"labels without a *{IMAGE_SUFFIX} in {image_dir}"))
    if problems:
        raise DatasetError("\n".join(problems) + "\nimages and labels are paired by their "
                           "<city>_<seq>_<frame> key; add the missing files or remove the unpaired ones")


def png_header(path: Path) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk; ValueError if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise ValueError("not a PNG file (bad signature or header)" if head else "the file is empty")
    width, height, depth, color = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, color


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image from its header: a PNG's IHDR (8-bit grey/RGB/RGBA), else Pillow's."""
    if path.suffix.lower() != ".png":
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                return image.size
        except UnidentifiedImageError:
            raise ValueError("not an image Pillow can read") from None
    w, h, depth, color = png_header(path)
    if depth != 8 or color not in (0, 2, 6):
        raise ValueError(f"expected an 8-bit RGB image, found bit depth {depth}, colour type {color}")
    return w, h


def check_readable(samples: list[Sample]) -> None:
    """Refuse samples whose PNG headers are unreadable, of the wrong kind, or of mismatched sizes."""
    problems = []
    for s in samples:
        try:
            w, h = _image_size(s.image)
        except (OSError, ValueError) as exc:
            problems.append(f"{s.image}: {exc}")
            continue
        if s.label is None:
            continue
        try:
            lw, lh, ldepth, lcolor = png_header(s.label)
            if ldepth != 8 or lcolor != 0:
                raise ValueError("expected an 8-bit single-channel labelIds PNG (not a colour mask)")
            if (lw, lh) != (w, h):
                raise ValueError(f"size {lw}x{lh} differs from its image's {w}x{h}")
        except (OSError, ValueError) as exc:
            problems.append(f"{s.label}: {exc}")
    if problems:
        raise DatasetError(listing(problems, "unreadable or invalid files") +
                           "\nre-extract these files from the dataset's archives (or regenerate them)")


def study_split(samples: list[Sample], seed: int | None = None,
                order: str = "key") -> dict[str, list[Sample]]:
    """The study's split of pooled samples: sorted, then 60 % train / 15 % dev / 25 % test.

    ``order`` 'key' sorts by city_seq_frame; 'path' by (split folder, city, key), i.e. the image
    file paths as the study sorted them. ``seed`` None keeps the sorted order; an int shuffles
    (seeded) before cutting.
    """
    if order not in ("key", "path"):
        raise ValueError(f"study split order must be 'key' or 'path', got {order!r}")
    sort_key = (lambda s: s.key) if order == "key" else (lambda s: (s.split, s.image.parent.name, s.key))
    ordered = sorted(samples, key=sort_key)
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(ordered))
        ordered = [ordered[i] for i in order]
    n = len(ordered)
    n_train = n * STUDY_FRACTIONS[0] // 100
    n_dev = n * STUDY_FRACTIONS[1] // 100
    return {"train": ordered[:n_train], "dev": ordered[n_train:n_train + n_dev],
            "test": ordered[n_train + n_dev:]}

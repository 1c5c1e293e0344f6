"""Find samples in a folder pair matched by file stem (``data.layout: paired``).

For KITTI-style data and a user's own::

    <root>/images/<split>/**/<stem>.png|.jpg     the camera frames
    <root>/labels/<split>/**/<stem>.png          8-bit annotations of class ids, same size

The folder names are ``data.paired_dirs``; the relative path without its suffix (``seq1/000042``)
pairs an image with its annotation. Every image needs one annotation and the reverse.
"""

from __future__ import annotations

from pathlib import Path

from cityseg.data.cityscapes import DatasetError, Sample, check_readable
from cityseg.errors import listing

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LABEL_SUFFIXES = (".png",)


def split_folders(root: Path, dirs: tuple[str, str], split: str) -> tuple[Path, Path]:
    """(image folder, label folder) of ``split``."""
    return root / dirs[0] / split, root / dirs[1] / split


def _index(folder: Path, suffixes: tuple[str, ...]) -> tuple[dict[str, Path], list[Path]]:
    found: dict[str, Path] = {}
    duplicates = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes):
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in found:
            duplicates += [found[key], path]
        found[key] = path
    return found, duplicates


def find_samples(root: str | Path, split: str, dirs: tuple[str, str] = ("images", "labels"), *,
                 check_files: bool = True) -> list[Sample]:
    """All pairs of ``split``, sorted by key; unpaired files are refused with their paths."""
    root = Path(root).expanduser()
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; paired-layout splits are {', '.join(SPLITS)}")
    image_dir, label_dir = split_folders(root, tuple(dirs), split)
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise DatasetError(f"{folder}: no such folder; a paired root (data.layout: paired) holds "
                               f"{dirs[0]}/<split>/ and {dirs[1]}/<split>/ (data.paired_dirs)")
    images, dup_images = _index(image_dir, IMAGE_SUFFIXES)
    labels, dup_labels = _index(label_dir, LABEL_SUFFIXES)
    if dup_images or dup_labels:
        raise DatasetError(listing(dup_images + dup_labels, "files share a stem with another file")
                           + "\nkeep one file per stem in each folder")
    if not images:
        raise DatasetError(f"{image_dir}: no {'/'.join(IMAGE_SUFFIXES)} images; the {split} split is empty")
    problems = []
    lonely_images = [images[k] for k in sorted(images.keys() - labels.keys())]
    lonely_labels = [labels[k] for k in sorted(labels.keys() - images.keys())]
    if lonely_images:
        problems.append(listing(lonely_images, f"images without an annotation of the same stem in {label_dir}"))
    if lonely_labels:
        problems.append(listing(lonely_labels, f"annotations without an image of the same stem in {image_dir}"))
    if problems:
        raise DatasetError("\n".join(problems) + "\nadd the missing partner files or remove the unpaired ones")
    samples = [Sample(key, images[key], labels[key], split) for key in sorted(images)]
    if check_files:
        check_readable(samples)
    return samples

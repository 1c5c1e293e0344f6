"""One way in for every dataset layout: the samples of a split, and a run's train/val splits.

``data.layout`` picks the finder (:mod:`cityseg.data.cityscapes`, :mod:`cityseg.data.camvid`,
:mod:`cityseg.data.paired`). A root laid out otherwise than the config says is named for what it
looks like, so the user gets the fix (``data.layout: camvid``), not a list of missing files.
"""

from __future__ import annotations

from pathlib import Path

import cityseg.data.camvid as camvid
import cityseg.data.cityscapes as cityscapes
import cityseg.data.paired as paired
from cityseg.data.cityscapes import DatasetError, Sample, study_split
from cityseg.data.config import DataConfig

LAYOUTS = ("cityscapes", "camvid", "paired")


def detect_layout(root: Path, dirs: tuple[str, str] = ("images", "labels")) -> str | None:
    """The layout ``root`` looks like (from its top-level entries only), or None."""
    if (root / "leftImg8bit").is_dir():
        return "cityscapes"
    if any(camvid.list_file(root, s).is_file() for s in camvid.SPLITS):
        return "camvid"
    if (root / dirs[0]).is_dir() and (root / dirs[1]).is_dir():
        return "paired"
    return None


def find_split(root: str | Path | None, layout: str, split: str, *,
               paired_dirs: tuple[str, str] = ("images", "labels"), check_files: bool = True) -> list[Sample]:
    """The samples of ``split`` ('train', 'val', 'test') under ``root`` in ``layout``."""
    if not root:
        raise DatasetError("no data root: set data.root in the config or pass --data-root DIR "
                           "(a dataset download, or a folder written by `cityseg synth`)")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder (the data root, data.root / --data-root)")
    try:
        if layout == "camvid":
            return camvid.find_samples(root, split, check_files=check_files)
        if layout == "paired":
            return paired.find_samples(root, split, tuple(paired_dirs), check_files=check_files)
        return cityscapes.find_samples(root, split, check_files=check_files)
    except DatasetError as exc:
        looks = detect_layout(root, tuple(paired_dirs))
        if looks is not None and looks != layout:
            raise DatasetError(f"{root}: looks like a {looks} folder, but the layout is {layout}; "
                               f"set data.layout: {looks} (or --layout {looks}) - {exc}") from None
        raise


def has_split(root: str | Path, layout: str, split: str,
              paired_dirs: tuple[str, str] = ("images", "labels")) -> bool:
    """True when ``root`` in ``layout`` has a ``split`` (its list file, or its folders)."""
    root = Path(root).expanduser()
    if layout == "camvid":
        return camvid.list_file(root, split).is_file()
    if layout == "paired":
        return all(p.is_dir() for p in paired.split_folders(root, tuple(paired_dirs), split))
    return (root / "leftImg8bit" / split).is_dir()


def config_split(data: DataConfig, split: str, *, check_files: bool = True) -> list[Sample]:
    """The samples of ``split`` of a data config (its root, layout and folders)."""
    return find_split(data.root, data.layout, split, paired_dirs=tuple(data.paired_dirs),
                      check_files=check_files)


def make_splits(data: DataConfig) -> dict[str, list[Sample]]:
    """The splits of ``data``: official {"train", "val"} or study {"train", "dev", "test"}.

    ``data.max_samples`` keeps the first N samples of each split.
    """
    train, val = config_split(data, "train"), config_split(data, "val")
    if data.split == "official":
        splits = {"train": train, "val": val}
    else:
        splits = study_split(train + val, data.split_seed, data.study_order)
    if data.max_samples is not None:
        splits = {name: samples[: data.max_samples] for name, samples in splits.items()}
    empty = [name for name, samples in splits.items() if not samples]
    if empty:
        raise DatasetError(f"{data.root}: split(s) {', '.join(empty)} are empty "
                           f"(train {len(train)} and val {len(val)} images found); add more samples")
    return splits


def validation_split(data: DataConfig) -> str:
    """Name of the split used for validation: 'val' (official) or 'dev' (study)."""
    return "val" if data.split == "official" else "dev"

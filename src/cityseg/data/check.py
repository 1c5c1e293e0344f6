"""`cityseg data check`: read every pair of every split once, before hours of training.

It decodes each image and annotation, and reports per split: images, image sizes, the pixel share
of every class and of void. It refuses (naming each file) unreadable or empty files, image /
annotation size mismatches, and annotation values that are neither a class nor void of the label
set. Missing or extra partner files, unresolvable list entries and empty splits are refused by the
layout's finder (:mod:`cityseg.data.layouts`). Nothing is written.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from cityseg.data.cityscapes import DatasetError, Sample
from cityseg.data.config import DataConfig
from cityseg.data.layouts import config_split, has_split
from cityseg.data.pipeline import data_space, invalid_label_values
from cityseg.errors import InputError, listing
from cityseg.fileio import read_image, read_label_png
from cityseg.labels import LabelSet

REQUIRED_SPLITS = ("train", "val")
OPTIONAL_SPLITS = ("test",)


@dataclass
class SplitReport:
    """What one split holds: its images, their sizes, and annotation pixels per value."""

    name: str
    images: int = 0
    sizes: Counter = field(default_factory=Counter)
    """(width, height) -> number of images of that size."""
    value_pixels: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    """Annotation pixels per raw value 0-255."""


@dataclass
class DataReport:
    """The whole check: layout, root, label set and one report per split found."""

    layout: str
    root: str
    space: LabelSet
    splits: list[SplitReport]


def _read_pair(sample: Sample) -> tuple[Sample, tuple[int, int] | None, np.ndarray | None, list[str]]:
    problems = []
    try:
        image = read_image(sample.image)
    except InputError as exc:
        return sample, None, None, [str(exc)]
    size = (image.shape[1], image.shape[0])
    try:
        label = read_label_png(sample.label)
    except InputError as exc:
        return sample, size, None, [str(exc)]
    if label.shape != image.shape[:2]:
        problems.append(f"{sample.label}: size {label.shape[1]}x{label.shape[0]} differs from its "
                        f"image {sample.image} ({size[0]}x{size[1]})")
    return sample, size, np.bincount(label.ravel(), minlength=256), problems


def check_split(data: DataConfig, split: str, space: LabelSet,
                progress: bool = False) -> tuple[SplitReport, list[str]]:
    """The report of one split and the problems found in its files."""
    from tqdm import tqdm

    samples = config_split(data, split)
    report, problems = SplitReport(split), []
    unlabelled = [s.image for s in samples if s.label is None]
    if unlabelled:
        return report, [listing(unlabelled, f"{split} images have no annotation")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for sample, size, counts, found in tqdm(pool.map(_read_pair, samples), total=len(samples),
                                                unit="pair", desc=f"checking {split}", disable=not progress):
            problems += found
            if size is not None:
                report.sizes[size] += 1
            if counts is None:
                continue
            report.images += 1
            report.value_pixels += counts
            bad = invalid_label_values(np.flatnonzero(counts), space)
            if bad:
                problems.append(f"{sample.label}: holds value(s) {bad[:8]}, neither a class nor void "
                                f"of the label set {space.name}")
    return report, problems


def check_dataset(data: DataConfig, *, progress: bool = False) -> DataReport:
    """Check train and val (and test where the layout has it); DatasetError listing every problem."""
    space = data_space(data)
    splits = list(REQUIRED_SPLITS) + [s for s in OPTIONAL_SPLITS
                                     if has_split(data.root, data.layout, s, tuple(data.paired_dirs))]
    reports, problems = [], []
    for split in splits:
        report, found = check_split(data, split, space, progress)
        reports.append(report)
        problems += found
    if problems:
        raise DatasetError(listing(problems, f"problems in the {data.layout} data under {data.root}")
                           + "\nfix or remove these files (or their list-file lines), then check again")
    return DataReport(data.layout, str(data.root), space, reports)


def class_shares(report: SplitReport, space: LabelSet) -> tuple[np.ndarray, float]:
    """(pixel share of each class, void share) of a split's annotations, through the label set."""
    targets = space.from_label_id
    total = int(report.value_pixels.sum()) or 1
    per_class = np.array([report.value_pixels[targets == k].sum() for k in range(space.num_classes)])
    return per_class / total, 1.0 - per_class.sum() / total


def format_report(report: DataReport) -> str:
    """The check's table: images and sizes per split, class pixel shares (percent) and void."""
    names = [s.name for s in report.splits]
    width = max(len(n) for n in report.space.names + ("void (ignored)",)) + 2
    header = f"{'':<{width}}" + "".join(f"{n:>9}" for n in names)
    lines = [f"{report.layout} data under {report.root}, label set {report.space.name}", "", header,
             f"{'images':<{width}}" + "".join(f"{s.images:>9}" for s in report.splits)]
    shares = [class_shares(s, report.space) for s in report.splits]
    lines += ["", f"{'pixel share %':<{width}}"]
    for k, name in enumerate(report.space.names):
        lines.append(f"{name:<{width}}" + "".join(f"{100 * per[k]:9.2f}" for per, _ in shares))
    lines.append(f"{'void (ignored)':<{width}}" + "".join(f"{100 * void:9.2f}" for _, void in shares))
    lines.append("")
    for s in report.splits:
        sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in s.sizes.most_common())
        lines.append(f"{s.name} image sizes: {sizes}")
    lines.append("no problems found")
    return "\n".join(lines)

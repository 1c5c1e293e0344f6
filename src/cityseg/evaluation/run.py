"""Official Cityscapes scores for label PNGs on disk, or for a model bundle run over a split.

Both paths fill a :class:`cityseg.evaluation.scoring.ConfusionMatrix` (the exact semantics of
``cityscapesscripts``' ``evalPixelLevelSemanticLabeling``) at the ground truth's full resolution;
for a label set of one's own (a YAML, or a bundle carrying one) a
:class:`~cityseg.evaluation.scoring.LabelSetConfusion` over the set's classes, the ground truth's
labelIds mapped through the set's ``label_map``.
Label images are read with Pillow, as the official script does.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from cityseg.bundle import Bundle
from cityseg.data.cityscapes import study_split
from cityseg.data.layouts import find_split, has_split
from cityseg.errors import listing
from cityseg.evaluation.scoring import EvaluationError, EvaluationResult, confusion_for
from cityseg.fileio import read_image
from cityseg.inference import Segmenter
from cityseg.label_maps import LabelMap
from cityseg.labels import AUTO_ID_SPACE, LabelSet, class_space, conversion_lut, mask_id_space

GT_SUFFIX = "_gtFine_labelIds.png"
PREDICTION_SUFFIX = "_labelIds.png"
STUDY_SPLITS = {"study_train": "train", "study_dev": "dev", "study_test": "test"}
"""Split names of :func:`evaluate_bundle` for the study's pooled train+val split (sorted order)."""
SPLITS = ("train", "val", "test") + tuple(STUDY_SPLITS)
_KEY = re.compile(r"^(?P<key>[^_]+_\d{6}_\d{6})_")


def frame_key(path: Path) -> str | None:
    """``<city>_<seq>_<frame>`` from a Cityscapes-style file name (None if it has none)."""
    match = _KEY.match(path.name)
    return match.group("key") if match else None


def read_label_ids(path: Path) -> np.ndarray:
    """A single-channel label PNG as a 2-D integer array (Pillow, like the official script)."""
    try:
        with Image.open(path) as image:
            array = np.array(image)
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"{path}: cannot read it as a label PNG ({exc})") from None
    if array.ndim != 2:
        raise EvaluationError(f"{path}: a label image must have one channel, found shape "
                              f"{array.shape}; write *_labelIds.png masks, not colour images")
    return array


def _index_by_key(files: Iterable[Path], what: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    unnamed, duplicates = [], []
    for path in sorted(files):
        key = frame_key(path)
        if key is None:
            unnamed.append(path)
        elif key in found:
            duplicates += [found[key], path]
        else:
            found[key] = path
    if unnamed:
        raise EvaluationError(listing(unnamed, f"{what} files do not start with <city>_<seq>_<frame>_")
                              + "\nname them like the Cityscapes frame they belong to")
    if duplicates:
        raise EvaluationError(listing(duplicates, f"{what} files share a frame with another file")
                              + "\nkeep one file per frame")
    return found


def prediction_suffix(space: LabelSet | None) -> str:
    """What ``cityseg segment`` names masks of ``space``: ``_labelIds.png`` (None, labelid),
    ``_trainIds.png`` (trainid) or ``_classIds.png`` (a label set of one's own)."""
    if space is None or space.name == "labelid":
        return PREDICTION_SUFFIX
    return "_trainIds.png" if space.is_cityscapes else "_classIds.png"


def match_files(predictions: Path, ground_truth: Path,
                suffix: str = PREDICTION_SUFFIX) -> list[tuple[Path, Path]]:
    """(prediction, ground truth) pairs by frame key; any missing or extra prediction is an error.
    Predictions are the files ending in ``suffix``."""
    for folder, flag in ((predictions, "--predictions"), (ground_truth, "--ground-truth")):
        if not Path(folder).is_dir():
            raise EvaluationError(f"{folder}: no such directory ({flag})")
    gt_files = _index_by_key(Path(ground_truth).rglob(f"*{GT_SUFFIX}"), "ground truth")
    if not gt_files:
        raise EvaluationError(f"{ground_truth}: no *{GT_SUFFIX} files found (searched recursively); "
                              "point --ground-truth at gtFine/<split> of a Cityscapes root")
    prediction_paths = list(Path(predictions).rglob(f"*{suffix}"))
    gt_like = [p for p in prediction_paths if p.name.endswith(GT_SUFFIX)]
    if gt_like:
        raise EvaluationError(listing(gt_like, f"ground-truth files found under {predictions}")
                              + "\n--predictions must hold only the model's *_labelIds.png outputs")
    pred_files = _index_by_key(prediction_paths, "prediction")
    missing = sorted(gt_files.keys() - pred_files.keys())
    extra = sorted(pred_files.keys() - gt_files.keys())
    problems = []
    if missing:
        problems.append(listing([gt_files[k] for k in missing], f"ground-truth frames without a "
                                 f"*{suffix} prediction in {predictions}"))
    if extra:
        problems.append(listing([pred_files[k] for k in extra], f"predictions without a "
                                 f"*{GT_SUFFIX} in {ground_truth}"))
    if problems:
        raise EvaluationError("\n".join(problems) + "\nevery ground-truth frame needs exactly one "
                              "prediction (matched by <city>_<seq>_<frame>); check both directories")
    return [(pred_files[k], gt_files[k]) for k in sorted(gt_files)]


def _read_pair(pair: tuple[Path, Path]) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    prediction, truth = pair
    return prediction, truth, read_label_ids(prediction), read_label_ids(truth)


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def score_pairs(pairs: list[tuple[Path, Path]], progress: bool = False,
                space: LabelSet | None = None) -> EvaluationResult:
    """Scores of (prediction, ground truth) PNG pairs (read in parallel): official Cityscapes ones
    of labelIds (``space`` None or 'cityscapes-labelid'; a 'cityscapes' space takes trainId
    predictions), or per class of a label set of one's own (predictions in its ids)."""
    from tqdm import tqdm

    matrix = confusion_for(space)
    to_label_ids = None
    if space is not None and space.is_cityscapes:
        to_label_ids = conversion_lut(space, class_space("labelid"))
    with ThreadPoolExecutor(_threads()) as pool:
        loaded = pool.map(_read_pair, pairs)
        for prediction, truth, pred_ids, gt_ids in tqdm(loaded, total=len(pairs), unit="img",
                                                       disable=not progress):
            if pred_ids.shape != gt_ids.shape:
                raise EvaluationError(f"{prediction}: size {pred_ids.shape[1]}x{pred_ids.shape[0]} "
                                      f"differs from {truth} ({gt_ids.shape[1]}x{gt_ids.shape[0]}); "
                                      "predictions must be at the ground truth's resolution")
            try:
                if to_label_ids is not None:
                    pred_ids = to_label_ids[_uint8(pred_ids, prediction)]
                matrix.update(pred_ids, gt_ids)
            except EvaluationError as exc:
                raise EvaluationError(f"{prediction} vs {truth}: {exc}") from None
    return matrix.result()


def _uint8(ids: np.ndarray, path: Path) -> np.ndarray:
    if ids.size and (ids.min() < 0 or ids.max() > 255):
        raise EvaluationError(f"{path}: holds values above 255; write 8-bit label PNGs")
    return ids.astype(np.uint8, copy=False)


def evaluate_directories(predictions: Path, ground_truth: Path, *, progress: bool = False,
                         space: LabelSet | None = None) -> EvaluationResult:
    """Score every ``*_gtFine_labelIds.png`` under ``ground_truth`` against its prediction.

    Predictions are ``*_labelIds.png`` files (full resolution) anywhere under ``predictions``,
    named ``<city>_<seq>_<frame>_..._labelIds.png`` (what ``cityseg segment`` writes): labelIds,
    or the ids of ``space`` (``*_trainIds.png`` for 'cityscapes', ``*_classIds.png`` for a set of
    one's own: :func:`prediction_suffix`). For a label set of one's own the ground truth goes through its
    ``label_map`` (without one it is taken to hold the set's ids already).
    """
    pairs = match_files(Path(predictions), Path(ground_truth), prediction_suffix(space))
    return score_pairs(pairs, progress, space)


def split_samples(data_root: Path, split: str, study_seed: int | None = None,
                  study_order: str = "key", *, layout: str = "cityscapes",
                  paired_dirs: tuple[str, str] = ("images", "labels")) -> list:
    """Labelled samples of a split (train / val / test of ``layout``) or of the study's split
    (study_*, Cityscapes only), cut with ``study_seed`` / ``study_order`` (see DataConfig) - use
    the ones the model trained with."""
    if split not in SPLITS:
        raise EvaluationError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if split in STUDY_SPLITS:
        if layout != "cityscapes":
            raise EvaluationError(f"--split {split}: the study's splits pool Cityscapes' train and val; "
                                  f"with --layout {layout} use train, val or test")
        pooled = find_split(data_root, layout, "train") + find_split(data_root, layout, "val")
        samples = study_split(pooled, study_seed, study_order)[STUDY_SPLITS[split]]
    else:
        if not has_split(data_root, layout, split, paired_dirs) and Path(data_root).is_dir():
            raise EvaluationError(f"--split {split}: the {layout} data under {data_root} has no {split} "
                                  f"split; use one it has (train, val{', test' if layout != 'cityscapes' else ''})")
        samples = find_split(data_root, layout, split, paired_dirs=paired_dirs)
    unlabelled = [s.image for s in samples if s.label is None]
    if unlabelled:
        raise EvaluationError(listing(unlabelled, f"{split} images have no ground truth") +
                              "\nthe official test split has no public labels; evaluate on val")
    if not samples:
        raise EvaluationError(f"{data_root}: the {split} split is empty")
    return samples


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _scored_space(bundle: Bundle, layout: str, label_map: LabelMap | None) -> LabelSet:
    """The label set the ground truth is scored in (EvaluationError when the bundle's set and the
    data cannot be compared without a map)."""
    space = bundle.card.space
    if label_map is not None:
        if label_map.source.names != space.names:
            raise EvaluationError(f"--label-map {label_map.name}: maps from the label set "
                                  f"{label_map.source.name}, but {bundle.path} predicts {space.name} "
                                  f"({space.num_classes} classes); use a map from its label set")
        return label_map.target
    if space.is_cityscapes and layout != "cityscapes":
        raise EvaluationError(f"{bundle.path} predicts Cityscapes classes, which {layout} ground truth "
                              "does not hold; score it through a label map, e.g. --label-map "
                              "cityscapes-to-camvid")
    if not space.is_cityscapes and not space.has_label_map:
        raise EvaluationError(
            f"{bundle.path}: its label set {space.name!r} has no label_map, so the ground truth's "
            "labelIds cannot be put in its label space. Add label_map (dataset label id -> class id) "
            f"to 'labels' in {bundle.path / 'model.json'} (or re-import the model with a --labels "
            "YAML that has one), or score masks already in its ids with --predictions DIR "
            "--ground-truth DIR --labels YAML")
    return space


def evaluate_bundle(bundle: Path | Bundle, data_root: Path, split: str, backend: str = "auto", *,
                    batch_size: int = 4, progress: bool = False, layout: str | None = None,
                    label_map: LabelMap | None = None, artifact: str = "auto") -> EvaluationResult:
    """Run the bundle (preprocessing as its card says; ``artifact``: the card key of the model file,
    or what ``backend`` picks) on a split's images; score it.

    ``split``: train / val / test of the data's ``layout`` (default: the layout the bundle was
    trained on, else cityscapes), or study_train / study_dev / study_test. A Cityscapes bundle is
    scored officially (masks mapped to labelIds, upsampled nearest to full resolution); a bundle
    with a label set of its own over its classes, the ground truth through its ``label_map``;
    with ``label_map`` (a cross-dataset map) over the map's target classes.
    A study split is cut exactly as the model's training run cut it (seed and order from the card),
    so study_test never contains a training image.
    """
    from tqdm import tqdm

    bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    trained = bundle.card.training.get("config", {}).get("data", {})
    layout = layout or trained.get("layout", "cityscapes")
    scored = _scored_space(bundle, layout, label_map)
    samples = split_samples(Path(data_root), split, trained.get("split_seed"),
                            trained.get("study_order", "key"), layout=layout,
                            paired_dirs=tuple(trained.get("paired_dirs", ("images", "labels"))))
    id_space = None if label_map is not None else mask_id_space(AUTO_ID_SPACE, bundle.card.space)
    segmenter = Segmenter(bundle, backend=backend, id_space=id_space, artifact=None if artifact == "auto" else artifact)
    matrix = confusion_for(scored)
    with tqdm(total=len(samples), unit="img", disable=not progress) as bar:
        for batch in _batches(samples, max(1, batch_size)):
            frames = [read_image(s.image) for s in batch]
            for sample, result in zip(batch, segmenter.segment_batch(frames, channel_order="BGR")):
                truth = read_label_ids(sample.label)
                if truth.shape != result.mask.shape:
                    raise EvaluationError(f"{sample.label}: size {truth.shape[::-1]} differs from "
                                          f"its image {sample.image} {result.mask.shape[::-1]}")
                mask = result.mask if label_map is None else label_map.target_ids(result.mask)
                matrix.update(mask, truth)
            bar.update(len(batch))
    return matrix.result()


def _percent(value: float) -> str:
    return "   n/a" if math.isnan(value) else f"{100 * value:6.1f}"


def format_table(result: EvaluationResult) -> str:
    """Per-class and per-category IoU (percent) and the means, as a plain-text table."""
    width = max(len(n) for n in list(result.class_iou) + list(result.category_iou)) + 2
    rule = "-" * (width + 8)
    lines = [] if result.label_set == "cityscapes" else [f"label set {result.label_set}", ""]
    lines += [f"{'class':<{width}}  IoU %", rule]
    lines += [f"{name:<{width}}{_percent(iou)}" for name, iou in result.class_iou.items()]
    scored = sum(not math.isnan(v) for v in result.class_iou.values())
    lines += [rule, f"{'mIoU':<{width}}{_percent(result.miou)}  ({scored} of "
                    f"{len(result.class_iou)} classes scored)", ""]
    if result.category_iou:
        lines += [f"{'category':<{width}}  IoU %", rule]
        lines += [f"{name:<{width}}{_percent(iou)}" for name, iou in result.category_iou.items()]
        lines += [rule, f"{'mean':<{width}}{_percent(result.category_miou)}", ""]
    lines += [f"{'pixel accuracy':<{width}}{_percent(result.pixel_accuracy)}",
              f"{result.num_images} images, {result.num_pixels:,} scored pixels; n/a: class absent "
              "from the ground truth and never predicted on a scored pixel"]
    return "\n".join(lines)

"""The accuracy gate of a reduced-precision model (int8, fp16, bf16) against its fp32 ONNX.

Argmax parity of 99.9 % is not something int8 can promise, so a reduced-precision artifact is kept
when it is as *accurate* as the fp32 model instead:

* with ground truth (``--eval-data ROOT --eval-split NAME``; another dataset's through
  ``--eval-label-map``, e.g. CamVid for a Cityscapes model): its mIoU is at most
  :data:`MAX_MIOU_DROP` points below the fp32 model's, and no class's IoU drops more than
  :data:`MAX_CLASS_DROP` points;
* without: the fp32 model's masks are the reference; the candidate's mIoU against them is at least
  :data:`MIN_REFERENCE_MIOU` and its pixel agreement at least :data:`MIN_PIXEL_AGREEMENT`.

Both models see the same frames through the card's preprocessing and are scored at network
resolution over the model's class indices (ground truth mapped with the label set and resized,
nearest). Only numpy here; the runners are passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from cityseg.bundle import ModelCard
from cityseg.export.calibration import FrameSet
from cityseg.label_maps import LabelMap

MAX_MIOU_DROP = 1.0
MAX_CLASS_DROP = 3.0
MIN_REFERENCE_MIOU = 0.95
MIN_PIXEL_AGREEMENT = 0.98


@dataclass
class GateReport:
    """The figures of one gate run (stored on the card, printed by the CLI)."""

    candidate: str
    mode: str
    """'ground-truth' or 'fp32-reference'."""
    frames: int
    frame_source: str
    pixel_agreement: float
    """Share of pixels where the candidate's class equals the fp32 model's."""
    reference_miou: float | None = None
    """Without ground truth: the candidate's mIoU with the fp32 masks as truth (0-1)."""
    fp32_miou: float | None = None
    """With ground truth: mIoU (0-1) of the fp32 model and of the candidate."""
    candidate_miou: float | None = None
    worst_class: str | None = None
    worst_class_drop: float | None = None
    """Points (0-100) the worst class's IoU lost against the fp32 model."""
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        """One line with the figures and the verdict."""
        if self.mode == "ground-truth":
            figures = (f"mIoU {100 * self.candidate_miou:.2f} vs fp32 {100 * self.fp32_miou:.2f} "
                       f"(drop {100 * (self.fp32_miou - self.candidate_miou):.2f}, allowed {MAX_MIOU_DROP}), "
                       f"worst class {self.worst_class} -{self.worst_class_drop:.2f} (allowed {MAX_CLASS_DROP})")
        else:
            figures = (f"mIoU vs fp32 masks {self.reference_miou:.2%} (required >= {MIN_REFERENCE_MIOU:.0%})")
        verdict = "ok" if self.passed else "FAILED: " + "; ".join(self.failures)
        return (f"gate {self.candidate} on {self.frames} {self.frame_source} frames ({self.mode}): {figures}, "
                f"pixel agreement {self.pixel_agreement:.2%} (required >= {MIN_PIXEL_AGREEMENT:.0%} "
                f"without ground truth) - {verdict}")


class IouCounter:
    """Per-class intersection and union counts over class indices (values >= n are not scored)."""

    def __init__(self, num_classes: int):
        self.n = num_classes
        self.matrix = np.zeros((num_classes, num_classes + 1), np.int64)

    def update(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        truth = truth.astype(np.int64).ravel()
        guess = np.minimum(predicted.astype(np.int64).ravel(), self.n)
        scored = truth < self.n
        self.matrix += np.bincount(truth[scored] * (self.n + 1) + guess[scored],
                                   minlength=self.n * (self.n + 1)).reshape(self.n, self.n + 1)

    def class_iou(self) -> np.ndarray:
        """IoU per class (NaN where the class is neither in the truth nor predicted)."""
        tp = np.diag(self.matrix[:, :self.n]).astype(float)
        union = self.matrix.sum(axis=1) + self.matrix[:, :self.n].sum(axis=0) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        iou = self.class_iou()
        return float(np.nanmean(iou)) if not np.all(np.isnan(iou)) else math.nan


def truth_indices(card: ModelCard, label_ids: np.ndarray, label_map: LabelMap | None = None) -> np.ndarray:
    """A labelIds map (with ``label_map``: the ids of its target set) -> class indices at the network
    size (nearest), unscored pixels 255."""
    indices = card.space.from_label_id[label_ids] if label_map is None else label_map.target.id_to_index()[label_ids]
    return cv2.resize(indices, (card.input_width, card.input_height), interpolation=cv2.INTER_NEAREST)


def scored_classes(card: ModelCard, label_map: LabelMap | None) -> tuple[int, list[str]]:
    """(how many classes the ground-truth figures score, their names): the model's, or the map's target's."""
    space = card.space if label_map is None else label_map.target
    return space.num_classes, list(space.names)


def mapped(ids: np.ndarray, card: ModelCard, label_map: LabelMap | None) -> np.ndarray:
    """Class indices of the model -> of the map's target set (unmapped -> 255); as they are without one."""
    if label_map is None:
        return ids
    target_ids = label_map.target_ids(card.space.index_to_id()[ids.astype(np.uint8)])
    return label_map.target.id_to_index()[target_ids]


def run_gate(card: ModelCard, run_fp32: Callable[[np.ndarray], np.ndarray],
             run_candidate: Callable[[np.ndarray], np.ndarray], frames: FrameSet, *, candidate: str,
             chunk: int = 1) -> GateReport:
    """Score ``run_candidate`` against ``run_fp32`` (both: float32 batch -> NxHxW class indices) on
    ``frames``; with ground truth (``frames.labels``) also against it."""
    n = card.num_classes
    scored, names = scored_classes(card, frames.label_map)
    against_fp32, fp32_truth, cand_truth = IouCounter(n), IouCounter(scored), IouCounter(scored)
    same = pixels = 0
    for start in range(0, len(frames.frames), chunk):
        batch = card.preprocess(frames.frames[start:start + chunk])
        reference, candidate_ids = run_fp32(batch), run_candidate(batch)
        same += int((reference == candidate_ids).sum())
        pixels += reference.size
        against_fp32.update(candidate_ids, reference)
        for offset, labels in enumerate((frames.labels or [])[start:start + chunk]):
            truth = truth_indices(card, labels, frames.label_map)
            fp32_truth.update(mapped(reference[offset], card, frames.label_map), truth)
            cand_truth.update(mapped(candidate_ids[offset], card, frames.label_map), truth)
    report = GateReport(candidate, "ground-truth" if frames.labels else "fp32-reference", len(frames.frames),
                        frames.source, pixel_agreement=same / pixels)
    if frames.labels:
        judge_with_truth(report, names, fp32_truth, cand_truth)
    else:
        report.reference_miou = against_fp32.miou()
        if not report.reference_miou >= MIN_REFERENCE_MIOU:
            report.failures.append(f"mIoU vs fp32 masks {report.reference_miou:.2%} < {MIN_REFERENCE_MIOU:.0%}")
        if report.pixel_agreement < MIN_PIXEL_AGREEMENT:
            report.failures.append(f"pixel agreement {report.pixel_agreement:.2%} < {MIN_PIXEL_AGREEMENT:.0%}")
    return report


def judge_with_truth(report: GateReport, names: list[str], fp32: IouCounter, candidate: IouCounter) -> None:
    """Fill the ground-truth figures of ``report`` and its failures."""
    report.fp32_miou, report.candidate_miou = fp32.miou(), candidate.miou()
    drops = 100 * (np.nan_to_num(fp32.class_iou()) - np.nan_to_num(candidate.class_iou()))
    worst = int(np.argmax(drops))
    report.worst_class, report.worst_class_drop = names[worst], float(drops[worst])
    miou_drop = 100 * (report.fp32_miou - report.candidate_miou)
    if miou_drop > MAX_MIOU_DROP:
        report.failures.append(f"mIoU drop {miou_drop:.2f} points > {MAX_MIOU_DROP}")
    if report.worst_class_drop > MAX_CLASS_DROP:
        report.failures.append(f"class {report.worst_class} dropped {report.worst_class_drop:.2f} points "
                               f"> {MAX_CLASS_DROP}")

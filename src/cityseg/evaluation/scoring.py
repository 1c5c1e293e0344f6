"""The official Cityscapes evaluation in numpy: a labelId confusion matrix and its IoU scores.

:class:`ConfusionMatrix` reproduces ``cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling``
exactly (a parity test runs both on the same files):

* the confusion matrix is 34 x 34 over labelIds (rows: ground truth, columns: prediction);
  ground truth or predictions outside 0-33 are refused, as the official script does;
* only the 19 classes with ``ignoreInEval == False`` are scored. For class ``c``:
  TP = M[c, c]; FN = the whole row of ``c`` minus TP (predicting an ignored label on a ``c``
  pixel is a miss); FP = column ``c`` over the rows of the *other scored* classes (predictions
  on pixels whose ground truth is ignored never count);
* IoU = TP / (TP + FP + FN); a class with TP + FP + FN = 0 (absent from the ground truth and
  never predicted on a scored pixel) is NaN and left out of the mean (mIoU);
* category IoU: the same with a category's scored labelIds merged (confusions inside a category
  are TP); categories without scored classes (void) are left out;
* pixel accuracy (the official script only has a disabled, inverted variant): correct pixels /
  pixels whose ground truth is a scored class.

:class:`LabelSetConfusion` scores a label set of one's own (a YAML's classes) the same way over
its class indices: ground truth through the set's ``label_map``, unmapped pixels left out, a
predicted id that is no class of the set a miss; there are no categories.

Only numpy, :mod:`cityseg.labels` and :mod:`cityseg.errors`: any layer may import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cityseg.errors import CitysegError
from cityseg.labels import CATEGORIES, LABELS, LabelSet

NUM_LABEL_IDS = max(label.id for label in LABELS) + 1
"""34: the confusion matrix covers labelIds 0..33, like the official script."""
EVAL_LABEL_IDS = np.array([label.id for label in LABELS if not label.ignoreInEval])
"""The 19 scored labelIds, in labelId order."""
EVAL_CLASS_NAMES = tuple(label.name for label in LABELS if not label.ignoreInEval)


class EvaluationError(CitysegError):
    """Predictions and ground truth cannot be scored together."""


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


@dataclass
class EvaluationResult:
    """Official Cityscapes scores; NaN marks a class/category absent from the evaluation."""

    miou: float
    class_iou: dict[str, float]
    category_iou: dict[str, float]
    pixel_accuracy: float
    num_images: int = 0
    num_pixels: int = 0
    """Pixels with a scored ground-truth class."""
    confusion: np.ndarray | None = field(default=None, repr=False, compare=False)
    """int64[34, 34] labelId confusion matrix (rows: ground truth); for a label set of one's own
    int64[N, N + 1] over class indices (last column: predictions that are no class of the set)."""
    label_set: str = "cityscapes"
    """Name of the label set scored: 'cityscapes' (the official 19 classes) or a YAML set's name."""

    @property
    def category_miou(self) -> float:
        """Mean of the non-NaN category IoUs (the official "Score Average" of categories)."""
        scores = [v for v in self.category_iou.values() if not math.isnan(v)]
        return float(np.mean(scores)) if scores else math.nan

    def to_json(self) -> dict:
        """JSON-ready dict: miou, class_iou (by class name), category_iou, pixel_accuracy (NaN -> null)."""
        return {
            "miou": _nan_to_none(self.miou),
            "class_iou": {k: _nan_to_none(v) for k, v in self.class_iou.items()},
            "category_iou": {k: _nan_to_none(v) for k, v in self.category_iou.items()},
            "pixel_accuracy": _nan_to_none(self.pixel_accuracy),
            "num_images": self.num_images,
            "num_pixels": self.num_pixels,
            "label_set": self.label_set,
        }


def _iou(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = (tp + fp + fn).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, tp / denominator, np.nan)


def _nanmean(values) -> float:
    values = np.asarray(list(values), dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def _checked_pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    """``pred``, ``gt`` as arrays of one shape and an integer type; EvaluationError otherwise."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise EvaluationError(f"prediction shape {pred.shape} differs from ground truth shape "
                              f"{gt.shape}; predictions must be at the ground truth's resolution")
    for what, array in (("prediction", pred), ("ground truth", gt)):
        if not np.issubdtype(array.dtype, np.integer):
            raise EvaluationError(f"{what} must hold integer label ids, got {array.dtype}")
    return pred, gt


class ConfusionMatrix:
    """Accumulates labelId predictions against labelId ground truth; scores them officially."""

    def __init__(self) -> None:
        self.matrix = np.zeros((NUM_LABEL_IDS, NUM_LABEL_IDS), dtype=np.int64)
        self.num_images = 0

    def update(self, pred_label_ids: np.ndarray, gt_label_ids: np.ndarray) -> None:
        """Add one image (or a batch): equal-shape integer arrays of Cityscapes labelIds."""
        pred, gt = _checked_pair(pred_label_ids, gt_label_ids)
        for what, array in (("prediction", pred), ("ground truth", gt)):
            if array.size and (array.min() < 0 or array.max() >= NUM_LABEL_IDS):
                bad = np.unique(array[(array < 0) | (array >= NUM_LABEL_IDS)])[:5].tolist()
                raise EvaluationError(f"{what} holds values {bad} that are not Cityscapes labelIds "
                                      f"(0-{NUM_LABEL_IDS - 1}); use *_labelIds.png, not trainIds "
                                      "or colour images")
        combined = gt.astype(np.int64).ravel() * NUM_LABEL_IDS + pred.astype(np.int64).ravel()
        self.matrix += np.bincount(combined, minlength=NUM_LABEL_IDS ** 2).reshape(
            NUM_LABEL_IDS, NUM_LABEL_IDS)
        self.num_images += 1 if gt.ndim <= 2 else gt.shape[0]

    def class_iou(self) -> np.ndarray:
        """IoU of each of the 19 scored classes (NaN: absent), in :data:`EVAL_LABEL_IDS` order."""
        scored = self.matrix[np.ix_(EVAL_LABEL_IDS, EVAL_LABEL_IDS)]
        tp = np.diag(scored)
        fn = self.matrix[EVAL_LABEL_IDS].sum(axis=1) - tp
        fp = scored.sum(axis=0) - tp
        return _iou(tp, fp, fn)

    def category_iou(self) -> dict[str, float]:
        """IoU of each category that has scored classes (void has none), in category order."""
        scores = {}
        for category in CATEGORIES:
            ids = [l.id for l in LABELS if l.category == category and not l.ignoreInEval]
            if not ids:
                continue
            others = [i for i in EVAL_LABEL_IDS if i not in ids]
            tp = self.matrix[np.ix_(ids, ids)].sum()
            fn = self.matrix[ids].sum() - tp
            fp = self.matrix[np.ix_(others, ids)].sum()
            scores[category] = float(_iou(np.array(tp), np.array(fp), np.array(fn)))
        return scores

    def result(self) -> EvaluationResult:
        """The official scores of everything added so far."""
        class_iou = dict(zip(EVAL_CLASS_NAMES, (float(v) for v in self.class_iou())))
        scored_rows = self.matrix[EVAL_LABEL_IDS]
        num_pixels = int(scored_rows.sum())
        correct = int(self.matrix[EVAL_LABEL_IDS, EVAL_LABEL_IDS].sum())
        return EvaluationResult(
            miou=_nanmean(class_iou.values()),
            class_iou=class_iou,
            category_iou=self.category_iou(),
            pixel_accuracy=correct / num_pixels if num_pixels else math.nan,
            num_images=self.num_images,
            num_pixels=num_pixels,
            confusion=self.matrix.copy(),
        )


class LabelSetConfusion:
    """Accumulates masks of a label set of one's own; scores IoU per class of the set.

    :meth:`update` takes predictions in the set's mask ids and ground truth in the dataset's label
    ids, mapped through the set's ``label_map`` (``from_label_id``); ground-truth pixels it leaves
    unmapped (or sends to the ignore id) are not scored. A predicted id that is no class of the set
    counts as a miss of the true class. IoU, mIoU (NaN classes left out) and pixel accuracy are
    defined as for :class:`ConfusionMatrix`.
    """

    def __init__(self, space: LabelSet) -> None:
        self.space = space
        n = space.num_classes
        self.matrix = np.zeros((n, n + 1), dtype=np.int64)
        self.num_images = 0

    def update(self, pred_ids: np.ndarray, gt_label_ids: np.ndarray) -> None:
        """Add one image (or a batch): predicted mask ids and ground-truth dataset label ids."""
        pred, gt = _checked_pair(pred_ids, gt_label_ids)
        for what, array in (("prediction", pred), ("ground truth", gt)):
            if array.size and (array.min() < 0 or array.max() > 255):
                raise EvaluationError(f"{what} holds values outside 0-255; label PNGs of a label set "
                                      "are 8-bit single-channel images")
        n = self.space.num_classes
        truth = self.space.from_label_id[gt.astype(np.intp)].ravel().astype(np.int64)
        guess = self.space.id_to_index()[pred.astype(np.intp)].ravel().astype(np.int64)
        scored = truth < n
        combined = truth[scored] * (n + 1) + np.minimum(guess[scored], n)
        self.matrix += np.bincount(combined, minlength=n * (n + 1)).reshape(n, n + 1)
        self.num_images += 1 if gt.ndim <= 2 else gt.shape[0]

    def class_iou(self) -> np.ndarray:
        """IoU of each class of the set (NaN: absent), in class-index order."""
        n = self.space.num_classes
        tp = np.diag(self.matrix[:, :n])
        return _iou(tp, self.matrix[:, :n].sum(axis=0) - tp, self.matrix.sum(axis=1) - tp)

    def result(self) -> EvaluationResult:
        """The scores of everything added so far, per class of the set (no categories)."""
        class_iou = dict(zip(self.space.names, (float(v) for v in self.class_iou())))
        num_pixels = int(self.matrix.sum())
        correct = int(np.trace(self.matrix[:, :self.space.num_classes]))
        return EvaluationResult(
            miou=_nanmean(class_iou.values()), class_iou=class_iou, category_iou={},
            pixel_accuracy=correct / num_pixels if num_pixels else math.nan,
            num_images=self.num_images, num_pixels=num_pixels, confusion=self.matrix.copy(),
            label_set=self.space.name)


def confusion_for(space: LabelSet | None) -> ConfusionMatrix | LabelSetConfusion:
    """The matrix that scores ``space``: the official one for the Cityscapes sets (and None)."""
    return ConfusionMatrix() if space is None or space.is_cityscapes else LabelSetConfusion(space)

"""Keras stateful metrics over a running confusion matrix: pixel accuracy, mean IoU, mean Dice.

They score the network's label set (trainIds or labelIds) at training resolution, leaving out
pixels labelled ``ignore_index``. A class whose IoU/Dice denominator is 0 (absent from both the
labels and the predictions seen so far) is left out of the mean. The official Cityscapes score
is :class:`cityseg.evaluation.scoring.ConfusionMatrix` (labelIds, full resolution).
"""

from __future__ import annotations

import keras
from keras import ops


class ConfusionMetric(keras.metrics.Metric):
    """Accumulates a float32 ``num_classes`` x ``num_classes`` confusion matrix (rows: truth)."""

    def __init__(self, num_classes: int, ignore_index: int | None = None, name: str | None = None,
                 dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.confusion = self.add_variable(shape=(self.num_classes, self.num_classes),
                                           initializer="zeros", dtype="float32", name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """``y_true`` int (B, H, W[, 1]); ``y_pred`` scores (B, H, W, C), argmax taken here."""
        classes = self.num_classes
        labels = ops.cast(y_true, "int32")
        if len(labels.shape) == len(y_pred.shape):
            labels = ops.squeeze(labels, axis=-1)
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        valid = ops.logical_and(ops.greater_equal(labels, 0), ops.less(labels, classes))
        if self.ignore_index is not None:
            valid = ops.logical_and(valid, ops.not_equal(labels, self.ignore_index))
        weight = ops.cast(valid, "float32")
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, "float32")
            while len(sample_weight.shape) < len(weight.shape):
                sample_weight = ops.expand_dims(sample_weight, -1)
            weight = weight * sample_weight
        index = ops.where(valid, labels * classes + predicted, 0)
        counts = ops.bincount(ops.reshape(index, (-1,)), weights=ops.reshape(weight, (-1,)),
                              minlength=classes * classes)
        self.confusion.assign_add(ops.reshape(ops.cast(counts, "float32"), (classes, classes)))

    def reset_state(self):
        self.confusion.assign(ops.zeros((self.num_classes, self.num_classes), dtype="float32"))

    def _counts(self):
        """(true positives, false positives, false negatives) per class."""
        tp = ops.diagonal(self.confusion)
        return tp, ops.sum(self.confusion, axis=0) - tp, ops.sum(self.confusion, axis=1) - tp

    def _mean_over_seen(self, numerator, denominator):
        seen = ops.cast(ops.greater(denominator, 0), "float32")
        scores = ops.divide_no_nan(numerator, denominator)
        return ops.divide_no_nan(ops.sum(scores * seen), ops.sum(seen))

    def get_config(self) -> dict:
        return {"num_classes": self.num_classes, "ignore_index": self.ignore_index,
                "name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="cityseg")
class PixelAccuracy(ConfusionMetric):
    """Correct pixels / valid pixels."""

    def __init__(self, num_classes: int, ignore_index: int | None = None,
                 name: str = "pixel_accuracy", dtype=None):
        super().__init__(num_classes, ignore_index, name=name, dtype=dtype)

    def result(self):
        return ops.divide_no_nan(ops.trace(self.confusion), ops.sum(self.confusion))


@keras.saving.register_keras_serializable(package="cityseg")
class MeanIoU(ConfusionMetric):
    """Mean over classes of TP / (TP + FP + FN)."""

    def __init__(self, num_classes: int, ignore_index: int | None = None, name: str = "miou",
                 dtype=None):
        super().__init__(num_classes, ignore_index, name=name, dtype=dtype)

    def result(self):
        tp, fp, fn = self._counts()
        return self._mean_over_seen(tp, tp + fp + fn)


@keras.saving.register_keras_serializable(package="cityseg")
class MeanDice(ConfusionMetric):
    """Mean over classes of 2 TP / (2 TP + FP + FN) (hard Dice, i.e. F1, of the argmax)."""

    def __init__(self, num_classes: int, ignore_index: int | None = None, name: str = "dice",
                 dtype=None):
        super().__init__(num_classes, ignore_index, name=name, dtype=dtype)

    def result(self):
        tp, fp, fn = self._counts()
        return self._mean_over_seen(2.0 * tp, 2.0 * tp + fp + fn)

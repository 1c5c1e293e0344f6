"""Keras metrics of a training run: pixel accuracy, mean IoU and mean Dice at training resolution.

The official Cityscapes scores (labelIds, full resolution) are in :mod:`cityseg.evaluation.scoring`.
This module imports without TensorFlow; the Keras metrics load it on first use.
"""

from __future__ import annotations

KERAS_METRICS = ("PixelAccuracy", "MeanIoU", "MeanDice")


def keras_metrics(num_classes: int, ignore_index: int | None) -> list:
    """[PixelAccuracy, MeanIoU, MeanDice] Keras metrics (names pixel_accuracy, miou, dice)."""
    from cityseg.training import stateful_metrics

    return [stateful_metrics.PixelAccuracy(num_classes, ignore_index),
            stateful_metrics.MeanIoU(num_classes, ignore_index),
            stateful_metrics.MeanDice(num_classes, ignore_index)]


def __getattr__(name: str):
    """``from cityseg.training.metrics import MeanIoU`` loads the Keras metrics on demand."""
    if name in KERAS_METRICS:
        from cityseg.training import stateful_metrics

        return getattr(stateful_metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

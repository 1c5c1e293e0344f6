"""Segmentation losses on probabilities: (class-weighted) cross-entropy, soft Dice, CE + Dice.

All losses take integer labels ``y_true`` (B, H, W) (or (B, H, W, 1)) and probabilities
``y_pred`` (B, H, W, C), compute in float32 (safe under mixed precision) with ``keras.ops``, and
leave out pixels labelled ``ignore_index`` entirely:

* **cross-entropy** - the mean of ``-log p[y]`` over valid pixels (``p`` clipped to [1e-7, 1]);
  with class weights ``w`` it is the weighted mean ``sum(w[y] * -log p[y]) / sum(w[y])``
  (PyTorch/mmseg convention, so the loss scale does not depend on the weights).
* **soft Dice** - per class ``c`` over all valid pixels of the batch,
  ``D_c = (2 * sum(y_c * p_c) + s) / (sum(y_c) + sum(p_c) + s)`` with smoothing ``s``; the loss is
  ``1 - mean_c D_c`` over *all* classes. A class absent from the batch's labels scores
  ``s / (sum(p_c) + s)``: 1 when it is not predicted either, falling towards 0 the more
  probability mass is put on it, so absent classes reward not predicting them and never give 0/0.
  (With ``s = 0`` a class absent from both scores 1, the limit of the smoothed form.)
* **CE + Dice** - ``ce + dice_weight * dice``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from cityseg.errors import CitysegError

STUDY_RANK_WEIGHTS = (6.0, 5.0, 5.0, 4.0, 4.0, 3.0, 3.0) + (2.0,) * 8
"""The study's weights for its 15 rarest classes, rarest first; every other class gets 1."""
WEIGHT_METHODS = ("study_rank", "inverse", "median", "enet")
ENET_C = 1.02
"""ENet's class-weighting constant (Paszke et al. 2016): ``1 / ln(c + p_c)`` caps a weight at ~50."""
PROBABILITY_FLOOR = 1e-7


class LossError(CitysegError):
    """A loss cannot be built from the configuration or the training data."""


def class_weights(counts: np.ndarray, method: str) -> np.ndarray:
    """Per-class loss weights (float32[C]) from training-split pixel counts (int[C]).

    ``study_rank``: the study's rank weights - classes sorted by pixel count, the rarest gets 6,
    then 5, 5, 4, 4, 3, 3, then 2 for the next 8, all others 1 (ties keep class order).
    ``inverse``: inverse frequency, ``N / (K * n_c)`` (N pixels, K classes present; the
    pixel-weighted mean weight is 1). ``median``: median frequency balancing (Eigen & Fergus),
    ``median(f) / f_c`` with ``f_c = n_c / N`` over the classes present. ``enet``: ENet's
    ``1 / ln(1.02 + f_c)`` (also ESPNet's and CGNet's CamVid weighting), a softer balance than
    ``median`` (on CamVid train the rarest class gets 13x the commonest instead of 108x).
    Classes with no training pixel never occur in training labels; they are not ranked and get 1.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.size < 2 or not np.issubdtype(counts.dtype, np.number):
        raise ValueError(f"counts must be a 1-D array of per-class pixel counts, got shape {counts.shape}")
    if (counts < 0).any():
        raise ValueError("pixel counts cannot be negative")
    if method not in WEIGHT_METHODS:
        raise LossError(f"unknown class weighting {method!r}; use one of {', '.join(WEIGHT_METHODS)} "
                        "(loss.class_weights in the config)")
    present = counts > 0
    if not present.any():
        raise LossError("the training split has no labelled pixel, so class weights cannot be "
                        "computed; check the training labels (all ignore?) or use loss.name: ce")
    weights = np.ones(counts.size, dtype=np.float64)
    counts = counts.astype(np.float64)
    if method == "study_rank":
        present_ids = np.flatnonzero(present)
        rarest_first = present_ids[np.argsort(counts[present_ids], kind="stable")]
        ranked = rarest_first[:len(STUDY_RANK_WEIGHTS)]
        weights[ranked] = STUDY_RANK_WEIGHTS[:ranked.size]
    elif method == "inverse":
        weights[present] = counts[present].sum() / (present.sum() * counts[present])
    elif method == "enet":
        weights[present] = 1.0 / np.log(ENET_C + counts[present] / counts[present].sum())
    else:
        frequency = counts[present] / counts[present].sum()
        weights[present] = np.median(frequency) / frequency
    return weights.astype(np.float32)


def _labels_and_mask(y_true, y_pred, ignore_index: int | None):
    """(int32 labels safe to index with, float32 valid-pixel mask, float32 probabilities)."""
    probs = ops.cast(y_pred, "float32")
    labels = ops.cast(y_true, "int32")
    if len(labels.shape) == len(probs.shape):
        labels = ops.squeeze(labels, axis=-1)
    if ignore_index is None:
        valid = ops.ones_like(labels, dtype="float32")
        return labels, valid, probs
    valid_bool = ops.not_equal(labels, ignore_index)
    return ops.where(valid_bool, labels, 0), ops.cast(valid_bool, "float32"), probs


def masked_cross_entropy(y_true, y_pred, ignore_index: int | None = None, weights=None):
    """Mean (or class-weighted mean) of ``-log p[y]`` over non-ignored pixels; 0 if there are none."""
    labels, valid, probs = _labels_and_mask(y_true, y_pred, ignore_index)
    # A one-hot product, not take_along_axis: the gather's gradient is a scatter (UnsortedSegmentSum)
    # that cost 3 % of the CamVid recipe's step on CPU; the product's gradient is a multiply.
    p_true = ops.sum(ops.one_hot(labels, probs.shape[-1], dtype="float32") * probs, axis=-1)
    nll = -ops.log(ops.clip(p_true, PROBABILITY_FLOOR, 1.0))
    pixel_weight = valid
    if weights is not None:
        pixel_weight = pixel_weight * ops.take(ops.convert_to_tensor(weights, "float32"), labels)
    return ops.divide_no_nan(ops.sum(pixel_weight * nll), ops.sum(pixel_weight))


def soft_dice_loss(y_true, y_pred, num_classes: int, ignore_index: int | None = None,
                   smooth: float = 1.0):
    """``1 - mean_c D_c`` over all ``num_classes`` (see the module docstring for ``D_c``)."""
    labels, valid, probs = _labels_and_mask(y_true, y_pred, ignore_index)
    mask = ops.expand_dims(valid, -1)
    truth = ops.one_hot(labels, num_classes, dtype="float32") * mask
    probs = probs * mask
    axes = tuple(range(len(probs.shape) - 1))
    intersection = ops.sum(truth * probs, axis=axes)
    denominator = ops.sum(truth, axis=axes) + ops.sum(probs, axis=axes) + smooth
    dice = ops.where(denominator > 0, (2.0 * intersection + smooth) / ops.maximum(denominator, 1e-12), 1.0)
    return 1.0 - ops.mean(dice)


@keras.saving.register_keras_serializable(package="cityseg")
class SegmentationLoss(keras.losses.Loss):
    """``ce_weight * CE + dice_weight * soft Dice`` with ignore handling (module docstring)."""

    def __init__(self, num_classes: int, ignore_index: int | None = None, ce_weight: float = 1.0,
                 dice_weight: float = 0.0, class_weights=None, dice_smooth: float = 1.0,
                 name: str = "segmentation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.ce_weight = float(ce_weight)
        self.dice_weight = float(dice_weight)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.dice_smooth = float(dice_smooth)

    def call(self, y_true, y_pred):
        total = 0.0
        if self.ce_weight:
            total += self.ce_weight * masked_cross_entropy(y_true, y_pred, self.ignore_index,
                                                           self.class_weights)
        if self.dice_weight:
            total += self.dice_weight * soft_dice_loss(y_true, y_pred, self.num_classes,
                                                       self.ignore_index, self.dice_smooth)
        # One value, but not a scalar: Keras divides a non-scalar loss by the number of replicas
        # (so that summing the replicas' gradients averages them) and leaves a scalar as is,
        # which would make N replicas take N-times-larger steps.
        return ops.reshape(total, (1,))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "ignore_index": self.ignore_index,
                       "ce_weight": self.ce_weight, "dice_weight": self.dice_weight,
                       "class_weights": self.class_weights, "dice_smooth": self.dice_smooth})
        return config


def make_loss(cfg, num_classes: int, ignore_index: int | None, weights: np.ndarray | None = None):
    """The Keras loss of a LossConfig: 'ce', 'weighted_ce' (needs ``weights``), 'dice', 'ce_dice'.

    ``weights`` (per class) weight the cross-entropy term whenever given; 'dice' refuses them.
    """
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float32)
        if weights.shape != (num_classes,):
            raise LossError(f"class weights have shape {weights.shape}, expected ({num_classes},)")
    if cfg.name == "weighted_ce" and weights is None:
        raise LossError("loss.name: weighted_ce needs class weights computed from the training split")
    if cfg.name == "dice" and weights is not None:
        raise LossError("loss.name: dice takes no class weights; use weighted_ce or ce_dice")
    if cfg.dice_smooth < 0 or cfg.dice_weight < 0:
        raise LossError("loss.dice_smooth and loss.dice_weight must be >= 0")
    terms = {"ce": (1.0, 0.0), "weighted_ce": (1.0, 0.0), "dice": (0.0, 1.0),
             "ce_dice": (1.0, cfg.dice_weight)}
    if cfg.name not in terms:
        raise LossError(f"unknown loss {cfg.name!r}; use one of {', '.join(terms)}")
    ce_weight, dice_weight = terms[cfg.name]
    return SegmentationLoss(num_classes, ignore_index, ce_weight, dice_weight, weights,
                            cfg.dice_smooth, name=cfg.name)

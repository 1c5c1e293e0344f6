"""Losses on small hand-computed cases, class weights, and use inside Keras compile/fit/save."""

import math

import keras
import numpy as np
import pytest

from cityseg.training.config import LossConfig
from cityseg.training.losses import (
    LossError,
    SegmentationLoss,
    class_weights,
    make_loss,
    masked_cross_entropy,
    soft_dice_loss,
)

IGNORE = 255
# one image of 1x4 pixels, 3 classes; the last pixel is ignored (its probabilities would be costly)
LABELS = np.array([[[0, 0, 1, IGNORE]]])
PROBS = np.array([[[[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.0, 0.0, 1.0]]]], np.float32)


def value(x):
    return float(keras.ops.convert_to_numpy(x))


def test_cross_entropy_is_the_mean_over_valid_pixels():
    expected = -(math.log(0.8) + math.log(0.6) + math.log(0.7)) / 3
    assert value(masked_cross_entropy(LABELS, PROBS, IGNORE)) == pytest.approx(expected, rel=1e-6)
    # labels with a trailing channel axis give the same
    assert value(masked_cross_entropy(LABELS[..., None], PROBS, IGNORE)) == pytest.approx(expected, rel=1e-6)


def test_weighted_cross_entropy_is_the_weighted_mean():
    weights = np.array([2.0, 0.5, 9.0], np.float32)  # class 2 never labelled: its weight is unused
    expected = -(2 * math.log(0.8) + 2 * math.log(0.6) + 0.5 * math.log(0.7)) / (2 + 2 + 0.5)
    got = value(masked_cross_entropy(LABELS, PROBS, IGNORE, weights))
    assert got == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_without_ignore_counts_every_pixel_and_clips_zero_probabilities():
    labels = np.array([[[0, 2]]])
    probs = np.array([[[[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]]], np.float32)
    expected = (-math.log(0.5) - math.log(1e-7)) / 2
    assert value(masked_cross_entropy(labels, probs, None)) == pytest.approx(expected, rel=1e-5)


def test_all_pixels_ignored_gives_zero_not_nan():
    labels = np.full((1, 1, 4), IGNORE)
    assert value(masked_cross_entropy(labels, PROBS, IGNORE)) == 0.0


def test_soft_dice_by_hand_with_an_absent_class():
    # valid pixels: labels 0, 0, 1; class 2 is absent from the labels
    d0 = (2 * (0.8 + 0.6) + 1) / (2 + (0.8 + 0.6 + 0.2) + 1)
    d1 = (2 * 0.7 + 1) / (1 + (0.1 + 0.3 + 0.7) + 1)
    d2 = (0 + 1) / (0 + (0.1 + 0.1 + 0.1) + 1)  # absent: penalised by the mass predicted on it
    expected = 1 - (d0 + d1 + d2) / 3
    got = value(soft_dice_loss(LABELS, PROBS, 3, IGNORE, smooth=1.0))
    assert got == pytest.approx(expected, rel=1e-6)


def test_soft_dice_perfect_prediction_and_absent_from_both_score_one():
    labels = np.array([[[0, 1, 1]]])
    probs = np.eye(3, dtype=np.float32)[labels]  # one-hot, class 2 neither labelled nor predicted
    for smooth in (1.0, 0.0):
        assert value(soft_dice_loss(labels, probs, 3, None, smooth=smooth)) == pytest.approx(0.0, abs=1e-7)


def test_make_loss_builds_each_configured_loss():
    ce = -(math.log(0.8) + math.log(0.6) + math.log(0.7)) / 3
    dice = value(soft_dice_loss(LABELS, PROBS, 3, IGNORE, smooth=1.0))
    cases = {"ce": ce, "dice": dice, "ce_dice": ce + 0.5 * dice}
    for name, expected in cases.items():
        loss = make_loss(LossConfig(name=name, dice_weight=0.5), 3, IGNORE)
        assert value(loss(LABELS, PROBS)) == pytest.approx(expected, rel=1e-6), name
    weights = np.array([1.0, 3.0, 1.0], np.float32)
    weighted = make_loss(LossConfig(name="weighted_ce"), 3, IGNORE, weights)
    expected = -(math.log(0.8) + math.log(0.6) + 3 * math.log(0.7)) / 5
    assert value(weighted(LABELS, PROBS)) == pytest.approx(expected, rel=1e-6)


def test_make_loss_refuses_inconsistent_weights():
    with pytest.raises(LossError, match="weighted_ce needs class weights"):
        make_loss(LossConfig(name="weighted_ce"), 3, IGNORE)
    with pytest.raises(LossError, match="dice takes no class weights"):
        make_loss(LossConfig(name="dice"), 3, IGNORE, np.ones(3))
    with pytest.raises(LossError, match=r"shape \(2,\), expected \(3,\)"):
        make_loss(LossConfig(name="weighted_ce"), 3, IGNORE, np.ones(2))


def test_float16_probabilities_give_a_float32_loss():
    loss = make_loss(LossConfig(name="ce_dice"), 3, IGNORE)
    full = value(loss(LABELS, PROBS))
    half = loss(LABELS, PROBS.astype(np.float16))
    assert keras.ops.convert_to_numpy(half).dtype == np.float32
    assert value(half) == pytest.approx(full, rel=1e-3)


def test_study_rank_weights():
    # 18 classes with distinct counts (class i has (i+1)*10 pixels) except class 5, never seen
    counts = np.array([(i + 1) * 10 for i in range(18)], np.int64)
    counts[5] = 0
    weights = class_weights(counts, "study_rank")
    rarest_first = [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    expected = np.ones(18)
    expected[rarest_first] = [6, 5, 5, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2]
    np.testing.assert_array_equal(weights, expected)  # unseen class 5 and the 2 commonest: 1


def test_inverse_and_median_frequency_weights():
    np.testing.assert_allclose(class_weights(np.array([1, 3, 0]), "inverse"), [2.0, 4 / 6, 1.0])
    # frequencies .1, .2, .7: median .2
    np.testing.assert_allclose(class_weights(np.array([1, 2, 7]), "median"), [2.0, 1.0, 0.2 / 0.7],
                               rtol=1e-6)
    with pytest.raises(LossError, match="no labelled pixel"):
        class_weights(np.zeros(3, np.int64), "median")
    with pytest.raises(LossError, match="unknown class weighting"):
        class_weights(np.ones(3), "sqrt")


def test_enet_weights_are_softer_than_median_frequency():
    counts = np.array([1, 2, 7, 0])  # frequencies .1, .2, .7 and an unseen class
    weights = class_weights(counts, "enet")
    np.testing.assert_allclose(weights[:3], 1 / np.log(1.02 + np.array([0.1, 0.2, 0.7])), rtol=1e-6)
    assert weights[3] == 1.0  # never in the training labels: not weighted
    median = class_weights(counts, "median")
    assert weights[0] / weights[2] < median[0] / median[2]  # rare vs common: a softer ratio
    assert class_weights(np.array([1, 10**6]), "enet")[0] <= 1 / np.log(1.02)  # capped at ~50


def test_loss_trains_saves_and_loads_in_a_compiled_model(tmp_path):
    from cityseg.training.metrics import keras_metrics

    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Conv2D(3, 1, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    loss = make_loss(LossConfig(name="ce_dice"), 3, IGNORE)
    model.compile(optimizer="adam", loss=loss, metrics=keras_metrics(3, IGNORE))
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(4, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=(4, 8, 8))
    y[:, :2] = IGNORE
    history = model.fit(x, y, epochs=2, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert {"pixel_accuracy", "miou", "dice"} <= set(history.history)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.loss, SegmentationLoss) and loaded.loss.dice_weight == 1.0
    expected = model.evaluate(x, y, verbose=0, return_dict=True)
    got = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert got["miou"] == pytest.approx(expected["miou"], rel=1e-5)

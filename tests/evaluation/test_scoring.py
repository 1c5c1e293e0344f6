"""The official-Cityscapes numpy ConfusionMatrix, by hand."""

import json
import math

import numpy as np
import pytest

from cityseg.evaluation.scoring import EVAL_CLASS_NAMES, ConfusionMatrix, EvaluationError

ROAD, SIDEWALK, SKY, CAR, UNLABELED, EGO_VEHICLE = 7, 8, 23, 26, 0, 1


def hand_case():
    gt = np.array([[ROAD, ROAD, ROAD, SIDEWALK, CAR, CAR, UNLABELED, UNLABELED]], np.uint8)
    pred = np.array([[ROAD, ROAD, EGO_VEHICLE, SKY, CAR, ROAD, CAR, SKY]], np.uint8)
    return pred, gt


def test_official_class_iou_by_hand():
    cm = ConfusionMatrix()
    cm.update(*hand_case())
    result = cm.result()
    assert list(result.class_iou) == list(EVAL_CLASS_NAMES) and len(EVAL_CLASS_NAMES) == 19
    # road: TP 2, FN 1 (predicted as the non-scored 'ego vehicle'), FP 1 (the car pixel)
    assert result.class_iou["road"] == pytest.approx(2 / 4)
    assert result.class_iou["sidewalk"] == 0.0
    # car: TP 1, FN 1; predicting car on an 'unlabeled' pixel is not a false positive
    assert result.class_iou["car"] == pytest.approx(1 / 2)
    # sky: absent from the ground truth but predicted on a sidewalk pixel -> 0, not NaN
    assert result.class_iou["sky"] == 0.0
    assert math.isnan(result.class_iou["person"])  # absent from both: NaN, out of the mean
    assert result.miou == pytest.approx((0.5 + 0 + 0.5 + 0) / 4)
    assert result.pixel_accuracy == pytest.approx(3 / 6)  # 6 pixels with a scored ground truth
    assert result.num_pixels == 6 and result.num_images == 1


def test_official_category_iou_by_hand():
    cm = ConfusionMatrix()
    cm.update(*hand_case())
    categories = cm.result().category_iou
    assert "void" not in categories
    assert categories["flat"] == pytest.approx(2 / 5)  # TP 2, FN 2, FP 1 (car predicted road)
    assert categories["vehicle"] == pytest.approx(1 / 2)
    assert categories["sky"] == 0.0
    assert math.isnan(categories["human"])


def test_results_accumulate_and_serialise_nan_as_null():
    cm = ConfusionMatrix()
    pred, gt = hand_case()
    cm.update(pred, gt)
    cm.update(np.stack([pred, pred]), np.stack([gt, gt]))  # a batch of two more images
    result = cm.result()
    assert result.num_images == 3 and result.num_pixels == 18
    assert result.class_iou["road"] == pytest.approx(6 / 12)
    data = json.loads(json.dumps(result.to_json()))
    assert data["class_iou"]["person"] is None and data["miou"] == pytest.approx(0.25)
    assert set(data) >= {"miou", "class_iou", "category_iou", "pixel_accuracy"}


def test_invalid_inputs_are_refused_with_the_reason():
    cm = ConfusionMatrix()
    with pytest.raises(EvaluationError, match="shape"):
        cm.update(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8))
    with pytest.raises(EvaluationError, match=r"prediction holds values \[255\].*labelIds"):
        cm.update(np.full((2, 2), 255, np.uint8), np.zeros((2, 2), np.uint8))
    with pytest.raises(EvaluationError, match="integer"):
        cm.update(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint8))

"""Keras confusion-matrix metrics, by hand."""

import numpy as np
import pytest

from cityseg.training.metrics import keras_metrics

IGNORE = 255


def one_hot_scores(predicted, num_classes):
    return np.eye(num_classes, dtype=np.float32)[np.asarray(predicted)]


def test_keras_metrics_accumulate_over_batches_and_skip_ignored_and_unseen_classes():
    metrics = keras_metrics(4, IGNORE)  # class 3 is neither labelled nor predicted
    assert [m.name for m in metrics] == ["pixel_accuracy", "miou", "dice"]
    batches = [([[0, 0, 1, IGNORE]], [[0, 1, 1, 2]]),   # the ignored pixel's prediction is dropped
               ([[2, 2, 1, 0]], [[2, 0, 1, 0]])]
    for labels, predicted in batches:
        for metric in metrics:
            metric.update_state(np.array(labels)[None], one_hot_scores(predicted, 4)[None])
    # confusion rows (truth) x cols (prediction): [[2,1,0],[0,2,0],[1,0,1]]
    accuracy, miou, dice = (float(m.result()) for m in metrics)
    assert accuracy == pytest.approx(5 / 7)
    assert miou == pytest.approx((2 / 4 + 2 / 3 + 1 / 2) / 3)
    assert dice == pytest.approx((4 / 6 + 4 / 5 + 2 / 3) / 3)
    for metric in metrics:
        metric.reset_state()
        assert float(metric.result()) == 0.0


def test_keras_metrics_without_ignore_count_every_label():
    accuracy = keras_metrics(3, None)[0]
    accuracy.update_state(np.array([[[0, 1, 2, 2]]]), one_hot_scores([[[0, 1, 2, 0]]], 3))
    assert float(accuracy.result()) == pytest.approx(3 / 4)

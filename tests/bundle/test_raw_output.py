"""cityseg.bundle.raw_output: every output layout, kind and stride read as class scores at the input size;
Segmentation's confidence (lazy, at the mask's resolution, carried by resized views)."""

import numpy as np
import pytest

from cityseg.bundle.raw_output import OutputError, standardize, standardize_confidence, top_probability
from cityseg.inference import ConfidenceUnavailable, Segmentation
from cityseg.labels import class_space

rng = np.random.default_rng(0)


def test_full_size_nhwc_scores_pass_through_without_a_copy():
    scores = rng.random((2, 8, 16, 5), dtype=np.float32)
    out, kind = standardize(scores, "probabilities", "NHWC", (8, 16))
    assert out is scores and kind == "probabilities"


def test_nchw_scores_move_the_class_axis_last():
    scores = rng.random((1, 5, 8, 16), dtype=np.float32)
    out, _ = standardize(scores, "logits", "NCHW", (8, 16))
    assert out.shape == (1, 8, 16, 5) and np.array_equal(out[0, 3, 4], scores[0, :, 3, 4])


def test_strided_scores_are_upsampled_bilinearly_with_half_pixel_centres():
    low = np.zeros((1, 2, 1, 2), np.float32)
    low[0, 1, 0] = [0.0, 1.0]  # class 1 ramps from 0 (left) to 1 (right)
    out, _ = standardize(low, "logits", "NCHW", (2, 8))
    # half-pixel: output x maps to (x + 0.5) / 4 - 0.5, clamped -> 0, 0, .125, .375, .625, .875, 1, 1
    assert np.allclose(out[0, 0, :, 1], [0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1])


def test_sigmoid_and_single_logit_become_two_classes():
    p = np.array([0.2, 0.9], np.float32).reshape(1, 1, 1, 2)
    out, kind = standardize(p, "sigmoid", "NCHW", (1, 2))
    assert kind == "probabilities" and np.allclose(out[0, 0], [[0.8, 0.2], [0.1, 0.9]])
    out, kind = standardize(np.array([-1.0, 2.0], np.float32).reshape(1, 1, 2, 1), "logits", "NHWC", (1, 2))
    assert kind == "logits" and np.allclose(out[0, 0], [[0, -1], [0, 2]])
    assert list(top_probability(out[0], kind)[0]) == [round(255 / (1 + np.exp(-1))), round(255 / (1 + np.exp(-2)))]


def test_class_ids_in_any_form_become_uint8_at_the_input_size():
    ids = np.array([[[[0, 1], [2, 3]]]], np.int64)  # Nx1xHxW, int64 (mmsegmentation)
    out, kind = standardize(ids, "argmax", "NCHW", (4, 4))
    assert kind == "argmax" and out.dtype == np.uint8 and out.shape == (1, 4, 4)
    assert np.array_equal(out[0], np.kron([[0, 1], [2, 3]], np.ones((2, 2), int)))
    assert standardize(ids[:, 0].astype(np.int32), "argmax", "NHWC", (2, 2))[0].shape == (1, 2, 2)
    conf = standardize_confidence(np.full((1, 2, 2), 200, np.uint8), "NHWC", (4, 4))
    assert conf.shape == (1, 4, 4) and (conf == 200).all()


@pytest.mark.parametrize("output, kind, layout, message", [
    (np.zeros((1, 8, 16), np.float32), "logits", "NCHW", "expected rank 4"),
    (np.zeros((1, 3, 8, 16), np.float32), "sigmoid", "NCHW", "a sigmoid output has one channel"),
    (np.zeros((1, 16, 32, 3), np.float32), "logits", "NHWC", "do not fit the 8x16 input"),
    (np.zeros((1, 3, 8, 16), np.int64), "argmax", "NCHW", "expected NxHxW or a single channel"),
    (np.zeros((1, 8, 16), np.float32), "argmax", "NCHW", "an argmax output holds integers"),
    (np.zeros((1, 8, 16, 3), np.float32), "softmax", "NHWC", "unknown output kind"),
])
def test_outputs_that_cannot_be_read_are_named(output, kind, layout, message):
    with pytest.raises(OutputError, match=message):
        standardize(output, kind, layout, (8, 16))


def test_confidence_is_lazy_at_mask_resolution_and_follows_resized_views():
    calls = []

    def compute():
        calls.append(1)
        return np.array([[10, 20], [30, 40]], np.uint8)

    result = Segmentation(np.zeros((2, 2), np.uint8), (4, 6), class_space("trainid"), {}, compute)
    assert result.has_confidence and not calls
    assert result.confidence.shape == (4, 6) and result.confidence[3, 5] == 40 and len(calls) == 1
    view = result.resized((2, 2))
    assert np.array_equal(view.confidence, [[10, 20], [30, 40]]) and len(calls) == 1
    assert view.mask.shape == (2, 2)


def test_no_confidence_raises_with_the_reason():
    result = Segmentation(np.zeros((2, 2), np.uint8), (2, 2), class_space("trainid"),
                          unavailable_reason="model_argmax.onnx outputs class ids only")
    assert not result.has_confidence and not result.resized((4, 4)).has_confidence
    with pytest.raises(ConfidenceUnavailable, match="class ids only"):
        _ = result.confidence

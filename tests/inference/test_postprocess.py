"""Postprocess: argmax, remap, nearest upsample, LUT colouring and overlay are exact."""

import numpy as np
import pytest

from cityseg.inference import postprocess
from cityseg.labels import class_space
from cityseg.preprocess import upsample_nearest


def test_threaded_argmax_equals_numpy():
    rng = np.random.default_rng(1)
    scores = rng.random((2, 300, 40, 19), dtype=np.float32)
    assert np.array_equal(postprocess.scores_to_classes(scores), scores.argmax(-1).astype(np.uint8))
    small = rng.random((5, 7, 34), dtype=np.float32)
    assert np.array_equal(postprocess.scores_to_classes(small), small.argmax(-1))


def test_to_classes_passes_argmax_output_through():
    classes = np.array([[[3, 4]]], dtype=np.int32)
    out = postprocess.to_classes(classes, "argmax")
    assert out.dtype == np.uint8 and np.array_equal(out, classes)


def test_upsample_is_pixel_centre_nearest():
    low = np.array([[1, 2], [3, 4]], np.uint8)
    up = upsample_nearest(low, 4, 6)
    assert np.array_equal(up, np.repeat(np.repeat(low, 2, axis=0), 3, axis=1))


def test_colorize_uses_palette_in_both_orders():
    space = class_space("trainid")
    mask = np.array([[0, 13], [255, 10]], np.uint8)
    rgb = postprocess.colorize(mask, space.palette, "RGB")
    assert tuple(rgb[0, 0]) == (128, 64, 128) and tuple(rgb[0, 1]) == (0, 0, 142)
    assert tuple(rgb[1, 0]) == (0, 0, 0)
    assert np.array_equal(postprocess.colorize(mask, space.palette, "BGR"), rgb[..., ::-1])


def test_colour_then_upsample_equals_upsample_then_colour():
    space = class_space("labelid")
    mask = np.random.default_rng(2).integers(0, 34, (32, 64)).astype(np.uint8)
    a = upsample_nearest(postprocess.colorize(mask, space.palette), 100, 300)
    b = space.palette[upsample_nearest(mask, 100, 300)]
    assert np.array_equal(a, b)


def test_overlay_blends_and_validates():
    frame = np.full((2, 2, 3), 100, np.uint8)
    color = np.full((2, 2, 3), 200, np.uint8)
    assert (postprocess.overlay(frame, color, 0.25) == 125).all()
    with pytest.raises(ValueError, match="alpha"):
        postprocess.overlay(frame, color, 1.5)
    with pytest.raises(ValueError, match="one shape"):
        postprocess.overlay(frame, color[:1], 0.5)

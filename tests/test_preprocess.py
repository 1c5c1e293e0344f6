"""Preprocessing: one resize function for training and inference, exact normalisation."""

import numpy as np
import pytest
from PIL import Image

from cityseg.errors import InputError
from cityseg.preprocess import Normalization, as_rgb, normalize, prepare_frame, resize_image, resize_mask


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(96, 160, 3), dtype=np.uint8)


def test_lanczos3_is_pillows_antialiased_lanczos(frame):
    expected = np.asarray(Image.fromarray(frame).resize((80, 48), Image.Resampling.LANCZOS))
    assert np.array_equal(resize_image(frame, 48, 80, "lanczos3"), expected)


@pytest.mark.parametrize("method", ["lanczos3", "area", "bilinear", "nearest"])
def test_every_method_gives_requested_size(frame, method):
    out = resize_image(frame, 40, 72, method)
    assert out.shape == (40, 72, 3) and out.dtype == np.uint8


def test_mask_resize_never_invents_labels():
    mask = np.zeros((64, 128), np.uint8)
    mask[:, 64:] = 26
    out = resize_mask(mask, 16, 32)
    assert set(np.unique(out)) == {0, 26}
    assert (out[:, :16] == 0).all() and (out[:, 16:] == 26).all()


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown resize method 'cubic'"):
        resize_image(np.zeros((4, 4, 3), np.uint8), 2, 2, "cubic")


def test_normalization_matches_formula(frame):
    norm = Normalization(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    expected = (frame.astype(np.float64) / 255 - np.array(norm.mean)) / np.array(norm.std)
    np.testing.assert_allclose(normalize(frame, norm), expected, rtol=1e-5, atol=1e-5)
    assert normalize(frame, norm).dtype == np.float32


def test_channel_orders(frame):
    bgr = frame[..., ::-1]
    assert np.array_equal(as_rgb(bgr, "BGR"), frame)
    assert np.array_equal(as_rgb(frame, "rgb"), frame)
    gray = frame[..., 0]
    assert np.array_equal(as_rgb(gray, "RGB")[..., 2], gray)
    rgba = np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)])
    assert np.array_equal(as_rgb(rgba, "RGB"), frame)
    bgra = np.dstack([bgr, np.full(frame.shape[:2], 255, np.uint8)])
    assert np.array_equal(as_rgb(bgra, "BGR"), frame)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 10, 3), np.uint8), "non-empty"),
    (np.zeros((4, 4, 2), np.uint8), "1, 3 or 4 channels"),
    (np.zeros((4, 4, 3), np.float32), "uint8"),
    (np.zeros((2, 4, 4, 3), np.uint8), "HxW or HxWxC"),
])
def test_bad_frames(bad, message):
    with pytest.raises(InputError, match=message):
        as_rgb(bad, "RGB")


def test_prepare_frame_bgr_model(frame):
    out = prepare_frame(frame[..., ::-1], "BGR", 48, 80, "area", model_order="BGR")
    assert np.array_equal(out, resize_image(frame, 48, 80, "area")[..., ::-1])



@pytest.mark.parametrize("shape", [(48, 80, 3), (2, 48, 80, 3)])
def test_fast_normalize_is_bit_identical_to_numpy(shape):
    images = np.random.default_rng(3).integers(0, 256, size=shape, dtype=np.uint8)
    for norm in (Normalization(), Normalization(1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                 Normalization(1.0, (123.7, 116.3, 103.5), (58.4, 57.1, 57.4))):
        mul, off = norm.coefficients()
        expected = images.astype(np.float32) * mul + off
        out = normalize(images, norm)
        assert out.dtype == np.float32 and out.shape == shape
        assert np.array_equal(out, expected)

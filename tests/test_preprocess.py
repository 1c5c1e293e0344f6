"""Preprocessing: one resize function for training and inference, exact normalisation."""

import numpy as np
import pytest
from PIL import Image

from cityseg.errors import InputError
from cityseg.preprocess import (
    Normalization,
    as_rgb,
    normalize,
    prepare_frame,
    prepare_frame_fit,
    prepare_frame_tiles,
    resize_image,
    resize_mask,
    tile_grid,
    tile_spans,
    tile_starts,
)


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


# Fit 'tiles': the tile geometry.

@pytest.mark.parametrize("length, tile", [(100, 64), (128, 64), (129, 64), (2048, 513), (1024, 513), (513, 513),
                                          (1000, 7)])
def test_tiles_cover_the_axis_evenly_without_padding(length, tile):
    starts = tile_starts(length, tile)
    assert len(starts) == -(-length // tile)  # ceil(length / tile)
    assert starts[0] == 0 and starts[-1] == length - tile  # inside the frame, first and last at its edges
    gaps = np.diff(starts)
    if len(starts) > 1:
        assert gaps.max() <= tile and gaps.max() - gaps.min() <= 1  # no holes, spread evenly


def test_an_axis_shorter_than_a_tile_gets_one_centred_padded_tile():
    assert tile_starts(40, 64) == (-12,)
    assert tile_starts(63, 64) == (0,)  # one black line at the end
    assert tile_starts(1, 64) == (-31,)


def test_overlaps_split_halfway_between_the_tile_centres():
    assert tile_starts(100, 64) == (0, 36)  # centres 32 and 68: pixels 0-49 from the first, 50-99 the second
    assert tile_spans((0, 36), 100, 64) == [(0, 0, 50), (1, 50, 100)]
    assert tile_spans((0, 64), 128, 64) == [(0, 0, 64), (1, 64, 128)]  # abutting: each its own pixels
    assert tile_spans((0, 35), 100, 65) == [(0, 0, 50), (1, 50, 100)]  # centres 32.5, 67.5: a tie at 50 goes first


def nearest_centre(position: int, starts, tile: int) -> int:
    """The tile whose centre is nearest the pixel's centre (the earlier one on a tie), by brute force."""
    distances = [abs(position + 0.5 - (s + tile / 2)) for s in starts]
    return distances.index(min(distances))


@pytest.mark.parametrize("frame_size, scale", [((200, 300), 1.0), ((1024, 2048), 0.25), ((40, 150), 1.0),
                                               ((128, 128), 1.0), ((97, 301), 0.7)])
def test_stitched_pixels_come_from_the_nearest_tile_at_the_right_offset(frame_size, scale):
    grid = tile_grid(frame_size, 64, 64, scale)
    assert grid.count == len(grid.rows) * len(grid.cols) == len(grid.boxes)
    ys, xs = np.mgrid[0:64, 0:64]
    # every tile says which tile it is and which of its pixels each value is
    tiles = np.stack([np.stack([np.full((64, 64), k), ys, xs], axis=-1) for k in range(grid.count)])
    out = grid.stitch(tiles)
    assert out.shape == (*grid.scaled, 3)
    for y in range(grid.scaled[0]):
        row = nearest_centre(y, grid.rows, 64)
        cols = [nearest_centre(x, grid.cols, 64) for x in range(grid.scaled[1])]
        np.testing.assert_array_equal(out[y, :, 0], [row * len(grid.cols) + c for c in cols])
        assert (out[y, :, 1] == y - grid.rows[row]).all()  # the tile pixel that saw this frame pixel
        np.testing.assert_array_equal(out[y, :, 2], np.arange(grid.scaled[1]) - np.take(grid.cols, cols))


def test_every_pixel_is_assigned_exactly_once():
    for length, tile in [(100, 64), (2048, 513), (40, 64), (1537, 512)]:
        starts = tile_starts(length, tile)
        spans = tile_spans(starts, length, tile)
        assert [i for i, _, _ in spans] == list(range(len(starts)))
        assert spans[0][1] == 0 and spans[-1][2] == length
        assert all(a[2] == b[1] for a, b in zip(spans, spans[1:]))  # contiguous, no gap, no double
        for i, first, end in spans:  # and each inside its own tile
            assert max(starts[i], 0) <= first < end <= starts[i] + tile


def test_tiles_of_a_camera_frame():
    grid = tile_grid((1024, 2048), 513, 513)
    assert grid.scaled == (1024, 2048) and grid.rows == (0, 511) and grid.cols == (0, 511, 1023, 1535)
    half = tile_grid((1024, 2048), 513, 513, 0.5)
    assert half.scaled == (512, 1024) and half.rows == (0,) and half.cols == (0, 511) and half.count == 2


def test_cut_tiles_are_crops_of_the_scaled_frame_with_black_padding(frame):
    tiles, grid = prepare_frame_tiles(frame, "RGB", 64, 64, "area", scale=0.5)  # 96x160 -> 48x80
    scaled = resize_image(frame, 48, 80, "area")
    assert grid.rows == (-8,) and grid.cols == (0, 16) and tiles.shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(tiles[0, 8:56], scaled[:, :64])
    np.testing.assert_array_equal(tiles[1, 8:56], scaled[:, 16:])
    assert tiles[:, :8].max() == 0 and tiles[:, 56:].max() == 0
    np.testing.assert_array_equal(grid.stitch(tiles), scaled)  # cut then stitched: the scaled frame again
    np.testing.assert_array_equal(prepare_frame_fit(frame, "RGB", 64, 64, "area", fit="tiles", tile_scale=0.5),
                                  tiles[1])  # one input per frame: the middle tile


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan")])
def test_a_scale_that_is_not_positive_is_refused(scale):
    with pytest.raises(ValueError, match="tile_scale must be positive"):
        tile_grid((100, 100), 64, 64, scale)

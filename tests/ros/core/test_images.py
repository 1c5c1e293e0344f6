"""Image / CompressedImage decoding: every encoding to the right pixels, bad messages refused."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest

from cityseg.preprocess import as_rgb
from cityseg.ros.core.images import (
    SUPPORTED_ENCODINGS,
    ImageError,
    RawImage,
    bayer_mosaic,
    decode_compressed,
    decode_image,
    decode_message,
    encode_compressed,
    encode_rgb,
)
from cityseg.ros.core.messages import RosbagsMessages

F = RosbagsMessages()
HEADER = F.header(12, 345, "cam")


def image_msg(raw: RawImage):
    return F.image(HEADER, raw)


def raw_msg(height, width, encoding, step, data, bigendian=0):
    return F._t["sensor_msgs/msg/Image"](header=HEADER, height=height, width=width, encoding=encoding,
                                         is_bigendian=bigendian, step=step, data=np.asarray(data, np.uint8))


def compressed_msg(fmt: str, data):
    return F.compressed_image(HEADER, fmt, np.frombuffer(bytes(data), np.uint8))


def smooth_rgb(height=32, width=48) -> np.ndarray:
    """A gently varying image (so chroma subsampling and demosaicing are nearly lossless)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([40 + 3 * x, 60 + 2 * y, 200 - x - y]).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
@pytest.mark.parametrize("padding", [0, 5])
def test_colour_encodings_round_trip_exactly(encoding, padding):
    rgb = np.random.default_rng(1).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    decoded = decode_image(image_msg(encode_rgb(rgb, encoding, padding=padding)))
    assert decoded.channel_order == ("BGR" if encoding.startswith("bgr") else "RGB")
    np.testing.assert_array_equal(as_rgb(decoded.frame, decoded.channel_order), rgb)
    assert decoded.overlay_encoding == ("bgr8" if encoding.startswith("bgr") else "rgb8")
    assert decoded.color_frame().shape == (7, 11, 3)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_is_the_grey_image(encoding):
    rgb = np.random.default_rng(2).integers(0, 256, (5, 9, 3), dtype=np.uint8)
    decoded = decode_image(image_msg(encode_rgb(rgb, encoding, padding=3)))
    np.testing.assert_array_equal(decoded.frame, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    assert decoded.overlay_encoding == "rgb8"


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_respects_byte_order_and_scales_to_8_bit(encoding, bigendian):
    gray = np.arange(0, 256, dtype=np.uint8).reshape(16, 16)
    values = gray.astype(np.uint16) * 257
    raw = encode_rgb(np.dstack([gray] * 3), encoding, bigendian=bigendian, padding=2)
    assert raw.is_bigendian == int(bigendian)
    expected_first = values[0, 1].tobytes() if not bigendian else values[0, 1].byteswap().tobytes()
    assert raw.data[2:4].tobytes() == expected_first  # pixel (0, 1): the bytes really are in that order
    np.testing.assert_array_equal(decode_image(image_msg(raw)).frame, gray)


def test_mono16_white_level_for_12_bit_sensors():
    values = np.array([[0, 2048, 4095, 65535]], dtype="<u2")
    msg = raw_msg(1, 4, "mono16", 8, values.view(np.uint8).reshape(-1))
    np.testing.assert_array_equal(decode_image(msg, mono16_max=4095).frame, [[0, 128, 255, 255]])
    np.testing.assert_array_equal(decode_image(msg).frame, [[0, 8, 16, 255]])


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_round_trips_within_rounding(encoding):
    rgb = smooth_rgb()
    rgb[:, 1::2] = rgb[:, 0::2]  # pixel pairs share chroma: nothing is lost to subsampling
    decoded = decode_image(image_msg(encode_rgb(rgb, encoding, padding=4)))
    assert decoded.channel_order == "RGB" and decoded.overlay_encoding == "rgb8"
    assert np.abs(decoded.frame.astype(int) - rgb).max() <= 3


def test_yuv422_byte_order_matters():
    """UYVY bytes read as YUYV give a visibly different picture: the two are not confused."""
    rgb = smooth_rgb()
    raw = encode_rgb(rgb, "uyvy")
    wrong = RawImage(raw.height, raw.width, "yuyv", 0, raw.step, raw.data)
    assert np.abs(decode_image(image_msg(wrong)).frame.astype(int) - rgb).mean() > 20


def test_bayer_mosaic_samples_the_named_pattern():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30  # R, G, B
    np.testing.assert_array_equal(bayer_mosaic(rgb, "rggb"), [[10, 20], [20, 30]])
    np.testing.assert_array_equal(bayer_mosaic(rgb, "bggr"), [[30, 20], [20, 10]])
    np.testing.assert_array_equal(bayer_mosaic(rgb, "gbrg"), [[20, 30], [10, 20]])
    np.testing.assert_array_equal(bayer_mosaic(rgb, "grbg"), [[20, 10], [30, 20]])


PATTERNS = ["rggb", "bggr", "gbrg", "grbg"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_bayer_demosaic_recovers_the_colours(pattern):
    """A mosaic made from a known picture (flat colour quadrants) demosaics back to it."""
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:16, :16] = (220, 30, 40)
    rgb[:16, 16:] = (30, 200, 50)
    rgb[16:, :16] = (20, 40, 230)
    rgb[16:, 16:] = (200, 180, 20)
    raw = encode_rgb(rgb, f"bayer_{pattern}8", padding=6)
    decoded = decode_image(image_msg(raw))
    interior = np.zeros((32, 32), bool)
    for y0 in (0, 16):
        for x0 in (0, 16):
            interior[y0 + 2:y0 + 14, x0 + 2:x0 + 14] = True
    np.testing.assert_array_equal(decoded.frame[interior], rgb[interior])
    for other in PATTERNS:  # the same bytes under another pattern name are wrong colours
        if other != pattern:
            mislabeled = RawImage(raw.height, raw.width, f"bayer_{other}8", 0, raw.step, raw.data)
            frame = decode_image(image_msg(mislabeled)).frame
            assert np.abs(frame[interior].astype(int) - rgb[interior]).max() > 100


def test_every_supported_encoding_decodes_to_the_input_size():
    rgb = smooth_rgb(10, 14)
    for encoding in SUPPORTED_ENCODINGS:
        decoded = decode_image(image_msg(encode_rgb(rgb, encoding, padding=1)))
        assert decoded.size == (10, 14), encoding
        assert decoded.frame.dtype == np.uint8


def test_rclpy_style_data_buffers_are_accepted():
    """rclpy hands uint8[] as array.array('B'); bytes work too."""
    rgb = np.random.default_rng(4).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    raw = encode_rgb(rgb, "rgb8")

    class RclpyLikeImage:
        header, height, width, encoding, is_bigendian, step = HEADER, 3, 4, "rgb8", 0, raw.step

    for data in (array.array("B", raw.data.tobytes()), raw.data.tobytes()):
        msg = RclpyLikeImage()
        msg.data = data
        np.testing.assert_array_equal(decode_message(msg).frame, rgb)


# ------------------------------------------------------------------------------ compressed

def test_png_is_decoded_losslessly_in_bgr_order():
    rgb = np.random.default_rng(5).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    fmt, data = encode_compressed(rgb, "png")
    assert fmt == "rgb8; png compressed bgr8"
    decoded = decode_message(compressed_msg(fmt, data))
    assert decoded.channel_order == "BGR" and decoded.overlay_encoding == "bgr8"
    np.testing.assert_array_equal(as_rgb(decoded.frame, "BGR"), rgb)


@pytest.mark.parametrize("fmt", ["jpeg", "rgb8; jpeg compressed bgr8", ""])
def test_jpeg_decodes_close_to_the_original(fmt):
    rgb = smooth_rgb()
    _, data = encode_compressed(rgb, "jpeg", quality=95)
    decoded = decode_compressed(compressed_msg(fmt, data))
    assert np.abs(as_rgb(decoded.frame, decoded.channel_order).astype(int) - rgb).mean() < 3


def test_grey_and_16_bit_png():
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    ok, png8 = cv2.imencode(".png", gray)
    assert ok
    np.testing.assert_array_equal(decode_compressed(compressed_msg("mono8; png compressed mono8", png8)).frame, gray)
    ok, png16 = cv2.imencode(".png", gray.astype(np.uint16) * 257)
    np.testing.assert_array_equal(decode_compressed(compressed_msg("png", png16)).frame, gray)


# ------------------------------------------------------------------------------ malformed

@pytest.mark.parametrize("msg, reason", [
    (raw_msg(2, 2, "32FC1", 8, np.zeros(16)), "unsupported encoding '32FC1'"),
    (raw_msg(2, 4, "rgb8", 10, np.zeros(24)), "step 10 is smaller than width*bytes_per_pixel = 4*3 = 12"),
    (raw_msg(3, 4, "rgb8", 12, np.zeros(35)), "data has 35 bytes, fewer than step*height = 12*3 = 36"),
    (raw_msg(0, 4, "rgb8", 12, np.zeros(0)), "zero-size image (4x0)"),
    (raw_msg(2, 0, "mono8", 0, np.zeros(0)), "zero-size image (0x2)"),
    (raw_msg(2, 3, "yuv422", 6, np.zeros(12)), "yuv422 needs an even width"),
])
def test_malformed_images_are_refused_with_the_reason(msg, reason):
    with pytest.raises(ImageError) as exc:
        decode_message(msg)
    assert reason in exc.value.reason


@pytest.mark.parametrize("fmt, data, reason", [
    ("16UC1; compressedDepth png", b"\x89PNG....", "compressedDepth"),
    ("h264", b"\x00\x00\x01", "unsupported compressed format 'h264'"),
    ("jpeg", b"", "empty data"),
    ("jpeg", b"\xff\xd8\xff\xe0 this is not really a jpeg", "cannot decode 30 bytes"),
])
def test_malformed_compressed_images_are_refused(fmt, data, reason):
    with pytest.raises(ImageError) as exc:
        decode_message(compressed_msg(fmt, data))
    assert reason in exc.value.reason


def test_truncated_jpeg_is_refused_not_crashed():
    _, data = encode_compressed(smooth_rgb(), "jpeg")
    with pytest.raises(ImageError, match="cannot decode"):
        decode_message(compressed_msg("jpeg", data[:20]))

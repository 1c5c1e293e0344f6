"""CDR views and buffers of sensor_msgs Image / CompressedImage against rosbags' and rclpy's serialisers."""

from __future__ import annotations

import numpy as np
import pytest

from cityseg.ros.core.cdr import (
    ImageBuffer,
    compressed_image_bytes,
    read_compressed_image,
    read_image,
)
from cityseg.ros.core.images import ImageError, decode_message, encode_compressed, encode_rgb
from cityseg.ros.core.messages import RosbagsMessages

F = RosbagsMessages()


def serialized_image(rgb, encoding="rgb8", frame_id="front_camera", **kw) -> bytes:
    return F.serialize(F.image(F.header(1_700_000_123, 456_789, frame_id), encode_rgb(rgb, encoding, **kw)))


@pytest.mark.parametrize("frame_id", ["", "a", "ab", "abc", "front_camera"])  # every string padding
@pytest.mark.parametrize("encoding, padding", [("rgb8", 0), ("bgra8", 4), ("mono8", 3), ("mono16", 2)])
def test_read_image_matches_rosbags_and_copies_nothing(frame_id, encoding, padding):
    rgb = np.random.default_rng(1).integers(0, 255, (6, 10, 3), dtype=np.uint8)
    data = serialized_image(rgb, encoding, frame_id, padding=padding)
    view = read_image(data)
    reference = F.typestore.deserialize_cdr(data, "sensor_msgs/msg/Image")
    assert (view.header.stamp.sec, view.header.stamp.nanosec, view.header.frame_id) == (
        1_700_000_123, 456_789, frame_id)
    for name in ("height", "width", "encoding", "is_bigendian", "step"):
        assert getattr(view, name) == getattr(reference, name), name
    np.testing.assert_array_equal(view.data, reference.data)
    assert np.shares_memory(view.data, np.frombuffer(data, np.uint8))  # a view, not a copy
    np.testing.assert_array_equal(decode_message(view).frame, decode_message(reference).frame)


def test_read_compressed_image():
    rgb = np.random.default_rng(2).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    fmt, payload = encode_compressed(rgb, "png")
    data = F.serialize(F.compressed_image(F.header(3, 4, "cam"), fmt, payload))
    view = read_compressed_image(data)
    assert view.format == fmt and view.header.frame_id == "cam"
    np.testing.assert_array_equal(view.data, payload)
    np.testing.assert_array_equal(decode_message(view).frame, rgb[..., ::-1])


def test_truncated_and_foreign_bytes_are_image_errors():
    data = serialized_image(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ImageError, match="truncated"):
        read_image(data[:20])
    with pytest.raises(ImageError, match="not a CDR"):
        read_image(b"\x07\x07" + data[2:])
    short = read_image(data[:-5])  # fields complete, pixels short: the decoder says by how much
    with pytest.raises(ImageError, match="fewer than step"):
        decode_message(short)


@pytest.mark.parametrize("frame_id", ["", "cam", "front_camera_optical"])
@pytest.mark.parametrize("encoding, channels", [("mono8", 1), ("rgb8", 3), ("bgr8", 3)])
def test_image_buffer_is_what_the_serialisers_write(frame_id, encoding, channels):
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    pixels = np.random.default_rng(3).integers(0, 255, shape, dtype=np.uint8)
    out = ImageBuffer(12, 34, frame_id, 5, 7, encoding, channels)
    out.pixels[...] = pixels
    data = out.message()
    assert isinstance(data, bytes)
    reference = F.serialize(F.image_from_array(F.header(12, 34, frame_id), pixels, encoding))
    assert data == reference  # byte for byte, padding included (rosbags writes zeros too)
    back = F.typestore.deserialize_cdr(data, "sensor_msgs/msg/Image")
    assert (back.height, back.width, back.step, back.encoding) == (5, 7, 7 * channels, encoding)
    np.testing.assert_array_equal(back.data.reshape(shape), pixels)


def test_image_buffer_deserialises_in_rclpy():
    rclpy_serialization = pytest.importorskip("rclpy.serialization", reason="needs rclpy (the ros extra)")
    from sensor_msgs.msg import Image

    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = ImageBuffer(7, 8, "cam", 2, 3, "rgb8", 3)
    out.pixels[...] = pixels
    msg = rclpy_serialization.deserialize_message(out.message(), Image)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (7, 8, "cam")
    assert (msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian) == (2, 3, "rgb8", 9, 0)
    assert bytes(msg.data) == pixels.tobytes()
    view = read_image(rclpy_serialization.serialize_message(msg))
    np.testing.assert_array_equal(view.data, pixels.reshape(-1))


@pytest.mark.parametrize("frame_id", ["", "a", "cam", "front_camera_optical"])  # every string padding
@pytest.mark.parametrize("fmt, size", [("mono8; png compressed ", 0), ("rgb8; jpeg compressed bgr8", 1),
                                       ("bgr8; jpeg compressed bgr8", 333)])
def test_compressed_image_bytes_are_what_the_serialisers_write(frame_id, fmt, size):
    payload = np.random.default_rng(size).integers(0, 255, size, dtype=np.uint8)
    data = compressed_image_bytes(12, 34, frame_id, fmt, payload)
    assert isinstance(data, bytes)
    assert data == F.serialize(F.compressed_image(F.header(12, 34, frame_id), fmt, payload))  # byte for byte
    view = read_compressed_image(data)
    assert (view.format, view.header.frame_id) == (fmt, frame_id)
    np.testing.assert_array_equal(view.data, payload)


def test_compressed_output_of_the_rclpy_factory_deserialises_in_rclpy():
    rclpy_serialization = pytest.importorskip("rclpy.serialization", reason="needs rclpy (the ros extra)")
    from sensor_msgs.msg import CompressedImage

    from cityseg.ros.core.messages import RclpyMessages

    m = RclpyMessages()
    fmt, payload = encode_compressed(np.zeros((4, 6), np.uint8), "png", encoding="mono8")
    data = m.compressed_output(m.header(7, 8, "cam"), fmt, payload)
    msg = rclpy_serialization.deserialize_message(data, CompressedImage)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id, msg.format) == (7, 8, "cam", fmt)
    assert bytes(msg.data) == payload.tobytes()
    assert rclpy_serialization.serialize_message(msg) == data

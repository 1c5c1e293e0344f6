"""The node's compressed outputs (``<raw>/compressed``) from the FrameProcessor, with the real ONNX model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cityseg.ros.core import processor as processor_module
from cityseg.ros.core.images import decode_message, encode_rgb
from cityseg.ros.core.messages import RosbagsMessages
from cityseg.ros.core.outputs import (
    COMPRESSED_OUTPUTS,
    DEFAULT_OUTPUTS,
    RAW_DEFAULT_OUTPUTS,
    check_outputs,
    compressed_of,
    raw_of,
)
from cityseg.ros.core.processor import FrameProcessor, ProcessorConfig

F = RosbagsMessages()
HEADER = F.header(1_700_000_123, 456_789, "front_camera")
EVERY_IMAGE = frozenset({"mask", "color_mask", "overlay", *COMPRESSED_OUTPUTS} - {"confidence/compressed"})


def processor(bundle, **config) -> FrameProcessor:
    config.setdefault("id_space", "trainid")
    return FrameProcessor.from_bundle(bundle, F, ProcessorConfig(**config), backend="onnxruntime")


def image(rgb, encoding="rgb8"):
    return F.image(HEADER, encode_rgb(rgb, encoding))


def pixels(msg) -> np.ndarray:
    channels = msg.step // msg.width
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return msg.data.reshape(msg.height, msg.step)[:, : msg.width * channels].reshape(shape)


def decoded(msg) -> np.ndarray:
    """A CompressedImage's pixels as OpenCV decodes them (colour: BGR)."""
    return cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_UNCHANGED)


def rgb_of(msg) -> np.ndarray:
    """An Image or CompressedImage as RGB, read the way the node reads its input."""
    image = decode_message(msg)
    return image.color_frame()[..., ::-1] if image.channel_order == "BGR" else image.color_frame()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_suffix_helpers_and_the_table():
    assert compressed_of("mask") == "mask/compressed" and raw_of("mask/compressed") == "mask"
    assert raw_of("overlay") == "overlay"
    assert COMPRESSED_OUTPUTS == ("mask/compressed", "color_mask/compressed", "overlay/compressed",
                                  "confidence/compressed")
    assert set(COMPRESSED_OUTPUTS) - {"confidence/compressed"} <= DEFAULT_OUTPUTS  # built only for subscribers
    assert not RAW_DEFAULT_OUTPUTS & set(COMPRESSED_OUTPUTS)
    assert check_outputs({"overlay/compressed"}) == {"overlay/compressed"}  # an image output on its own
    with pytest.raises(ValueError, match="no image output"):
        check_outputs({"confidence/compressed", "camera_info"})


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_png_mask_decodes_to_exactly_the_raw_mask(bundle, scene, encoding, scale):
    rgb, _ = scene
    frame = processor(bundle, outputs=EVERY_IMAGE, output_scale=scale).process(image(rgb, encoding))
    raw, png = frame.messages["mask"], frame.messages["mask/compressed"]
    assert png.format == "mono8; png compressed "  # image_transport's string for a grey PNG
    assert decoded(png).dtype == np.uint8 and decoded(png).shape == (raw.height, raw.width)
    assert decoded(png).tobytes() == pixels(raw).tobytes()
    assert decode_message(png).frame.tobytes() == pixels(raw).tobytes()  # the node's own decoder agrees
    assert (png.header.stamp.sec, png.header.stamp.nanosec, png.header.frame_id) == (
        1_700_000_123, 456_789, "front_camera")


@pytest.mark.parametrize("encoding, fmt", [("rgb8", "rgb8; jpeg compressed bgr8"),
                                           ("bgr8", "bgr8; jpeg compressed bgr8"),
                                           ("mono8", "rgb8; jpeg compressed bgr8")])
def test_jpeg_overlay_and_colour_mask_look_like_the_raw_ones(bundle, scene, encoding, fmt):
    rgb, _ = scene
    frame = processor(bundle, outputs=EVERY_IMAGE).process(image(rgb, encoding))
    overlay, jpeg = frame.messages["overlay"], frame.messages["overlay/compressed"]
    assert jpeg.format == fmt
    as_published = pixels(overlay) if overlay.encoding == "bgr8" else pixels(overlay)[..., ::-1]
    assert psnr(decoded(jpeg), as_published) >= 30.0  # OpenCV decodes to BGR, as the format says
    color, color_jpeg = frame.messages["color_mask"], frame.messages["color_mask/compressed"]
    assert color_jpeg.format == "rgb8; jpeg compressed bgr8"
    assert psnr(decoded(color_jpeg), pixels(color)[..., ::-1]) >= 30.0
    assert psnr(rgb_of(jpeg), rgb_of(overlay)) >= 30.0  # what a subscriber decoding either one sees


def test_a_compressed_output_alone_needs_no_raw_message(bundle, scene):
    rgb, mask = scene
    alone = processor(bundle, outputs={"mask/compressed", "overlay/compressed"}).process(image(rgb))
    assert list(alone.messages) == ["mask/compressed", "overlay/compressed"]
    np.testing.assert_array_equal(decoded(alone.messages["mask/compressed"]), mask)
    both = processor(bundle, outputs={"overlay", "overlay/compressed"}).process(image(rgb))
    assert bytes(alone.messages["overlay/compressed"].data) == bytes(both.messages["overlay/compressed"].data)


def test_compressed_outputs_are_built_only_when_asked_and_encoded_once(bundle, scene, monkeypatch):
    rgb, _ = scene
    calls = []
    real = processor_module.encode_compressed
    monkeypatch.setattr(processor_module, "encode_compressed", lambda *a, **kw: calls.append(a[1]) or real(*a, **kw))
    assert set(processor(bundle).process(image(rgb)).messages) == {"mask", "color_mask", "overlay"}
    assert calls == []  # the default processor config is the raw outputs
    proc = processor(bundle, outputs=EVERY_IMAGE)
    assert set(proc.process(image(rgb), outputs={"mask", "overlay"}).messages) == {"mask", "overlay"}
    assert calls == []  # enabled but nobody asked this frame: nothing encoded
    proc.process(image(rgb), outputs={"mask", "mask/compressed", "overlay/compressed"})
    assert sorted(calls) == ["jpeg", "png"]


def test_jpeg_quality_is_respected(bundle):
    from cityseg.synthetic.dataset import render_scene

    rgb, _ = render_scene(np.random.default_rng(4), 256, 512)  # a street, not flat blocks
    sizes = {q: processor(bundle, outputs={"overlay/compressed"}, jpeg_quality=q).process(image(rgb))
             .messages["overlay/compressed"].data.size for q in (20, 95)}
    assert sizes[20] < 0.7 * sizes[95]
    with pytest.raises(ValueError, match="jpeg_quality must be within"):
        ProcessorConfig(jpeg_quality=101)


def test_compressed_confidence_follows_the_raw_confidence(bundle, scene, tmp_path):
    from support import make_palette_bundle

    rgb, _ = scene
    proc = processor(bundle, outputs={"mask", "confidence", "confidence/compressed"})
    frame = proc.process(image(rgb))
    png = frame.messages["confidence/compressed"]
    assert png.format == "mono8; png compressed "
    assert decoded(png).tobytes() == pixels(frame.messages["confidence"]).tobytes()
    argmax_only = make_palette_bundle(tmp_path / "argmax", "trainid", 64, 128, formats=("onnx_argmax",))
    proc = processor(argmax_only, outputs={"mask", "confidence/compressed"})
    assert set(proc.unavailable) == {"confidence/compressed"} and "argmax head" in proc.unavailable[
        "confidence/compressed"]
    assert set(proc.process(image(rgb)).messages) == {"mask"}

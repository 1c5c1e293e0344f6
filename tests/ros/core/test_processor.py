"""FrameProcessor on real messages with the real palette-classifier ONNX model."""

from __future__ import annotations

import numpy as np
import pytest

from cityseg.errors import BundleError, InputError
from cityseg.inference import Segmenter
from cityseg.labels import class_space, convert_ids
from cityseg.ros.core.images import ImageError, encode_compressed, encode_rgb
from cityseg.ros.core.messages import CameraInfoValues, RosbagsMessages
from cityseg.ros.core.outputs import OUTPUTS
from cityseg.ros.core.processor import STAGES, FrameProcessor, ProcessorConfig

F = RosbagsMessages()
HEADER = F.header(1_700_000_123, 456_789, "front_camera")


def processor(bundle, **config) -> FrameProcessor:
    return FrameProcessor.from_bundle(bundle, F, ProcessorConfig(**config), backend="onnxruntime")


def image(rgb, encoding="rgb8", **kw):
    return F.image(HEADER, encode_rgb(rgb, encoding, **kw))


def camera_info(height, width):
    return F.camera_info(F.header(0, 0, "other"), CameraInfoValues.pinhole(height, width))


def pixels(msg) -> np.ndarray:
    channels = msg.step // msg.width
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return msg.data.reshape(msg.height, msg.step)[:, : msg.width * channels].reshape(shape)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_mask_is_exact_at_the_input_resolution(bundle, scene, encoding):
    rgb, mask = scene
    frame = processor(bundle, id_space="trainid").process(image(rgb, encoding, padding=4))
    out = frame.messages["mask"]
    assert (out.height, out.width, out.encoding, out.step) == (128, 256, "mono8", 256)
    np.testing.assert_array_equal(pixels(out), mask)
    assert frame.input_size == frame.output_size == (128, 256)


def test_mask_in_labelid_space(bundle, scene):
    rgb, mask = scene
    out = processor(bundle, id_space="labelid").process(image(rgb)).messages["mask"]
    expected = convert_ids(mask, class_space("trainid"), class_space("labelid"))
    np.testing.assert_array_equal(pixels(out), expected)


def test_colour_mask_and_overlay(bundle, scene):
    rgb, mask = scene
    frame = processor(bundle, id_space="trainid", overlay_alpha=1.0).process(image(rgb, "bgr8"))
    color = frame.messages["color_mask"]
    assert color.encoding == "rgb8"
    np.testing.assert_array_equal(pixels(color), class_space("trainid").palette[mask])
    overlay = frame.messages["overlay"]  # bgr8 in -> bgr8 overlay; alpha 1 = the colour mask alone
    assert overlay.encoding == "bgr8"
    np.testing.assert_array_equal(pixels(overlay), class_space("trainid").palette[mask][..., ::-1])


def test_overlay_of_grey_input_is_rgb8_blend(bundle, scene):
    rgb, _ = scene
    frame = processor(bundle, id_space="trainid", overlay_alpha=0.0).process(image(rgb, "mono8"))
    overlay = frame.messages["overlay"]
    assert overlay.encoding == "rgb8"
    gray = pixels(image(rgb, "mono8"))
    np.testing.assert_array_equal(pixels(overlay), np.dstack([gray] * 3))  # alpha 0 = the image


def test_compressed_input(bundle, scene):
    rgb, mask = scene
    fmt, data = encode_compressed(rgb, "png")
    frame = processor(bundle, id_space="trainid").process(F.compressed_image(HEADER, fmt, data))
    np.testing.assert_array_equal(pixels(frame.messages["mask"]), mask)
    assert frame.messages["overlay"].encoding == "bgr8"


def test_every_output_keeps_the_input_header(bundle, scene):
    rgb, _ = scene
    frame = processor(bundle).process(image(rgb), camera_info(128, 256))
    assert set(frame.messages) == {"mask", "color_mask", "overlay", "camera_info"}
    for msg in frame.messages.values():
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == \
            (1_700_000_123, 456_789, "front_camera")


def test_camera_info_is_copied_unchanged_at_full_resolution(bundle, scene):
    rgb, _ = scene
    info = camera_info(128, 256)
    out = processor(bundle).process(image(rgb), info).messages["camera_info"]
    assert (out.height, out.width, out.distortion_model) == (128, 256, "plumb_bob")
    for name in ("d", "k", "r", "p"):
        np.testing.assert_array_equal(getattr(out, name), getattr(info, name))


def test_output_scale_shrinks_images_and_adjusts_camera_info(bundle, scene):
    rgb, mask = scene
    info = camera_info(128, 256)
    frame = processor(bundle, id_space="trainid", output_scale=0.5).process(image(rgb), info)
    assert frame.output_size == (64, 128)
    for key in ("mask", "color_mask", "overlay"):
        assert (frame.messages[key].height, frame.messages[key].width) == (64, 128)
    np.testing.assert_array_equal(pixels(frame.messages["mask"]), mask[::2, ::2])
    out = frame.messages["camera_info"]
    assert (out.height, out.width) == (64, 128)
    k = info.k
    np.testing.assert_allclose(out.k, [k[0] / 2, 0, k[2] / 2, 0, k[4] / 2, k[5] / 2, 0, 0, 1])
    np.testing.assert_allclose(out.p[[0, 2, 5, 6]], info.p[[0, 2, 5, 6]] / 2)


def test_disabled_outputs_are_not_built(bundle, scene):
    rgb, _ = scene
    frame = processor(bundle, outputs={"mask"}).process(image(rgb), camera_info(128, 256))
    assert set(frame.messages) == {"mask"}


def test_timings_cover_the_processing_stages(bundle, scene):
    frame = processor(bundle).process(image(scene[0]))
    assert set(frame.timings) == set(STAGES) - {"publish"}
    assert all(v >= 0 for v in frame.timings.values())


def test_label_info_maps_ids_to_names(bundle):
    trainid = processor(bundle, id_space="trainid").label_info(5, 6, "cam")
    assert [(c.class_id, c.class_name) for c in trainid.class_map][:3] == [(0, "road"), (1, "sidewalk"),
                                                                          (2, "building")]
    assert len(trainid.class_map) == 20 and trainid.class_map[-1].class_id == 255
    assert trainid.class_map[-1].class_name == "unlabeled"
    assert trainid.threshold == 0.0 and trainid.header.frame_id == "cam"
    labelid = processor(bundle, id_space="labelid").label_info()
    ids = [c.class_id for c in labelid.class_map]
    assert ids == list(range(34)) and labelid.class_map[26].class_name == "car"


def test_malformed_message_raises_image_error(bundle):
    bad = F._t["sensor_msgs/msg/Image"](header=HEADER, height=4, width=4, encoding="rgb8", is_bigendian=0,
                                        step=6, data=np.zeros(48, np.uint8))
    with pytest.raises(ImageError, match="step 6 is smaller"):
        processor(bundle).process(bad)


def test_bad_camera_info_is_reported(bundle, scene):
    info = camera_info(128, 256)
    info.k = np.zeros(4)
    with pytest.raises(InputError, match="CameraInfo.k has 4 values"):
        processor(bundle).process(image(scene[0]), info)


def test_config_is_validated():
    for bad in ({"overlay_alpha": 1.5}, {"output_scale": 0.0}, {"output_scale": 2.0}, {"mono16_max": 0},
                {"outputs": {"mask", "depth"}}, {"outputs": {"camera_info"}}, {"outputs": set()}):
        with pytest.raises(ValueError):
            ProcessorConfig(**bad)


def test_id_space_must_match_the_segmenter(bundle):
    with pytest.raises(ValueError, match="id_space='labelid'"):
        FrameProcessor(Segmenter(bundle, "onnxruntime"), F, ProcessorConfig(id_space="labelid"))


def test_outputs_constant_names_the_topics():
    assert tuple(o.suffix for o in OUTPUTS) == ("mask", "color_mask", "overlay", "confidence", "mask/compressed",
                                                "color_mask/compressed", "overlay/compressed",
                                                "confidence/compressed", "camera_info", "label_info")


def test_confidence_is_the_top_class_probability_at_the_mask_resolution(bundle, scene):
    from cityseg.ros.core.outputs import DEFAULT_OUTPUTS

    rgb, _ = scene
    proc = processor(bundle, id_space="trainid", outputs=DEFAULT_OUTPUTS | {"confidence"}, output_scale=0.5)
    assert proc.segmenter.has_confidence and proc.unavailable == {}
    frame = proc.process(image(rgb))
    conf = frame.messages["confidence"]
    assert (conf.height, conf.width, conf.encoding) == (64, 128, "mono8")
    expected = proc.segmenter.segment(rgb).confidence[::2, ::2]  # the probabilities model's, nearest /2
    np.testing.assert_array_equal(pixels(conf), expected)
    assert pixels(conf).min() > 127  # the palette classifier is sure of every pure block


def test_an_argmax_only_model_says_why_there_is_no_confidence(tmp_path, scene):
    from support import make_palette_bundle

    argmax_only = make_palette_bundle(tmp_path / "argmax", "trainid", 64, 128, formats=("onnx_argmax",))
    proc = processor(argmax_only, id_space="trainid", outputs={"mask", "confidence"})
    assert "argmax head" in proc.unavailable["confidence"] and "--confidence" in proc.unavailable["confidence"]
    assert set(proc.process(image(scene[0])).messages) == {"mask"}  # no zeros published instead


def test_auto_id_space_is_labelid_for_cityscapes_models(bundle):
    assert processor(bundle, id_space="auto").segmenter.space.name == "labelid"
    assert processor(bundle, id_space="trainid").segmenter.space.name == "trainid"


def test_a_custom_label_set_drives_mask_ids_colours_and_label_info(tmp_path):
    """A two-class model bundled with `cityseg import` and a label YAML (ids 10 and 20)."""
    from onnx import TensorProto, helper

    from cityseg.acquisition.importer import ImportOptions, import_onnx
    from cityseg.benchmarking.fixtures import save_foreign_onnx
    from cityseg.labels import load_label_set

    weight = np.array([[[[0.02]], [[0.0]], [[0.0]]]], np.float32)  # lane where red > 127.5
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["z"], kernel_shape=[1, 1]),
             helper.make_node("Sigmoid", ["z"], ["p"])]
    save_foreign_onnx(tmp_path / "lane.onnx", nodes, [1, 3, 64, 128], "p", TensorProto.FLOAT, [1, 1, 64, 128],
                      {"w": weight, "b": np.array([-2.55], np.float32)})
    (tmp_path / "lane.yaml").write_text("name: lane\nignore_id: 255\nclasses:\n"
                                        "  - {id: 10, name: background, color: [0, 0, 0]}\n"
                                        "  - {id: 20, name: lane, color: [255, 255, 0]}\n")
    options = ImportOptions(channel_order="rgb", scale=1.0, mean=(0, 0, 0), std=(1, 1, 1), resize="area")
    import_onnx(tmp_path / "lane.onnx", tmp_path / "bundle", load_label_set(tmp_path / "lane.yaml"), options)
    rgb = np.zeros((128, 256, 3), np.uint8)
    rgb[:, 128:, 0] = 255  # right half red: lane
    proc = processor(tmp_path / "bundle", id_space="auto", outputs={"mask", "color_mask", "confidence"})
    frame = proc.process(image(rgb))
    mask = pixels(frame.messages["mask"])
    assert set(np.unique(mask[:, :128])) == {10} and set(np.unique(mask[:, 128:])) == {20}
    colour = pixels(frame.messages["color_mask"])
    assert tuple(colour[0, 200]) == (255, 255, 0) and tuple(colour[0, 10]) == (0, 0, 0)
    info = proc.label_info()
    assert [(c.class_id, c.class_name) for c in info.class_map] == [(10, "background"), (20, "lane"),
                                                                    (255, "unlabeled")]
    assert pixels(frame.messages["confidence"]).min() > 200  # sigmoid(+-2.55) is 0.93
    with pytest.raises(BundleError, match="id_space 'labelid' needs a Cityscapes model"):
        processor(tmp_path / "bundle", id_space="labelid")


def test_only_the_outputs_asked_for_are_built(bundle, scene):
    rgb, _ = scene
    proc = processor(bundle)
    frame = proc.process(image(rgb), camera_info(128, 256), outputs={"overlay", "confidence", "unknown"})
    assert set(frame.messages) == {"overlay"}  # confidence is not enabled, unknown names are ignored
    assert set(proc.process(image(rgb), camera_info(128, 256), outputs=()).messages) == set()


def cdr_factory():
    """The node's factory (CDR buffers) where rclpy is installed."""
    pytest.importorskip("rclpy", reason="the node's CDR outputs need rclpy's message classes (the ros extra)")
    from cityseg.ros.core.messages import RclpyMessages

    return RclpyMessages()


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_outputs_are_byte_identical_to_the_segmentation_results(bundle, encoding, scale):
    """What the node publishes (CDR written in place) and what the bag writes equal the Segmenter's
    own mask / colour / overlay (the pre-in-place path) for a noisy frame with mixed classes."""
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (96, 200, 3), dtype=np.uint8)  # odd sizes: real resampling both ways
    msg = image(rgb, encoding)
    config = ProcessorConfig(id_space="trainid", overlay_alpha=0.4, output_scale=scale,
                             outputs=frozenset({"mask", "color_mask", "overlay"}))
    segmenter = Segmenter(bundle, backend="onnxruntime", id_space="trainid")
    from cityseg.ros.core.images import decode_message
    decoded = decode_message(msg)
    result = segmenter.segment(decoded.frame, decoded.channel_order)
    out_size = (round(96 * scale), round(200 * scale))
    view = result.resized(out_size)
    base = decoded.color_frame()
    if scale != 1.0:
        from cityseg.preprocess import resize_image
        base = resize_image(base, *out_size, "area")
    order = "BGR" if decoded.overlay_encoding == "bgr8" else "RGB"
    expected = {"mask": view.mask, "color_mask": view.color("RGB"),
                "overlay": view.overlay(base, 0.4, order)}
    for factory in (F, cdr_factory()):
        frame = FrameProcessor(segmenter, factory, config).process(msg)
        for suffix, want in expected.items():
            got = frame.messages[suffix]
            if isinstance(got, bytes):
                got = F.typestore.deserialize_cdr(got, "sensor_msgs/msg/Image")
            assert (got.height, got.width) == out_size
            assert got.header.frame_id == "front_camera" and got.header.stamp.nanosec == 456_789
            np.testing.assert_array_equal(pixels(got), want, err_msg=f"{type(factory).__name__} {suffix}")


def test_a_batch_of_cameras_of_different_sizes_matches_one_by_one(bundle, scene):
    rgb, _ = scene
    proc = processor(bundle, id_space="trainid")
    small = np.ascontiguousarray(rgb[:64, :200])
    bad = F.image(HEADER, encode_rgb(rgb, "rgb8"))
    bad.encoding = "float64"
    from cityseg.ros.core.processor import FrameRequest

    requests = [FrameRequest(image(rgb)), FrameRequest(bad), FrameRequest(image(small, "bgr8"), None, {"mask"}),
                FrameRequest(F.image(F.header(9, 9, "left"), encode_rgb(rgb, "rgb8")))]
    results = proc.process_batch(requests)
    assert isinstance(results[1], ImageError) and "float64" in str(results[1])
    assert set(results[2].messages) == {"mask"} and results[2].output_size == (64, 200)
    assert results[3].messages["mask"].header.frame_id == "left"
    for request, result in zip(requests, results):
        if isinstance(result, ImageError):
            continue
        alone = proc.process(request.msg, None, request.outputs)
        assert set(alone.messages) == set(result.messages)
        for suffix, msg in alone.messages.items():
            np.testing.assert_array_equal(pixels(result.messages[suffix]), pixels(msg))


def test_a_sink_gets_each_output_as_soon_as_it_is_built(bundle, scene):
    rgb, mask = scene
    proc = processor(bundle, id_space="trainid")
    sent = []
    frame = proc.process(image(rgb), camera_info(128, 256), sink=lambda suffix, msg: sent.append((suffix, msg)))
    assert frame.sent and [s for s, _ in sent] == ["mask", "color_mask", "overlay", "camera_info"]
    assert all(frame.messages[s] is m for s, m in sent)  # the same messages, handed out once each
    np.testing.assert_array_equal(pixels(sent[0][1]), mask)
    assert "publish" in frame.timings and not proc.process(image(rgb)).sent

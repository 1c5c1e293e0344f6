"""Fit ``tiles``: a frame cut into input-sized tiles, one network input each, the masks stitched.

The palette classifier is per-pixel (class and confidence depend only on the pixel's colour), so a
tiled frame must give exactly what the same model gives on the whole scaled frame at once: any tile
put in the wrong place, any pixel taken from the wrong tile offset, shows as a shifted region."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cityseg.bundle import Artifact
from cityseg.bundle.card import replace_card
from cityseg.inference import Segmenter
from cityseg.preprocess import resize_image, upsample_nearest

from support import make_palette_bundle, painted_scene, palette_weights

SIDE = 64


def tiles_bundle(root, scale=1.0, formats=("onnx",), resize="area", side=SIDE):
    """The palette classifier for side x side inputs on a ``tiles`` card."""
    bundle = make_palette_bundle(root, height=side, width=side, formats=formats, resize=resize)
    bundle.card = replace_card(bundle.card, fit="tiles", tile_scale=scale)
    bundle.save()
    return bundle


def whole_frame_bundle(root, size, resize="area"):
    """The same classifier for inputs of exactly ``size`` (H, W), stretch: the reference."""
    return make_palette_bundle(root, height=size[0], width=size[1], resize=resize)


def scaled_size(frame, scale):
    return max(1, round(frame.shape[0] * scale)), max(1, round(frame.shape[1] * scale))


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.3])
def test_tiled_frame_equals_the_model_on_the_whole_scaled_frame(tmp_path, scale):
    frame, regions = painted_scene(200, 330, seed=3)
    tiled = Segmenter(tiles_bundle(tmp_path / "t", scale), backend="onnxruntime").segment(frame)
    size = scaled_size(frame, scale)
    assert tiled.classes.shape == size
    reference = Segmenter(whole_frame_bundle(tmp_path / "w", size), backend="onnxruntime").segment(frame)
    np.testing.assert_array_equal(tiled.classes, reference.classes)
    assert np.abs(tiled.confidence_low.astype(int) - reference.confidence_low).max() <= 1
    assert tiled.mask.shape == tiled.confidence.shape == frame.shape[:2]
    np.testing.assert_array_equal(tiled.mask, upsample_nearest(reference.classes, *frame.shape[:2]))
    wrong = tiled.mask != regions
    if scale == 1.0:
        assert not wrong.any()  # no resize: every pixel is its region's class
    else:  # only where a resize mixes two regions' colours: next to a region border
        border = np.zeros_like(wrong)
        border[1:] |= regions[1:] != regions[:-1]
        border[:-1] |= regions[1:] != regions[:-1]
        border[:, 1:] |= regions[:, 1:] != regions[:, :-1]
        border[:, :-1] |= regions[:, 1:] != regions[:, :-1]
        near = np.zeros_like(border)
        reach = int(np.ceil(1 / scale)) + 1
        for dy in range(-reach, reach + 1):
            for dx in range(-reach, reach + 1):
                near |= np.roll(border, (dy, dx), axis=(0, 1))
        assert not (wrong & ~near).any()
        assert wrong.mean() < 0.05


def test_argmax_model_and_a_batch_of_frames_of_two_sizes(tmp_path):
    bundle = tiles_bundle(tmp_path / "t", 1.0, formats=("onnx", "onnx_argmax"))
    scores = Segmenter(bundle, backend="onnxruntime", artifact="onnx")
    ids = Segmenter(bundle, backend="onnxruntime", artifact="onnx_argmax")
    assert not ids.has_confidence
    (a, mask_a), (b, mask_b) = painted_scene(130, 200, seed=1), painted_scene(90, 64, seed=2)
    for segmenter in (scores, ids):
        first, second = segmenter.segment_batch([a, b])
        np.testing.assert_array_equal(first.mask, mask_a)
        np.testing.assert_array_equal(second.mask, mask_b)
    assert scores.segment(b).confidence.shape == (90, 64)


def test_frame_smaller_than_a_tile_is_padded_like_letterbox(tmp_path):
    frame, regions = painted_scene(40, 150, seed=4)  # 40 rows: one row of tiles, 12 black rows above and below
    bundle = tiles_bundle(tmp_path / "t", 1.0)
    grid = bundle.card.tile_grid(frame.shape[:2])
    assert grid.rows == (-12,) and grid.cols == (0, 43, 86) and grid.count == 3
    result = Segmenter(bundle, backend="onnxruntime").segment(frame)
    assert result.classes.shape == (40, 150)
    np.testing.assert_array_equal(result.mask, regions)


def fixed_batch_one(path):
    """The ONNX at ``path`` with its batch dimension fixed to 1."""
    model = onnx.load(str(path))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(path))


def test_a_fixed_batch_one_model_runs_tile_by_tile(tmp_path):
    bundle = tiles_bundle(tmp_path / "t", 1.0)
    fixed_batch_one(bundle.artifact_path("onnx"))
    segmenter = Segmenter(bundle.path, backend="onnxruntime")
    assert segmenter.max_batch == 1
    frame, regions = painted_scene(150, 250, seed=5)
    assert len(segmenter.preprocess([frame])) == 12  # 3 x 4 tiles, sent one by one
    result = segmenter.segment(frame)
    np.testing.assert_array_equal(result.mask, regions)
    assert result.has_confidence and result.confidence.shape == frame.shape[:2]


def write_argmax_confidence_onnx(path, side):
    """The palette classifier as an argmax head with a uint8 confidence output (top probability x 255)."""
    kernel, bias = palette_weights()
    nodes = [helper.make_node("MatMul", ["image", "kernel"], ["mm"]),
             helper.make_node("Add", ["mm", "bias"], ["logits"]),
             helper.make_node("Mul", ["logits", "sharpness"], ["scaled"]),
             helper.make_node("Softmax", ["scaled"], ["p"], axis=-1),
             helper.make_node("ArgMax", ["p"], ["idx"], axis=-1, keepdims=0),
             helper.make_node("Cast", ["idx"], ["classes"], to=TensorProto.UINT8),
             helper.make_node("ReduceMax", ["p"], ["top"], axes=[-1], keepdims=0),
             helper.make_node("Mul", ["top", "full"], ["top255"]),
             helper.make_node("Cast", ["top255"], ["confidence"], to=TensorProto.UINT8)]
    graph = helper.make_graph(
        nodes, "palette_argmax_confidence",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", side, side, 3])],
        [helper.make_tensor_value_info("classes", TensorProto.UINT8, ["N", side, side]),
         helper.make_tensor_value_info("confidence", TensorProto.UINT8, ["N", side, side])],
        initializer=[numpy_helper.from_array(kernel, "kernel"), numpy_helper.from_array(bias, "bias"),
                     numpy_helper.from_array(np.array(50.0, np.float32), "sharpness"),
                     numpy_helper.from_array(np.array(255.0, np.float32), "full")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_the_models_confidence_output_is_stitched_like_the_classes(tmp_path):
    bundle = tiles_bundle(tmp_path / "t", 1.0)
    write_argmax_confidence_onnx(bundle.path / "head.onnx", SIDE)
    bundle.add_artifact("head", Artifact("head.onnx", "onnx", "argmax", confidence="confidence"))
    frame, regions = painted_scene(100, 170, seed=6)
    head = Segmenter(bundle, backend="onnxruntime", artifact="head").segment(frame)
    scores = Segmenter(bundle, backend="onnxruntime", artifact="onnx").segment(frame)
    np.testing.assert_array_equal(head.mask, regions)
    assert isinstance(head.confidence_source, np.ndarray)  # stitched from the model's output at once
    assert np.abs(head.confidence.astype(int) - scores.confidence).max() <= 1
    for c in np.unique(regions):  # one colour, one confidence: no seams, nothing from a wrong place
        assert np.unique(head.confidence[regions == c]).size == 1
    assert head.confidence.min() > 0


def test_card_preprocess_gives_one_input_per_frame_and_the_segmenter_every_tile(tmp_path):
    bundle = tiles_bundle(tmp_path / "t", 0.5, resize="nearest")
    frame, _ = painted_scene(256, 512, seed=7)  # scaled 128x256: 2 x 4 tiles, no overlap
    grid = bundle.card.tile_grid(frame.shape[:2])
    assert grid.scaled == (128, 256) and grid.rows == (0, 64) and grid.cols == (0, 64, 128, 192)
    tiles = bundle.card.network_batch([frame, frame])
    assert tiles.shape == (16, SIDE, SIDE, 3)
    one = bundle.card.preprocess([frame])
    assert one.shape == (1, SIDE, SIDE, 3)
    np.testing.assert_array_equal(one[0], tiles[1 * 4 + 2])  # the middle tile
    scaled = resize_image(frame, 128, 256, "nearest").astype(np.float32) / 255.0
    np.testing.assert_allclose(tiles[5], scaled[64:128, 64:128], atol=1e-6)


def test_frame_processor_publishes_the_stitched_mask(tmp_path):
    pytest.importorskip("rosbags")
    from cityseg.ros.core.images import encode_rgb
    from cityseg.ros.core.messages import RosbagsMessages
    from cityseg.ros.core.processor import FrameProcessor, ProcessorConfig

    factory = RosbagsMessages()
    bundle = tiles_bundle(tmp_path / "t", 1.0)
    processor = FrameProcessor.from_bundle(bundle, factory, ProcessorConfig(id_space="trainid"),
                                           backend="onnxruntime")
    frame, regions = painted_scene(120, 300, seed=8)
    message = factory.image(factory.header(1, 0, "camera"), encode_rgb(frame, "rgb8"))
    out = processor.process(message).messages["mask"]
    assert (out.height, out.width) == (120, 300)
    np.testing.assert_array_equal(out.data.reshape(out.height, out.step)[:, :out.width], regions)

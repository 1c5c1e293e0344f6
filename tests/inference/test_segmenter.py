"""Segmenter end to end on real ONNX / Keras files: exact masks at the frame's resolution."""

import numpy as np
import onnx
import pytest

from cityseg.errors import BackendUnavailable, BundleError, InputError
from cityseg.inference import Segmenter
from cityseg.inference.backends import open_backend
from cityseg.labels import class_space, convert_ids

from support import make_palette_bundle, painted_scene, write_palette_onnx


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles") / "palette"
    make_palette_bundle(root, formats=("onnx", "onnx_argmax"))
    return root


def test_mask_is_exact_at_full_resolution(bundle_dir):
    image, truth = painted_scene(1024, 2048)
    result = Segmenter(bundle_dir, backend="onnxruntime").segment(image)
    assert result.mask.shape == (1024, 2048) and result.mask.dtype == np.uint8
    assert result.classes.shape == (64, 128)
    assert (result.mask == truth).mean() > 0.99  # only block borders may move by the resize
    assert set(result.timings) == {"preprocess", "infer", "argmax"}


def test_bgr_input_gives_same_mask(bundle_dir):
    image, _ = painted_scene(128, 256)
    seg = Segmenter(bundle_dir)
    assert np.array_equal(seg.segment(image).mask, seg.segment(image[..., ::-1].copy(), "BGR").mask)


def test_argmax_head_preferred_and_identical(bundle_dir):
    image, _ = painted_scene(128, 256)
    auto = Segmenter(bundle_dir)
    assert auto.backend.artifact_key == "onnx_argmax" and auto.backend.output_kind == "argmax"
    scores = Segmenter(bundle_dir, artifact="onnx")
    assert np.array_equal(auto.segment(image).mask, scores.segment(image).mask)


def test_labelid_output_space(bundle_dir):
    image, truth = painted_scene(128, 256)
    result = Segmenter(bundle_dir, id_space="labelid").segment(image)
    expected = convert_ids(truth, class_space("trainid"), class_space("labelid"))
    assert (result.mask == expected).mean() > 0.99
    assert set(np.unique(result.mask)) <= set(range(34))


def test_colour_and_overlay(bundle_dir):
    image, truth = painted_scene(128, 256)
    result = Segmenter(bundle_dir).segment(image)
    color = result.color()
    assert color.shape == image.shape
    assert (np.all(color == image, axis=-1)).mean() > 0.99  # painted in palette colours
    over = result.overlay(image, alpha=1.0)
    assert np.array_equal(over, color)
    assert np.array_equal(result.color("BGR"), color[..., ::-1])


def test_batch_of_different_sizes(bundle_dir):
    a, _ = painted_scene(100, 300, seed=1)
    b, _ = painted_scene(64, 64, seed=2)
    results = Segmenter(bundle_dir).segment_batch([a, b])
    assert [r.mask.shape for r in results] == [(100, 300), (64, 64)]


def test_tensorflow_backend_matches_onnx(tmp_path):
    root = tmp_path / "b"
    make_palette_bundle(root, formats=("onnx", "keras"))
    image, _ = painted_scene(128, 256, seed=3)
    tf_mask = Segmenter(root, backend="tensorflow").segment(image).mask
    ort_mask = Segmenter(root, backend="onnxruntime").segment(image).mask
    assert np.array_equal(tf_mask, ort_mask)


def test_class_count_mismatch_is_detected(tmp_path):
    root = tmp_path / "b"
    make_palette_bundle(root)
    write_palette_onnx(root / "model.onnx", "labelid", 64, 128)  # 34 classes, card says 19
    with pytest.raises(BundleError, match="outputs 34 classes but the card declares 19"):
        Segmenter(root).segment(painted_scene(64, 128)[0])


def test_input_size_mismatch_is_detected(tmp_path):
    root = tmp_path / "b"
    make_palette_bundle(root)
    write_palette_onnx(root / "model.onnx", "trainid", 32, 32)
    with pytest.raises(BundleError, match="does not match the card's 64x128x3"):
        Segmenter(root)


def test_corrupt_model_file(tmp_path):
    root = tmp_path / "b"
    make_palette_bundle(root)
    (root / "model.onnx").write_bytes(b"garbage" * 10)
    with pytest.raises(BundleError, match="ONNX Runtime cannot load this model"):
        Segmenter(root)


def test_missing_format_explains_how_to_get_it(tmp_path):
    root = tmp_path / "b"
    make_palette_bundle(root)
    with pytest.raises(BackendUnavailable, match="no keras model"):
        Segmenter(root, backend="tensorflow")
    with pytest.raises(BackendUnavailable, match="tensorflow: .*no keras model"):
        # auto finds onnxruntime normally; remove the onnx artifact to exhaust the list
        bundle = Segmenter(root).bundle
        bundle.card.artifacts.clear()
        open_backend(bundle, "auto")


def test_bad_frame_is_rejected(bundle_dir):
    with pytest.raises(InputError, match="1, 3 or 4 channels"):
        Segmenter(bundle_dir).segment(np.zeros((10, 10, 2), np.uint8))


def test_onnx_model_is_a_real_file(bundle_dir):
    model = onnx.load(str(bundle_dir / "model.onnx"))
    assert [n.op_type for n in model.graph.node][-1] == "Softmax"


def fixed_batch_bundle(root, batch: int):
    """The palette bundle with its ONNX's batch dimension fixed at ``batch`` (as imported models often are)."""
    bundle = make_palette_bundle(root)
    model = onnx.load(str(root / "model.onnx"))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = batch
    onnx.save(model, str(root / "model.onnx"))
    return bundle


@pytest.mark.parametrize("fixed", [1, 2])
def test_batches_larger_than_a_fixed_batch_are_split(tmp_path, fixed):
    frames = [painted_scene(128, 256, seed=i) for i in range(3)]
    segmenter = Segmenter(fixed_batch_bundle(tmp_path / "fixed", fixed), backend="onnxruntime")
    assert segmenter.max_batch == fixed
    results = segmenter.segment_batch([rgb for rgb, _ in frames])  # 3 frames: split (and padded) per call
    for result, (_, truth) in zip(results, frames):
        np.testing.assert_array_equal(result.mask, truth)
        assert result.confidence.shape == (128, 256)


def test_a_dynamic_batch_has_no_limit(bundle_dir):
    assert Segmenter(bundle_dir, backend="onnxruntime").max_batch is None

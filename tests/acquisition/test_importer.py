"""`cityseg import` on ONNX files that did not come from our Keras exporter (built here with
onnx.helper), each checked pixel by pixel against an independent numpy reference of the same
preprocessing, upsampling, argmax and confidence (no cityseg preprocess/postprocess code)."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from cityseg.acquisition.importer import ImportOptions, import_onnx
from cityseg.benchmarking.fixtures import MMSEG_MEAN, MMSEG_STD, save_foreign_onnx
from cityseg.bundle import Bundle
from cityseg.cli import main
from cityseg.errors import BundleError, InputError
from cityseg.inference import ConfidenceUnavailable, Segmenter
from cityseg.labels import class_space, load_label_set

from support import FOREIGN_H as H
from support import FOREIGN_W as W
from support import conv_weights

BINARY_YAML = """\
name: lane
ignore_id: 255
classes:
  - {id: 10, name: background, color: [0, 0, 0]}
  - {id: 20, name: lane, color: [255, 255, 0]}
"""


def frame(seed=1, height=H, width=W):
    """A frame at the network size (the resize is then the identity, for an exact reference)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height // 8, width // 8, 3))
    return np.clip(np.kron(base, np.ones((8, 8, 1))) + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)


# --- the independent reference ----------------------------------------------------------------

def ref_normalize(rgb, order, scale, mean_rgb, std_rgb):
    """(pixel * scale - mean) / std in the model's channel order -> 3xHxW float64."""
    x = rgb.astype(np.float64)
    mean, std = np.array(mean_rgb), np.array(std_rgb)
    if order == "bgr":
        x, mean, std = x[..., ::-1], mean[::-1], std[::-1]
    return ((x * scale - mean) / std).transpose(2, 0, 1)


def ref_conv(x, weight, bias, stride):
    """Conv with kernel == stride (patchify), no padding: 3xHxW -> CxH/sxW/s."""
    c, h, w = x.shape
    patches = x.reshape(c, h // stride, stride, w // stride, stride)
    return np.einsum("ciajb,kcab->kij", patches, weight.astype(np.float64)) + bias[:, None, None]


def ref_bilinear(scores, height, width):
    """CxhxW -> CxHxW, half-pixel centres, edges clamped (PyTorch align_corners=False)."""
    def axis(n_out, n_in):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, None)
        low = np.minimum(np.floor(src).astype(int), n_in - 1)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, src - low
    y0, y1, fy = axis(height, scores.shape[1])
    x0, x1, fx = axis(width, scores.shape[2])
    rows = scores[:, y0] * (1 - fy)[None, :, None] + scores[:, y1] * fy[None, :, None]
    return rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx


def ref_softmax_top(logits):
    e = np.exp(logits - logits.max(axis=0))
    return np.rint(255 * (e / e.sum(axis=0)).max(axis=0)).astype(np.uint8)


def assert_same(result, ref_classes, ref_conf, scores=None):
    """Exact mask, confidence within 1 step; near-tie pixels (top-2 within 1e-4) excused."""
    ok = np.ones(ref_classes.shape, bool)
    if scores is not None:
        top2 = np.sort(scores, axis=0)[-2:]
        ok = (top2[1] - top2[0]) > 1e-4
        assert ok.mean() > 0.99
    assert np.array_equal(result.mask[ok], ref_classes[ok])
    if ref_conf is not None:
        assert np.abs(result.confidence.astype(int) - ref_conf.astype(int))[ok].max() <= 1


def options(**kw):
    base = dict(channel_order="rgb", scale=1.0, mean=MMSEG_MEAN, std=MMSEG_STD, resize="linear")
    return ImportOptions(**{**base, **kw})


# --- the models ---------------------------------------------------------------------------------

def test_nchw_bgr_logits_at_one_eighth(tmp_path):
    weight, bias = conv_weights(19, 8)
    path = save_foreign_onnx(tmp_path / "pidnet.onnx", [
        helper.make_node("Conv", ["input", "w", "b"], ["logits"], kernel_shape=[8, 8], strides=[8, 8])],
        [1, 3, H, W], "logits", TensorProto.FLOAT, [1, 19, H // 8, W // 8], {"w": weight, "b": bias})
    bundle = import_onnx(path, tmp_path / "b", load_label_set("cityscapes"), options(channel_order="bgr"))
    card, artifact = bundle.card, bundle.card.artifacts["onnx"]
    assert (card.input_layout, card.channel_order, artifact.output, artifact.output_layout) == \
        ("NCHW", "BGR", "logits", "NCHW")
    assert artifact.details["trial"]["output_stride"] == 8
    assert card.normalization.mean == MMSEG_MEAN[::-1]  # stored in the model's channel order
    image = frame()
    segmenter = Segmenter(tmp_path / "b")
    assert segmenter.has_confidence
    result = segmenter.segment(image)
    logits = ref_bilinear(ref_conv(ref_normalize(image, "bgr", 1.0, MMSEG_MEAN, MMSEG_STD), weight, bias, 8), H, W)
    assert_same(result, logits.argmax(axis=0), ref_softmax_top(logits), logits)
    # a frame of another size: the mask goes to the frame's size, nearest
    big = Segmenter(tmp_path / "b").segment(np.kron(image, np.ones((2, 2, 1), np.uint8)))
    assert big.mask.shape == (2 * H, 2 * W) and big.confidence.shape == (2 * H, 2 * W)


def test_nhwc_probabilities_full_resolution(tmp_path):
    rng = np.random.default_rng(3)
    kernel, bias = rng.normal(0, 1, (3, 19)).astype(np.float32), rng.normal(0, 1, 19).astype(np.float32)
    path = save_foreign_onnx(tmp_path / "nhwc.onnx", [
        helper.make_node("MatMul", ["input", "k"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["z"]),
        helper.make_node("Softmax", ["z"], ["probs"], axis=-1)],
        ["batch", H, W, 3], "probs", TensorProto.FLOAT, ["batch", H, W, 19], {"k": kernel, "b": bias})
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    import_onnx(path, tmp_path / "b", class_space("trainid"), options(scale=1 / 255, mean=mean, std=std))
    artifact = Bundle.load(tmp_path / "b").card.artifacts["onnx"]
    assert (artifact.output, artifact.output_layout) == ("probabilities", "NHWC")
    image = frame(5)
    result = Segmenter(tmp_path / "b").segment(image)
    z = np.einsum("chw,ck->khw", ref_normalize(image, "rgb", 1 / 255, mean, std), kernel) + bias[:, None, None]
    assert_same(result, z.argmax(axis=0), ref_softmax_top(z), z)


def test_argmax_int64_output_at_stride_four(tmp_path):
    weight, bias = conv_weights(19, 4, seed=7)
    path = save_foreign_onnx(tmp_path / "mmseg_argmax.onnx", [
        helper.make_node("Conv", ["input", "w", "b"], ["logits"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("ArgMax", ["logits"], ["seg"], axis=1, keepdims=1)],
        [1, 3, H, W], "seg", TensorProto.INT64, [1, 1, H // 4, W // 4], {"w": weight, "b": bias})
    import_onnx(path, tmp_path / "b", class_space("trainid"), options())
    segmenter = Segmenter(tmp_path / "b")
    assert segmenter.backend.output_kind == "argmax" and not segmenter.has_confidence
    assert "argmax head" in segmenter.confidence_unavailable_reason
    image = frame(9)
    result = segmenter.segment(image)
    logits = ref_conv(ref_normalize(image, "rgb", 1.0, MMSEG_MEAN, MMSEG_STD), weight, bias, 4)
    expected = np.repeat(np.repeat(logits.argmax(axis=0), 4, axis=0), 4, axis=1)  # nearest x4
    assert np.array_equal(result.mask, expected)
    assert not result.has_confidence
    with pytest.raises(ConfidenceUnavailable, match="argmax head"):
        _ = result.confidence


def test_one_channel_sigmoid_is_a_two_class_model_with_custom_ids(tmp_path):
    weight, bias = conv_weights(1, 1, seed=11)
    weight *= 40
    path = save_foreign_onnx(tmp_path / "lane.onnx", [
        helper.make_node("Conv", ["input", "w", "b"], ["z"], kernel_shape=[1, 1]),
        helper.make_node("Sigmoid", ["z"], ["p"])],
        [1, 3, H, W], "p", TensorProto.FLOAT, [1, 1, H, W], {"w": weight, "b": bias})
    labels = tmp_path / "lane.yaml"
    labels.write_text(BINARY_YAML)
    import_onnx(path, tmp_path / "b", load_label_set(labels), options())
    bundle = Bundle.load(tmp_path / "b")
    assert bundle.card.class_space == "custom" and bundle.card.artifacts["onnx"].output == "sigmoid"
    segmenter = Segmenter(bundle)
    assert segmenter.space.ids == (10, 20) and segmenter.space.names == ("background", "lane")
    image = frame(13)
    result = segmenter.segment(image)
    z = ref_conv(ref_normalize(image, "rgb", 1.0, MMSEG_MEAN, MMSEG_STD), weight, bias, 1)[0]
    p = 1 / (1 + np.exp(-z))
    ok = np.abs(p - 0.5) > 1e-4
    assert np.array_equal(result.mask[ok], np.where(p > 0.5, 20, 10)[ok])
    assert np.abs(result.confidence.astype(int) - np.rint(255 * np.maximum(p, 1 - p)))[ok].max() <= 1
    assert np.array_equal(result.color()[result.mask == 20][:1], [[255, 255, 0]])


def dynamic_model(tmp_path, classes=19):
    weight, bias = conv_weights(classes, 1, seed=17)
    return save_foreign_onnx(tmp_path / "dynamic.onnx", [
        helper.make_node("Conv", ["input", "w", "b"], ["logits"], kernel_shape=[1, 1])],
        ["n", 3, "h", "w"], "logits", TensorProto.FLOAT, ["n", classes, "h", "w"],
        {"w": weight, "b": bias}), weight, bias


def test_dynamic_size_model_needs_and_uses_input_size(tmp_path):
    path, weight, bias = dynamic_model(tmp_path)
    with pytest.raises(InputError, match="dynamic height/width.*--input-size"):
        import_onnx(path, tmp_path / "b", class_space("trainid"), options())
    import_onnx(path, tmp_path / "b", class_space("trainid"), options(input_size=(H, W)))
    card = Bundle.load(tmp_path / "b").card
    assert (card.input_height, card.input_width) == (H, W)
    image = frame(21)
    result = Segmenter(tmp_path / "b").segment(image)
    logits = ref_conv(ref_normalize(image, "rgb", 1.0, MMSEG_MEAN, MMSEG_STD), weight, bias, 1)
    assert_same(result, logits.argmax(axis=0), ref_softmax_top(logits), logits)


# --- refusals -------------------------------------------------------------------------------------

def test_class_count_that_disagrees_with_the_labels_is_refused(tmp_path):
    path, _, _ = dynamic_model(tmp_path)
    labels = tmp_path / "lane.yaml"
    labels.write_text(BINARY_YAML)
    with pytest.raises(InputError, match="outputs 19 classes, the label set 'lane' has 2"):
        import_onnx(path, tmp_path / "b", load_label_set(labels), options(input_size=(H, W)))
    assert not (tmp_path / "b").exists()


def test_nan_output_is_refused(tmp_path):
    path = save_foreign_onnx(tmp_path / "nan.onnx", [helper.make_node("Log", ["input"], ["out"])],
                      [1, 3, H, W], "out", TensorProto.FLOAT, [1, 3, H, W], {})
    with pytest.raises(InputError, match="NaN"):
        import_onnx(path, tmp_path / "b", load_label_set("cityscapes"), options(output="logits"))


def test_wrong_rank_is_refused(tmp_path):
    path = save_foreign_onnx(tmp_path / "rank.onnx", [helper.make_node("ReduceMean", ["input"], ["out"], axes=[1],
                                                                keepdims=0)],
                      [1, 3, H, W], "out", TensorProto.FLOAT, [1, H, W], {}, opset=13)
    with pytest.raises(InputError, match="expected rank 4"):
        import_onnx(path, tmp_path / "b", class_space("trainid"), options(output="logits"))


def test_missing_preprocessing_options_are_named(tmp_path):
    path, _, _ = dynamic_model(tmp_path)
    with pytest.raises(InputError, match=r"--channel-order rgb\|bgr, --scale S.*--resize") as info:
        import_onnx(path, tmp_path / "b", class_space("trainid"), ImportOptions(input_size=(H, W)))
    assert "--input-size" not in str(info.value)
    with pytest.raises(InputError, match=r"--resize area\|linear\|nearest, --input-size HxW \(the model's"):
        import_onnx(path, tmp_path / "b", class_space("trainid"),
                    ImportOptions(**{**options().__dict__, "resize": None}))


def test_cli_import_then_segment_writes_confidence(tmp_path, capsys):
    path, _, _ = dynamic_model(tmp_path)
    bundle = tmp_path / "bundle"
    assert main(["import", str(path), "--out", str(bundle), "--labels", "cityscapes", "--input-size", "64x128",
                 "--channel-order", "rgb", "--mean", "123.675,116.28,103.53", "--std", "58.395,57.12,57.375",
                 "--resize", "linear"]) == 0
    assert "NCHW 64x128 RGB, logits output" in capsys.readouterr().out
    card = Bundle.load(bundle).card
    assert card.resize == "bilinear" and card.normalization.scale == 1.0
    assert main(["import", str(path), "--out", str(bundle), "--labels", "cityscapes"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["import", str(path), "--out", str(tmp_path / "other"), "--labels", "cityscapes",
                 "--input-size", "64x128"]) == 2
    assert "--channel-order" in capsys.readouterr().err


def test_segment_cli_writes_the_custom_label_sets_ids(tmp_path, capsys):
    import cv2

    weight, bias = conv_weights(1, 1, seed=11)
    path = save_foreign_onnx(tmp_path / "lane.onnx", [
        helper.make_node("Conv", ["input", "w", "b"], ["z"], kernel_shape=[1, 1]),
        helper.make_node("Sigmoid", ["z"], ["p"])],
        [1, 3, H, W], "p", TensorProto.FLOAT, [1, 1, H, W], {"w": weight * 40, "b": bias})
    labels = tmp_path / "lane.yaml"
    labels.write_text(BINARY_YAML)
    import_onnx(path, tmp_path / "b", load_label_set(labels), options())
    src = tmp_path / "f.png"
    cv2.imwrite(str(src), frame(13))
    assert main(["segment", str(src), "--model", str(tmp_path / "b"), "--out", str(tmp_path / "o")]) == 0
    ids = cv2.imread(str(tmp_path / "o" / "f_classIds.png"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(ids)) == {10, 20} and (tmp_path / "o" / "f_confidence.png").is_file()
    assert main(["segment", str(src), "--model", str(tmp_path / "b"), "--out", str(tmp_path / "o2"),
                 "--id-space", "labelid"]) == 2
    assert "has its own label set (lane)" in capsys.readouterr().err


def test_weights_in_an_external_file_end_up_inside_the_bundles_onnx(tmp_path):
    path, weight, bias = dynamic_model(tmp_path)
    model = onnx.load(str(path))
    external = tmp_path / "ext" / "seg.onnx"
    external.parent.mkdir()
    onnx.save(model, str(external), save_as_external_data=True, location="seg.weights", size_threshold=0)
    assert (tmp_path / "ext" / "seg.weights").is_file()
    bundle = import_onnx(external, tmp_path / "b", class_space("trainid"), options(input_size=(H, W)))
    (tmp_path / "ext" / "seg.weights").unlink()  # the bundle must not need it
    stored = onnx.load(str(bundle.artifact_path("onnx")), load_external_data=False)
    assert not any(t.external_data for t in stored.graph.initializer)
    image = frame(21)
    logits = ref_conv(ref_normalize(image, "rgb", 1.0, MMSEG_MEAN, MMSEG_STD), weight, bias, 1)
    assert_same(Segmenter(bundle).segment(image), logits.argmax(axis=0), ref_softmax_top(logits), logits)


def test_missing_external_weights_are_named(tmp_path):
    path, _, _ = dynamic_model(tmp_path)
    onnx.save(onnx.load(str(path)), str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    (tmp_path / "w.bin").unlink()
    with pytest.raises(InputError, match="external weight files are missing"):
        import_onnx(path, tmp_path / "b", class_space("trainid"), options(input_size=(H, W)))


def test_an_empty_or_directory_onnx_is_named_as_such(tmp_path, capsys):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert main(["import", str(empty), "--out", str(tmp_path / "b"), "--labels", "cityscapes"]) == 2
    err = capsys.readouterr().err
    assert f"{empty}: empty file (0 bytes)" in err and "0 inputs" not in err and err.count("\n") == 1
    (tmp_path / "dir.onnx").mkdir()
    assert main(["import", str(tmp_path / "dir.onnx"), "--out", str(tmp_path / "b"), "--labels", "cityscapes"]) == 2
    assert "is a directory, not a file; give the ONNX or TFLite file itself" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


# --- no data loss (issue 33: 1, 2) -----------------------------------------------------------------

def files_of(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_folder_that_is_not_a_bundle_is_refused_and_the_users_files_are_kept(tmp_path, capsys):
    path, _, _ = dynamic_model(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.onnx").write_bytes(b"the user's own graph")
    args = ["import", str(path), "--out", str(mine), "--labels", "cityscapes", "--input-size", "64x128",
            "--channel-order", "rgb", "--mean", "123.675,116.28,103.53", "--std", "58.395,57.12,57.375",
            "--resize", "linear"]
    for extra in ([], ["--force"]):
        assert main(args + extra) == 2
        err = capsys.readouterr().err
        assert "exists and is not a model bundle (it holds model.onnx)" in err and err.count("\n") == 1
        assert files_of(mine) == {"model.onnx": b"the user's own graph"}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(args[:3] + [str(empty)] + args[4:]) == 0  # an empty folder loses nothing
    assert (empty / "model.json").is_file()


def test_reimporting_a_bundles_own_graph_is_refused_and_the_bundle_still_works(tmp_path, capsys):
    path, _, _ = dynamic_model(tmp_path)
    bundle = tmp_path / "b"
    import_onnx(path, bundle, class_space("trainid"), options(input_size=(H, W)))
    before = files_of(bundle)
    assert main(["import", str(bundle / "model.onnx"), "--out", str(bundle), "--force", "--labels", "cityscapes",
                 "--channel-order", "rgb", "--mean", "1,2,3", "--std", "58.395,57.12,57.375",
                 "--resize", "linear"]) == 2
    err = capsys.readouterr().err
    assert "lies inside --out" in err and "copy the file out of that folder first" in err
    assert files_of(bundle) == before
    Segmenter(bundle).segment(frame(3))  # verified against its card: still whole


def test_a_failed_forced_import_leaves_the_old_bundle_untouched(tmp_path):
    path, _, _ = dynamic_model(tmp_path)
    bundle = tmp_path / "b"
    import_onnx(path, bundle, class_space("trainid"), options(input_size=(H, W)))
    before = files_of(bundle)
    labels = tmp_path / "lane.yaml"
    labels.write_text(BINARY_YAML)
    with pytest.raises(InputError, match="outputs 19 classes"):  # refused by the trial run, after the card
        import_onnx(path, bundle, load_label_set(labels), options(input_size=(H, W)), force=True)
    assert files_of(bundle) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "dynamic.onnx", "lane.yaml"]  # no staging left


def test_force_replaces_only_the_bundles_own_files(tmp_path):
    from cityseg.bundle import Artifact

    path, _, _ = dynamic_model(tmp_path)
    bundle = tmp_path / "b"
    old = import_onnx(path, bundle, class_space("trainid"), options(input_size=(H, W)))
    (bundle / "old_fp16.onnx").write_bytes((bundle / "model.onnx").read_bytes())
    old.add_artifact("onnx_fp16", Artifact("old_fp16.onnx", "onnx", "logits", {}, output_layout="NCHW"))
    (bundle / "notes.txt").write_text("mine")
    new = import_onnx(path, bundle, class_space("trainid"), options(input_size=(H, W), mean=(1.0, 2.0, 3.0)),
                      force=True)
    assert new.card.normalization.mean == (1.0, 2.0, 3.0) and list(new.card.artifacts) == ["onnx"]
    assert sorted(p.name for p in bundle.iterdir()) == ["model.json", "model.onnx", "notes.txt"]
    assert (bundle / "notes.txt").read_text() == "mine"


def test_a_file_of_the_new_bundles_name_that_the_old_card_does_not_list_is_kept(tmp_path):
    import json

    path, _, _ = dynamic_model(tmp_path)
    bundle = tmp_path / "b"
    import_onnx(path, bundle, class_space("trainid"), options(input_size=(H, W)))
    card = json.loads((bundle / "model.json").read_text())
    card["artifacts"]["onnx"]["path"] = "other.onnx"
    (bundle / "model.onnx").rename(bundle / "other.onnx")
    (bundle / "model.json").write_text(json.dumps(card))
    (bundle / "model.onnx").write_bytes(b"not the bundle's")
    before = files_of(bundle)
    with pytest.raises(BundleError, match=r"model.onnx: is not a file of the bundle there"):
        import_onnx(path, bundle, class_space("trainid"), options(input_size=(H, W)), force=True)
    assert files_of(bundle) == before


def test_missing_label_yaml_is_named_as_missing(tmp_path, capsys):
    path, _, _ = dynamic_model(tmp_path)
    assert main(["import", str(path), "--out", str(tmp_path / "b"), "--labels", str(tmp_path / "nonexist.yaml")]) == 2
    err = capsys.readouterr().err
    assert "nonexist.yaml: no such file; check the path" in err and err.count("\n") == 1


def test_channel_order_is_accepted_in_any_case_like_exports_camera_order(tmp_path, capsys):
    path, _, _ = dynamic_model(tmp_path)
    assert main(["import", str(path), "--out", str(tmp_path / "b"), "--labels", "cityscapes", "--input-size",
                 "64x128", "--channel-order", "BGR", "--mean", "123.675,116.28,103.53", "--std",
                 "58.395,57.12,57.375", "--resize", "linear"]) == 0
    assert Bundle.load(tmp_path / "b").card.channel_order == "BGR"


def test_a_bare_out_name_is_the_folder_written_not_a_bundle_of_that_name_in_models(tmp_path, monkeypatch):
    path, _, _ = dynamic_model(tmp_path)
    monkeypatch.chdir(tmp_path)
    import_onnx(path, Path("models") / "b", class_space("trainid"), options(input_size=(H, W)), name="in-models")
    bundle = import_onnx(path, Path("b"), class_space("trainid"), options(input_size=(H, W)), name="here")
    assert bundle.card.name == "here" and bundle.path.resolve() == (tmp_path / "b").resolve()

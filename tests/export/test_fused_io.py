"""Fused I/O (`cityseg export --fused-io`): real ONNX graphs composed around real models, checked
against the unfused path on street frames, run through the Segmenter and the CLI."""

import json
import logging

import cv2
import numpy as np
import onnx
import pytest

from cityseg.bundle import Bundle, CameraInput, replace_card
from cityseg.cli import main
from cityseg.errors import BundleError, InputError
from cityseg.export import ExportError, ParityError, fused
from cityseg.export.fused_io import export_fused
from cityseg.export.tensorrt_compat import check_model
from cityseg.inference import Segmenter
from cityseg.preprocess import Normalization
from cityseg.tensorrt.runtime import runtime_unavailable_reason

from support import make_palette_bundle, painted_scene

CAMERA = CameraInput(128, 256)
"""Twice the palette bundle's 64x128 network size."""


def street(height, width, seed=0):
    from cityseg.synthetic.dataset import render_scene

    return render_scene(np.random.default_rng(seed), height, width, t=float(seed))[0]


@pytest.fixture
def palette(tmp_path):
    return make_palette_bundle(tmp_path / "palette", formats=("onnx",))


def test_fused_masks_are_the_unfused_masks(palette):
    key, report = export_fused(palette, CAMERA, confidence=True)
    assert key == "onnx_fused_256x128" and report.passed and report.frame_source == "synth"
    assert report.raw_agreement == 1.0  # integer-factor area: the box mean, rounded as OpenCV does
    artifact = Bundle.load(palette.path).card.artifacts[key]
    assert (artifact.io, artifact.camera, artifact.output, artifact.confidence) == ("fused", CAMERA, "argmax",
                                                                                     "confidence")
    assert artifact.details["input"] == {"name": "frame", "shape": ["batch", 128, 256, 3], "dtype": "uint8"}
    assert artifact.details["output"] == {"name": "classes", "shape": ["batch", 128, 256], "dtype": "uint8"}
    assert artifact.details["resize"]["fidelity"] == "exact" and artifact.details["source_artifact"] == "onnx"
    assert artifact.details["tensorrt_check"] == [] and check_model(palette.path / artifact.path) == []
    fused_seg, plain = Segmenter(palette, artifact=key), Segmenter(palette, artifact="onnx")
    assert fused_seg.fused_io and fused_seg.camera_size == (128, 256) and not plain.fused_io
    frames = [street(128, 256, seed=s) for s in range(3)] + [painted_scene(128, 256, seed=4)[0]]
    for a, b in zip(fused_seg.segment_batch(frames), plain.segment_batch(frames)):
        assert a.classes.shape == (128, 256) and a.io == "fused" and b.io == "tensor"
        assert np.array_equal(a.mask, b.mask) and np.array_equal(a.color(), b.color())
        assert np.abs(a.confidence.astype(int) - b.confidence.astype(int)).max() <= 2
        assert set(a.timings) == {"preprocess", "infer", "argmax"}


@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_channel_orders_of_camera_and_card(tmp_path, order):
    bundle = make_palette_bundle(tmp_path / "p", formats=("onnx",))
    bundle.card.channel_order = "BGR"  # the model wants BGR; the camera sends `order`
    bundle.save()
    key, report = export_fused(bundle, CameraInput(128, 256, order))
    assert report.raw_agreement == 1.0 and key.endswith("_bgr") == (order == "BGR")
    frames = [street(128, 256, seed=1), painted_scene(128, 256, seed=2)[0]]
    given = [f[..., ::-1].copy() for f in frames] if order == "BGR" else frames
    grey = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    fused_seg, plain = Segmenter(bundle, artifact=key), Segmenter(bundle, artifact="onnx")
    for frame, frame_order in [(given[0], order), (given[1], order), (frames[0], "RGB"), (grey, "RGB"),
                               (cv2.cvtColor(frames[1], cv2.COLOR_RGB2BGRA), "BGR")]:
        assert np.array_equal(fused_seg.segment(frame, frame_order).mask, plain.segment(frame, frame_order).mask)


@pytest.mark.parametrize("source, size", [((64, 128), (256, 512)), ((64, 128), (100, 300)),
                                          ((128, 256), (1080, 1920)), ((100, 300), (64, 128)),
                                          ((64, 128), (64, 200))])
def test_nearest_resize_is_opencvs_inter_nearest_exact(source, size):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    b = fused.GraphBuilder(17)
    b.node("Identity", [b.nearest("x", source, size, "up")], output="y")
    graph = helper.make_graph(b.nodes, "nearest", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    ids = np.random.default_rng(0).integers(0, 19, source).astype(np.uint8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": ids[None, None].astype(np.float32)})[0][0, 0].astype(np.uint8)
    assert np.array_equal(got, cv2.resize(ids, size[::-1], interpolation=cv2.INTER_NEAREST_EXACT))


def test_frames_of_another_size_run_unfused_with_one_warning(palette, caplog):
    key, _ = export_fused(palette, CAMERA)
    segmenter, plain = Segmenter(palette, artifact=key), Segmenter(palette, artifact="onnx")
    frame = street(100, 300, seed=3)
    with caplog.at_level(logging.WARNING):
        results = [segmenter.segment(frame) for _ in range(2)]
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "takes 256x128 frames; 300x100 frames run through" in caplog.records[0].message
    assert all(r.io == "tensor" and np.array_equal(r.mask, plain.segment(frame).mask) for r in results)


def test_wrong_size_without_an_unfused_model_is_refused(palette):
    key, _ = export_fused(palette, CAMERA)
    card = json.loads((palette.path / "model.json").read_text())
    del card["artifacts"]["onnx"]
    (palette.path / "model.json").write_text(json.dumps(card))
    segmenter = Segmenter(palette.path)  # the fused model is all there is: the automatic pick takes it
    assert segmenter.backend.artifact_key == key
    assert segmenter.segment(street(128, 256)).mask.shape == (128, 256)
    with pytest.raises(InputError, match=r"takes 256x128 frames, got 300x100.*--fused-io --camera-size 300x100"):
        segmenter.segment(street(100, 300))


def test_automatic_pick_does_not_prefer_fused(palette):
    key, _ = export_fused(palette, CAMERA)
    assert Segmenter(palette).backend.artifact_key == "onnx"
    assert Segmenter(palette, artifact=key).backend.artifact_key == key
    assert Segmenter(palette, io="fused").backend.artifact_key == key


def test_card_round_trip_old_cards_and_invalid_fused_entries(palette):
    key, _ = export_fused(palette, CameraInput(128, 256, "BGR"))
    raw = json.loads((palette.path / "model.json").read_text())
    assert raw["artifacts"][key]["io"] == "fused"
    assert raw["artifacts"][key]["camera"] == {"height": 128, "width": 256, "channel_order": "BGR"}
    for entry in raw["artifacts"].values():  # a card written before fused I/O existed
        if entry["io"] == "tensor":
            del entry["io"], entry["camera"]
    del raw["artifacts"][key]
    (palette.path / "model.json").write_text(json.dumps(raw))
    old = Bundle.load(palette.path).card.artifacts["onnx"]
    assert old.io == "tensor" and old.camera is None and old.frame_shape(Bundle.load(palette.path).card) == (64, 128, 3)
    raw["artifacts"]["broken"] = {"path": "model.onnx", "format": "onnx", "output": "argmax", "io": "fused"}
    (palette.path / "model.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="needs its 'camera' size"):
        Bundle.load(palette.path)


def test_imported_nchw_strided_bundle(tmp_path):
    from cityseg.benchmarking.fixtures import make_imported_bundle

    bundle = Bundle.load(make_imported_bundle(tmp_path, 64, 128))  # NCHW logits at 1/8, batch 1, bilinear
    bundle.card.resize = "area"
    bundle.save()
    key, report = export_fused(bundle, CameraInput(128, 256), confidence=True)
    assert report.passed and report.raw_agreement == 1.0
    fused_seg, plain = Segmenter(bundle, artifact=key), Segmenter(bundle, artifact="onnx")
    frames = [street(128, 256, seed=s) for s in range(2)]
    for a, b in zip(fused_seg.segment_batch(frames), plain.segment_batch(frames)):  # batch 2 over a batch-1 model
        assert np.array_equal(a.mask, b.mask)
        assert np.mean(np.abs(a.confidence.astype(int) - b.confidence.astype(int)) <= 2) >= 0.999
    assert onnx.load(str(bundle.artifact_path(key))).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


def test_keras_export_then_fused_argmax_source(tmp_path):
    from cityseg.export import export_onnx

    bundle = make_palette_bundle(tmp_path / "k", formats=("keras",))
    export_onnx(bundle, argmax_head=True, confidence=True)  # only the argmax head with its confidence
    key, report = export_fused(bundle, CAMERA, confidence=True)
    artifact = bundle.card.artifacts[key]
    assert report.passed and artifact.details["source_artifact"] == "onnx_argmax"
    assert artifact.details["confidence_check"]["within_tolerance"] >= 0.999
    assert check_model(bundle.path / artifact.path) == []  # the source's uint8 casts are not inside
    frame = street(128, 256, seed=5)
    assert np.array_equal(Segmenter(bundle, artifact=key).segment(frame).mask,
                          Segmenter(bundle, artifact="onnx_argmax").segment(frame).mask)


def test_broken_graph_is_refused_with_the_figures(palette, monkeypatch):
    real = fused.preprocess_nodes

    def no_normalisation(b, card, camera, plan, target):
        real(b, replace_card(card, normalization=Normalization(scale=1.0)), camera, plan, target)

    monkeypatch.setattr(fused, "preprocess_nodes", no_normalisation)
    before = (palette.path / "model.json").read_text()
    with pytest.raises(ParityError, match=r"model_fused_256x128\.onnx: refused.*argmax agreement"):
        export_fused(palette, CAMERA)
    assert not (palette.path / "model_fused_256x128.onnx").exists()
    assert (palette.path / "model.json").read_text() == before


def test_argmax_source_without_confidence_cannot_give_one(tmp_path):
    bundle = make_palette_bundle(tmp_path / "a", formats=("onnx_argmax",))
    with pytest.raises(ExportError, match="without a confidence output"):
        export_fused(bundle, CAMERA, confidence=True)


def test_cli_writes_and_refuses_overwrite(palette, capsys):
    args = ["export", str(palette.path), "--fused-io", "--camera-size", "256x128"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "model_fused_256x128.onnx" in out and "- ok" in out
    written = (palette.path / "model_fused_256x128.onnx").stat().st_mtime_ns
    assert main(args) != 0
    assert "already exists in the bundle; pass --force" in capsys.readouterr().err
    assert (palette.path / "model_fused_256x128.onnx").stat().st_mtime_ns == written
    assert main(args + ["--force"]) == 0
    assert main(["export", str(palette.path), "--fused-io"]) != 0
    assert "--camera-size WIDTHxHEIGHT" in capsys.readouterr().err


@pytest.mark.skipif(bool(runtime_unavailable_reason()),
                    reason=f"needs TensorRT 10, cuda-python and an NVIDIA GPU: {runtime_unavailable_reason()}")
@pytest.mark.tensorrt
@pytest.mark.gpu
def test_tensorrt_engine_from_the_fused_onnx(palette):
    from cityseg.export.tensorrt_build import export_tensorrt

    key, _ = export_fused(palette, CAMERA)
    result = export_tensorrt(palette, onnx_key=key, precision="fp16")
    engine = Bundle.load(palette.path).card.artifacts[result.key]
    assert result.report.passed and engine.io == "fused" and engine.camera == CAMERA
    frame = street(128, 256, seed=6)
    trt_seg = Segmenter(palette, backend="tensorrt", artifact=result.key)
    agreement = (trt_seg.segment(frame).mask == Segmenter(palette, artifact="onnx").segment(frame).mask).mean()
    assert agreement >= 0.999


def test_a_non_integer_resize_factor_is_named_with_the_exact_sizes_near_it(palette):
    from cityseg.export.fused_io import exact_camera_sizes

    assert exact_camera_sizes((64, 128), (720, 1280)) == ["1280x704", "1280x768", "1280x640"]
    camera = CameraInput(150, 300)  # 300x150 over the 128x64 input: 2.34375x2.34375
    frames = [street(150, 300, seed) for seed in range(4)]
    with pytest.raises(ParityError) as refused:
        export_fused(palette, camera, frames=frames)
    message = str(refused.value)
    assert "--camera-size 300x150 resizes to the model's 128x64 input by a non-integer factor (2.34375x2.34375)" \
        in message
    assert "exactly: 256x128, 256x192, 384x128" in message and "custom layers" not in message
    assert not (palette.path / "model_fused_300x150.onnx").exists()


def test_an_absurd_camera_size_is_refused_at_once(palette, capsys):
    assert main(["export", str(palette.path), "--fused-io", "--camera-size", "60000x60000"]) == 2
    err = capsys.readouterr().err
    assert "--camera-size '60000x60000': each side must be at most 8192 pixels" in err and err.count("\n") == 1

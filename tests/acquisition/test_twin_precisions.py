"""The reduced precisions and TensorRT builds of an imported quantised model (a uint8 TFLite written in
the test): int8 seeded with the publisher's own activation ranges, fp16 from the real-valued graph,
the TensorRT build from the float twin and never from the publisher's graph."""

import numpy as np
import onnx
import pytest
from tflite_models import SIZE, build_tflite

import cityseg.export.tensorrt_build as trt_export
from cityseg.acquisition.importer import ImportOptions, import_onnx
from cityseg.bundle import Bundle
from cityseg.errors import CitysegError
from cityseg.export import precision
from cityseg.export.calibration import FrameSet
from cityseg.export.onnx import onnxruntime_runner
from cityseg.export.qdq_float import activation_ranges, constants
from cityseg.labels import class_space
from cityseg.tensorrt.engine_cache import BatchProfile, Platform

from support import OnnxAsEngine


def frames(count: int, seed: int = 3) -> FrameSet:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    images = []
    for _ in range(count):
        base = np.stack([(xx * rng.uniform(1, 4) + yy * rng.uniform(-2, 2)) % 256 for _ in range(3)], -1)
        images.append(np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8))
    return FrameSet(images, "test")


@pytest.fixture(scope="module")
def twin_bundle_source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("twin")
    tflite = build_tflite(folder / "seg_int8.tflite", int8=True)
    return import_onnx(tflite, folder / "bundle", class_space("trainid"),
                       ImportOptions(channel_order="RGB", resize="nearest")).path


@pytest.fixture
def twin_bundle(twin_bundle_source, tmp_path):
    import shutil

    shutil.copytree(twin_bundle_source, tmp_path / "b")
    return Bundle.load(tmp_path / "b")


def test_int8_of_a_twin_is_seeded_with_the_publishers_activation_ranges(twin_bundle):
    result = precision.export_precision(twin_bundle, "int8", calibration=frames(8), evaluation=frames(3, 9),
                                        refuse_failed=False)
    card = Bundle.load(twin_bundle.path).card
    details = card.artifacts["onnx_int8"].details
    assert "onnx_int8" in result.keys and details["method"] == "seeded from onnx_quantized"
    assert details["activations"] == "uint8-asymmetric" and details["source_artifact"] == "onnx"
    original = onnx.load(str(twin_bundle.artifact_path("onnx_quantized")))
    seeded = onnx.load(str(twin_bundle.artifact_path("onnx_int8")))
    ranges, values = activation_ranges(original), constants(seeded.graph)
    checked = 0
    for node in seeded.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] in ranges:
            low, high = ranges[node.input[0]]
            scale, zero = float(values[node.input[1]]), int(values[node.input[2]])
            assert scale == pytest.approx((high - low) / 255, rel=1e-5) and zero == round(-low / scale)
            checked += 1
    assert checked >= 2  # every activation the publisher quantised keeps its scale and zero point


def test_fp16_of_a_twin_is_the_real_valued_graph_not_the_integer_grid(twin_bundle):
    precision.export_precision(twin_bundle, "fp16", evaluation=frames(3, 9), refuse_failed=False)
    model = onnx.load(str(twin_bundle.artifact_path("onnx_fp16")))
    ops = {n.op_type for n in model.graph.node}
    twin_ops = {n.op_type for n in onnx.load(str(twin_bundle.artifact_path("onnx"))).graph.node}
    assert "Round" in twin_ops and "Round" not in ops  # fp16 cannot hold the twin's 2**24 sums
    assert not ops & {"QuantizeLinear", "DequantizeLinear"}
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    ids = onnxruntime_runner(twin_bundle.artifact_path("onnx_fp16"))
    batch = twin_bundle.card.preprocess(frames(1).frames)
    assert ids(batch).shape[0] == 1


def test_tensorrt_builds_from_the_float_twin_and_refuses_the_publishers_graph(twin_bundle, monkeypatch):
    built = {}

    def build(onnx_path, card, **kwargs):
        built["onnx"] = onnx_path.name
        return str(onnx_path).encode()

    monkeypatch.setattr(trt_export, "require_runtime", lambda: None)
    monkeypatch.setattr(trt_export, "current_platform", lambda: Platform("10.3.0", "NVIDIA RTX 4090", "8.9"))
    monkeypatch.setattr(trt_export, "build_serialized_engine", build)
    monkeypatch.setattr(trt_export, "EngineRunner", OnnxAsEngine)
    result = trt_export.export_tensorrt(twin_bundle, precision="fp32", profile=BatchProfile(1, 1, 1))
    assert built["onnx"] == "model.onnx" and result.report.passed  # the twin: scores, 0 TensorRT findings
    assert twin_bundle.card.artifacts["onnx"].details["tensorrt_check"] == []
    for wanted in ("fp32", "int8"):
        with pytest.raises(CitysegError, match="int8 ONNX|symmetric int8"):
            trt_export.export_tensorrt(twin_bundle, precision=wanted, onnx_key="onnx_quantized")


@pytest.mark.parametrize("cut", ["tflite-half", "tflite-garbage", "onnx-half"])
def test_a_truncated_or_corrupted_model_file_is_one_line_and_no_bundle(twin_bundle_source, tmp_path, capsys, cut):
    from cityseg.cli import main

    source = (twin_bundle_source.parent / "seg_int8.tflite" if cut.startswith("tflite")
              else twin_bundle_source / "model_quantized.onnx")
    data = source.read_bytes()
    broken = tmp_path / f"broken{source.suffix}"
    broken.write_bytes(data[: len(data) // 2] if cut.endswith("half") else data[:16] + b"\x07" * 4096)
    out = tmp_path / "out"
    assert main(["import", str(broken), "--out", str(out), "--labels", "cityscapes", "--channel-order", "rgb",
                 "--resize", "nearest"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(broken) in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # no bundle, no staging folder left


def test_a_twin_that_fails_its_gate_is_refused_and_the_original_runs(twin_bundle_source, tmp_path, capsys,
                                                                      monkeypatch):
    from cityseg.acquisition import quant_twins
    from cityseg.cli import main

    monkeypatch.setattr(quant_twins, "TWIN_MIN_AGREEMENT", 1.01)  # no twin can pass: the refusal path
    out = tmp_path / "b"
    assert main(["import", str(twin_bundle_source.parent / "seg_int8.tflite"), "--out", str(out),
                 "--labels", "cityscapes", "--channel-order", "rgb", "--resize", "nearest"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    card = Bundle.load(out).card
    assert list(card.artifacts) == ["onnx"] and card.artifacts["onnx"].output == "argmax"
    assert card.artifacts["onnx"].details["float_twin"].startswith("refused: pixel agreement")
    assert lines[0].startswith("TensorRT 10: no float twin (refused: pixel agreement")
    assert "ONNX Runtime runs" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.onnx"]


def test_auto_picks_the_twin_where_confidence_is_wanted(twin_bundle):
    from cityseg.inference import Segmenter

    confident = Segmenter(twin_bundle.path, backend="onnxruntime", need_confidence=True)
    assert confident.backend.artifact.path == "model.onnx"  # scores: the float twin
    result = confident.segment(frames(1).frames[0])
    assert result.confidence is not None and result.confidence.shape == result.mask.shape
    plain = Segmenter(twin_bundle.path, backend="auto")
    assert plain.backend.artifact.path in ("model.onnx", "model_quantized.onnx")  # the faster one measured

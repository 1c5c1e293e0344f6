"""`cityseg export --precision`: int8 Q/DQ and fp16 ONNX of a real (palette) model, gated, staged, refused."""

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from cityseg.bundle import Bundle
from cityseg.cli import main
from cityseg.export import precision as precision_export
from cityseg.export.calibration import FrameSet, folder_frames, generated_frames  # noqa: F401
from cityseg.export.precision import GateFailed, export_precision
from cityseg.labels import class_space

from support import make_palette_bundle, painted_scene, write_pair, write_palette_onnx

SEPARATED = np.array([0, 1, 4, 7, 8, 9, 10, 12, 14, 17, 18], np.uint8)
"""trainIds whose palette colours are >= 100 apart (RGB distance): the palette classifier's margins
between them survive int8 on every CPU (between near colours, e.g. wall and fence, the 1x1
classifier's logits differ by less than one int8 step: a quantization test of the test model, not of
the quantizer)."""


def separated_scene(height, width, seed):
    """A painted scene (RGB, mask) of the :data:`SEPARATED` classes only."""
    _, mask = painted_scene(height, width, seed=seed)
    mask = SEPARATED[mask % len(SEPARATED)]
    return class_space("trainid").palette[mask], mask


def write_frames(folder, count, size=(128, 256), start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        rgb, _ = separated_scene(*size, seed=i)
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder


def write_labelled_split(root, count=4):
    """A Cityscapes-layout val split of painted scenes with their labelIds ground truth."""
    to_label_id = class_space("trainid").to_label_id
    for i in range(count):
        rgb, mask = painted_scene(128, 256, seed=200 + i)
        write_pair(root, "val", "town", f"town_{i:06d}_000019", rgb, to_label_id[mask])
    return root


def painted(count, seed=100):
    """Evaluation frames in the palette classifier's own domain (street scenes are near ties for it)."""
    return FrameSet([separated_scene(128, 256, seed=seed + i)[0] for i in range(count)], "given")


@pytest.fixture
def bundle(tmp_path):
    return make_palette_bundle(tmp_path / "palette", formats=("onnx",))


def node_types(path):
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def int8_weights(model) -> list[np.ndarray]:
    """The int8 weight initialisers that DequantizeLinear nodes read."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return [inits[n.input[0]] for n in model.graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].dtype == np.int8]


def bundle_files(bundle):
    return sorted(p.name for p in bundle.path.iterdir())


def test_int8_is_static_qdq_per_channel_symmetric_and_recorded(bundle, tmp_path):
    calib = folder_frames(write_frames(tmp_path / "calib", 12))
    result = export_precision(bundle, "int8", calibration=calib, evaluation=painted(4))
    assert result.keys == ["onnx_int8", "onnx_argmax_int8"] and all(r.passed for r in result.reports)
    model = onnx.load(str(bundle.path / "model_int8.onnx"))
    types = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in types and "DequantizeLinear" in types
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weight_zero_points = [inits[n.input[2]] for n in model.graph.node
                          if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
                          and inits[n.input[0]].dtype == np.int8 and len(n.input) > 2]
    assert weight_zero_points and all(np.all(z == 0) for z in weight_zero_points)  # symmetric weights
    bits = Bundle.load(bundle.path).card.artifacts["onnx_int8"].details["weight_bits"]
    widest = max(int(np.abs(w).max()) for w in int8_weights(model))
    # 7 bits (tried first) hold the separated palette classes
    assert bits == 7 and widest <= 64
    activation_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert activation_points and all(z.dtype == np.uint8 for z in activation_points)  # the CPU encoding
    card = Bundle.load(bundle.path).card
    entry = card.artifacts["onnx_int8"]
    assert entry.precision == "int8" and entry.gated and entry.output == "probabilities"
    assert entry.details["method"] == "minmax" and entry.details["calibration"]["sha256"] == calib.sha256
    assert entry.details["calibration"]["frames"] == 12 and entry.details["activations"] == "uint8-asymmetric"
    assert entry.details["gate"]["mode"] == "fp32-reference" and entry.details["gate"]["passed"]
    assert entry.details["gate"]["pixel_agreement"] >= 0.98 and entry.details["gate"]["reference_miou"] >= 0.95
    assert {"onnxruntime:fp32", "onnxruntime:int8"} <= set(entry.details["latency_ms"])
    twin = card.artifacts["onnx_argmax_int8"]
    assert twin.output == "argmax" and twin.precision == "int8" and "Softmax" not in node_types(bundle.path / twin.path)
    assert not [p for p in bundle.path.iterdir() if p.name.startswith(".")]  # staging removed


def test_seven_bit_weights_are_what_reduce_range_writes(bundle, tmp_path):
    """7-bit weights (tried first for the CPU artifact: no U8S8 saturation on x86 without VNNI)."""
    from cityseg.export.precision import WEIGHT_BITS, quantize_int8

    assert WEIGHT_BITS == {False: (7, 8), True: (8,)}
    frames = folder_frames(write_frames(tmp_path / "calib", 8))
    for bits in (7, 8):
        target = tmp_path / f"model_{bits}.onnx"
        quantize_int8(bundle.artifact_path("onnx"), target, frames, bundle.card, "minmax", tmp_path,
                      weight_bits=bits)
        widest = max(int(np.abs(w).max()) for w in int8_weights(onnx.load(str(target))))
        assert (widest <= 64) if bits == 7 else (widest > 64)


def quantized_constants(path) -> dict[str, np.ndarray]:
    """Every initialiser of an ONNX file (weights, scales, zero points), by name."""
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def test_calibration_runs_in_strides_and_minmax_ranges_equal_one_pass(bundle, tmp_path, monkeypatch):
    """ONNX Runtime's calibrator holds the activations of CALIB_STRIDE batches at a time (all of them,
    without a stride: entropy and percentile were killed for memory at 512x1024), and the merged
    min/max ranges are those of one pass over every frame."""
    from cityseg.export.calibration import FrameFeed
    from cityseg.export.precision import CALIB_STRIDE, calibration_stride, quantize_int8

    assert [calibration_stride(n) for n in (64, 61, 6, 9, 1, 0)] == [4, 1, 3, 3, 1, 1] and CALIB_STRIDE == 4
    ranges, set_range = [], FrameFeed.set_range
    def spy(self, start_index, end_index):
        ranges.append((start_index, end_index))
        set_range(self, start_index, end_index)
    monkeypatch.setattr(FrameFeed, "set_range", spy)
    frames = folder_frames(write_frames(tmp_path / "calib", 12))
    quantize_int8(bundle.artifact_path("onnx"), tmp_path / "strided.onnx", frames, bundle.card, "minmax", tmp_path)
    assert ranges == [(0, 4), (4, 8), (8, 12)]
    monkeypatch.setattr(precision_export, "CALIB_STRIDE", 12)
    quantize_int8(bundle.artifact_path("onnx"), tmp_path / "one_pass.onnx", frames, bundle.card, "minmax", tmp_path)
    assert ranges[3:] == [(0, 12)]
    strided, one_pass = quantized_constants(tmp_path / "strided.onnx"), quantized_constants(tmp_path / "one_pass.onnx")
    assert strided.keys() == one_pass.keys()
    for name, value in strided.items():
        np.testing.assert_array_equal(value, one_pass[name], err_msg=name)
    for method in ("entropy", "percentile"):  # histograms merged across strides: they run and write Q/DQ
        target = tmp_path / f"{method}.onnx"
        quantize_int8(bundle.artifact_path("onnx"), target, frames, bundle.card, method, tmp_path)
        assert "QuantizeLinear" in node_types(target)


def test_a_refused_int8_suggests_the_method_that_measured_best_first():
    assert precision_export.next_step("int8", "minmax").startswith("try --calib-method percentile (or entropy)")
    assert precision_export.next_step("int8", "percentile").startswith("try --calib-method entropy (or minmax)")


def test_the_cli_offers_the_exporters_methods_and_default_count():
    from cityseg.cli import export as export_cli
    from cityseg.export import calibration

    assert export_cli.CALIB_METHODS == precision_export.CALIB_METHODS
    assert set(precision_export.TRY_ORDER) == set(precision_export.CALIB_METHODS)
    assert export_cli.DEFAULT_CALIB_LIMIT == calibration.DEFAULT_CALIB_LIMIT


def test_int8_for_tensorrt_has_symmetric_int8_activations(bundle, tmp_path):
    export_precision(bundle, "int8", calibration=folder_frames(write_frames(tmp_path / "c", 8)),
                     evaluation=painted(2), method="entropy", for_tensorrt=True)
    model = onnx.load(str(bundle.path / "model_int8.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert points and all(z.dtype == np.int8 and np.all(z == 0) for z in points)
    assert max(int(np.abs(w).max()) for w in int8_weights(model)) > 64  # TensorRT: all 8 bits
    details = Bundle.load(bundle.path).card.artifacts["onnx_int8"].details
    assert details["activations"] == "int8-symmetric" and details["weight_bits"] == 8


def test_fp16_keeps_fp32_inputs_and_outputs(bundle):
    export_precision(bundle, "fp16", evaluation=generated_frames(bundle.card, 2))
    model = onnx.load(str(bundle.path / "model_fp16.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer)
    assert Bundle.load(bundle.path).card.artifacts["onnx_argmax_fp16"].precision == "fp16"


def test_a_failing_gate_is_refused_with_figures_and_nothing_is_written(bundle, monkeypatch):
    def broken_fp16(source, target):  # a real, wrong model: sharpness flipped, so classes are inverted
        write_palette_onnx(target, height=64, width=128, sharpness=-50.0)

    monkeypatch.setattr(precision_export, "convert_fp16", broken_fp16)
    before = bundle_files(bundle)
    with pytest.raises(GateFailed, match=r"refused - gate .*pixel agreement .*FAILED.*Nothing was written") as err:
        export_precision(bundle, "fp16", evaluation=generated_frames(bundle.card, 2))
    assert not err.value.report.passed and err.value.report.pixel_agreement < 0.5
    assert bundle_files(bundle) == before and "onnx_fp16" not in Bundle.load(bundle.path).card.artifacts


def test_cli_int8_with_ground_truth_gate(bundle, tmp_path, capsys):
    data = write_labelled_split(tmp_path / "data")
    calib = write_frames(tmp_path / "calib", 8)
    args = ["export", str(bundle.path), "--precision", "int8", "--calib-images", str(calib),
            "--calib-method", "percentile", "--eval-data", str(data)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "model_int8.onnx" in out and "(ground-truth): mIoU" in out and "- ok" in out
    assert "latency per frame (ms): onnxruntime:fp32" in out
    gate = Bundle.load(bundle.path).card.artifacts["onnx_int8"].details["gate"]
    assert gate["mode"] == "ground-truth" and gate["frames"] == 4 and gate["fp32_miou"] > 0.5


@pytest.mark.parametrize("case", ["no-calib", "calib-without-int8", "few", "size", "unreadable", "exists",
                                  "eval-without-precision", "both-calib"])
def test_cli_bad_input_one_line_and_no_artifact(bundle, tmp_path, capsys, case):
    calib = write_frames(tmp_path / "calib", 3 if case == "few" else 8)
    data = write_labelled_split(tmp_path / "data")
    if case == "size":
        write_frames(calib, 1, size=(100, 256), start=50)
    if case == "unreadable":
        (calib / "zz.png").write_bytes(b"broken")
    args = {"no-calib": ["--precision", "int8"],
            "calib-without-int8": ["--precision", "fp16", "--calib-images", str(calib)],
            "few": ["--precision", "int8", "--calib-images", str(calib)],
            "size": ["--precision", "int8", "--calib-images", str(calib)],
            "unreadable": ["--precision", "int8", "--calib-images", str(calib)],
            "exists": ["--precision", "int8", "--calib-images", str(calib), "--eval-data", str(data)],
            "eval-without-precision": ["--eval-data", str(tmp_path)],
            "both-calib": ["--precision", "int8", "--calib-images", str(calib), "--calib-data", str(tmp_path)]}[case]
    if case == "exists":
        assert main(["export", str(bundle.path)] + args) == 0
        capsys.readouterr()
    before = bundle_files(bundle)
    assert main(["export", str(bundle.path)] + args) == 2
    err = capsys.readouterr().err.strip()
    expected = {"no-calib": "needs calibration frames", "calib-without-int8": "used only by --precision int8",
                "few": "at least 8 are needed", "size": "050.png is 256x100", "unreadable": "zz.png cannot be read",
                "exists": "already exists", "eval-without-precision": "accuracy gate",
                "both-calib": "give one"}[case]
    assert len(err.splitlines()) == 1 and expected in err
    assert bundle_files(bundle) == before


def test_quantization_works_from_any_bundles_onnx(tmp_path):
    """An imported-style bundle (ONNX only, no Keras) quantizes the same way."""
    bundle = make_palette_bundle(tmp_path / "imported", formats=("onnx",))
    bundle.card.imported = {"source": "model.onnx"}
    bundle.save()
    frames = FrameSet([painted_scene(128, 256, seed=i)[0] for i in range(8)], "given")
    result = export_precision(Bundle.load(bundle.path), "int8", calibration=frames, evaluation=frames)
    assert result.keys[0] == "onnx_int8"


def test_bf16_is_recorded_for_openvino_only(tmp_path):
    from cityseg.inference import openvino_runtime

    if openvino_runtime.unavailable_reason() or not openvino_runtime.cpu_has_bf16():
        pytest.skip("needs OpenVINO on a CPU that reports BF16")
    bundle = make_palette_bundle(tmp_path / "b", formats=("onnx", "onnx_argmax"))
    result = export_precision(bundle, "bf16", evaluation=painted(2))
    assert result.keys == ["onnx_bf16", "onnx_argmax_bf16"] and all(r.passed for r in result.reports)
    entry = Bundle.load(bundle.path).card.artifacts["onnx_argmax_bf16"]
    assert entry.path == "model_argmax.onnx" and entry.runtime == "openvino" and entry.precision == "bf16"
    assert "openvino:bf16" in entry.details["latency_ms"]
    with pytest.raises(Exception, match="already recorded"):
        export_precision(bundle, "bf16", evaluation=painted(2))


def test_onnxruntime_runs_8_bit_int8_with_exact_kernels_and_7_bit_without(bundle, tmp_path):
    """8-bit weights saturate ONNX Runtime's fast U8S8 kernels on x86 without VNNI: the backend runs
    such a file with the exact kernels (as the gate did); 7-bit files and fp32 keep the fast ones."""
    from cityseg.inference.backends.onnxruntime import OnnxRuntimeBackend

    export_precision(bundle, "int8", calibration=folder_frames(write_frames(tmp_path / "calib", 8)),
                     evaluation=painted(2))

    def exact(key):
        options = OnnxRuntimeBackend(Bundle.load(bundle.path), key).session.get_session_options()
        try:
            return options.get_session_config_entry("session.x64quantprecision") == "1"
        except RuntimeError:  # "does not have configuration with key": not set
            return False

    assert not exact("onnx") and not exact("onnx_int8")  # 7 bits
    loaded = Bundle.load(bundle.path)
    loaded.card.artifacts["onnx_int8"].details["weight_bits"] = 8
    loaded.save()
    assert exact("onnx_int8")
    del loaded.card.artifacts["onnx_int8"].details["weight_bits"]  # cards from before it was recorded
    loaded.save()
    assert exact("onnx_int8")

"""TensorRT engines built and run for real (TensorRT 10 + cuda-python + an NVIDIA GPU).

Skipped, with the reason, where any of the three is missing (e.g. CPU-only CI).
"""

import json

import cv2
import numpy as np
import pytest

from cityseg.tensorrt.runtime import runtime_unavailable_reason

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]

_REASON = runtime_unavailable_reason()
if _REASON:
    pytest.skip(f"needs TensorRT 10 or 11, cuda-python and an NVIDIA GPU: {_REASON}", allow_module_level=True)

from cityseg.bundle import Bundle  # noqa: E402
from cityseg.cli import main  # noqa: E402
from cityseg.export import EngineMismatch, export_onnx  # noqa: E402
from cityseg.export.tensorrt_build import export_tensorrt  # noqa: E402
from cityseg.inference import Segmenter  # noqa: E402
from cityseg.inference.backends.tensorrt import TensorRTBackend  # noqa: E402
from cityseg.tensorrt.engine_cache import BatchProfile, EngineSidecar, sidecar_path  # noqa: E402
from cityseg.tensorrt.runtime import EngineRunner, current_platform  # noqa: E402

from support import make_palette_bundle, painted_scene  # noqa: E402


@pytest.fixture
def bundle(tmp_path):
    b = make_palette_bundle(tmp_path / "palette", formats=("keras",))
    export_onnx(b)
    return b


def frames(count=5):
    return [painted_scene(256, 512, seed=i)[0] for i in range(count)]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_parity_sidecar_and_reuse(bundle, precision):
    platform = current_platform()
    result = export_tensorrt(bundle, precision=precision, profile=BatchProfile(1, 2, 4))
    assert result.built and result.report.passed and result.report.argmax_agreement >= 0.999
    assert result.path.name == f"model.{precision}.{platform.sm}.trt{platform.tensorrt_version}.engine"
    sidecar = EngineSidecar.read(sidecar_path(result.path))
    assert sidecar.platform == platform and sidecar.precision == precision
    assert sidecar.input_shape == [64, 128, 3] and sidecar.profile == {"min": 1, "opt": 2, "max": 4}
    card = Bundle.load(bundle.path).card
    assert card.artifacts[result.key].details["parity"]["passed"]
    assert (bundle.path / f"timing.{platform.sm}.trt{platform.tensorrt_version}.cache").is_file()
    again = export_tensorrt(bundle, precision=precision, profile=BatchProfile(1, 2, 4))
    assert not again.built and again.key == result.key

    trt_seg = Segmenter(bundle.path, backend="tensorrt")
    ort_seg = Segmenter(bundle.path, backend="onnxruntime")
    for a, b in zip(trt_seg.segment_batch(frames()), ort_seg.segment_batch(frames())):  # 5 > max batch 4
        assert (a.mask == b.mask).mean() >= 0.999
    assert "tensorrt" in trt_seg.backend.describe()
    trt_seg.backend.close()


def test_argmax_head_engine_returns_uint8_classes(bundle):
    export_onnx(bundle, argmax_head=True)
    result = export_tensorrt(bundle, precision="fp16", argmax_head=True)
    runner = EngineRunner.from_file(result.path)
    seg = Segmenter(bundle.path, backend="onnxruntime", artifact="onnx_argmax")
    batch = seg.preprocess(frames(3))
    out = runner.infer(batch)
    assert out.dtype == np.uint8 and out.shape == (3, 64, 128)
    assert (out == seg.backend.infer(batch)).mean() >= 0.999
    runner.close()


def test_int8_with_calibration_images(bundle, tmp_path):
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(16):
        rgb, _ = painted_scene(256, 512, seed=100 + i)
        cv2.imwrite(str(calib / f"{i:02d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    from cityseg.export.calibration import folder_frames, generated_frames
    from cityseg.export.precision import export_precision

    export_precision(bundle, "int8", calibration=folder_frames(calib), evaluation=generated_frames(bundle.card, 4),
                     for_tensorrt=True)
    result = export_tensorrt(bundle, precision="int8")
    assert result.built and result.report.passed and result.report.threshold == 0.99
    sidecar = EngineSidecar.read(sidecar_path(result.path))
    assert sidecar.onnx_artifact == "onnx_int8" and sidecar.onnx_file == "model_int8.onnx"
    assert sidecar.calibration["frames"] == 16 and sidecar.precision == "int8"


def test_engine_from_elsewhere_is_rebuilt_or_refused(bundle, monkeypatch):
    result = export_tensorrt(bundle, precision="fp16")
    side = sidecar_path(result.path)
    data = json.loads(side.read_text())
    data["gpu_name"] = "Some Other GPU"
    side.write_text(json.dumps(data))
    with pytest.raises(EngineMismatch, match="Some Other GPU"):
        TensorRTBackend(bundle, result.key, rebuild=False)
    monkeypatch.setenv("CITYSEG_TENSORRT_REBUILD", "0")
    with pytest.raises(EngineMismatch, match="rebuilding is off"):
        Segmenter(bundle.path, backend="tensorrt")
    backend = TensorRTBackend(Bundle.load(bundle.path), result.key, rebuild=True)
    assert EngineSidecar.read(side).gpu_name == current_platform().gpu_name
    backend.close()


def test_cli_builds_an_engine(bundle, capsys):
    assert main(["export", str(bundle.path), "--tensorrt", "--precision", "fp16", "--batch", "1,1,2"]) == 0
    out = capsys.readouterr().out
    assert "built" in out and "parity onnxruntime:model.onnx vs tensorrt:" in out
    assert main(["export", str(bundle.path), "--tensorrt", "--precision", "fp16", "--batch", "1,1,2"]) == 0
    assert "is up to date" in capsys.readouterr().out


def test_argmax_head_engine_keeps_its_confidence_output(bundle):
    export_onnx(bundle, argmax_head=True, confidence=True)
    result = export_tensorrt(bundle, precision="fp32", argmax_head=True)
    assert Bundle.load(bundle.path).card.artifacts[result.key].confidence == "confidence"
    trt_seg = Segmenter(bundle.path, backend="tensorrt", need_confidence=True)
    ort_seg = Segmenter(bundle.path, backend="onnxruntime", artifact="onnx")
    assert trt_seg.has_confidence and trt_seg.backend.artifact_key == result.key
    for a, b in zip(trt_seg.segment_batch(frames(2)), ort_seg.segment_batch(frames(2))):
        assert (a.mask == b.mask).mean() >= 0.999
        assert np.abs(a.confidence.astype(int) - b.confidence.astype(int)).max() <= 2
    trt_seg.backend.close()


def test_imported_nchw_model_with_strided_logits(tmp_path):
    from onnx import TensorProto, helper

    from cityseg.acquisition.importer import ImportOptions, import_onnx
    from cityseg.benchmarking.fixtures import MMSEG_MEAN, MMSEG_STD, save_foreign_onnx
    from cityseg.labels import class_space

    from support import conv_weights

    weight, bias = conv_weights(19, 8)
    path = save_foreign_onnx(tmp_path / "seg.onnx", [
        helper.make_node("Conv", ["input", "w", "b"], ["logits"], kernel_shape=[8, 8], strides=[8, 8])],
        ["n", 3, 64, 128], "logits", TensorProto.FLOAT, ["n", 19, 8, 16], {"w": weight, "b": bias})
    options = ImportOptions(channel_order="bgr", scale=1.0, mean=MMSEG_MEAN, std=MMSEG_STD, resize="area")
    bundle = import_onnx(path, tmp_path / "b", class_space("trainid"), options)
    assert main(["export", str(bundle.path), "--tensorrt", "--precision", "fp32", "--batch", "1,1,2"]) == 0
    trt_seg = Segmenter(bundle.path, backend="tensorrt")
    ort_seg = Segmenter(bundle.path, backend="onnxruntime")
    assert trt_seg.backend.runner.frame_shape == (3, 64, 128)
    for a, b in zip(trt_seg.segment_batch(frames(3)), ort_seg.segment_batch(frames(3))):
        assert (a.mask == b.mask).mean() >= 0.999
        assert np.abs(a.confidence.astype(int) - b.confidence.astype(int)).max() <= 2
    trt_seg.backend.close()


def test_max_batch_engine_takes_every_camera_in_one_call(bundle, capsys):
    """`--max-batch 6`: profile 1/6/6 in the sidecar; batches of 1..6 in one call, 7 split in two."""
    assert main(["export", str(bundle.path), "--tensorrt", "--precision", "fp32", "--max-batch", "6"]) == 0
    segmenter = Segmenter(bundle.path, backend="tensorrt")
    assert segmenter.max_batch == 6
    engine = bundle.path / segmenter.backend.path.name
    assert EngineSidecar.read(sidecar_path(engine)).profile == {"min": 1, "opt": 6, "max": 6}
    reference = Segmenter(bundle.path, backend="onnxruntime")
    for count in (1, 4, 6, 7):  # frames of different sizes, as cameras of a rig
        batch = [painted_scene(128 + 64 * (i % 3), 256 + 128 * (i % 3), seed=i)[0] for i in range(count)]
        for a, b in zip(segmenter.segment_batch(batch), reference.segment_batch(batch)):
            assert a.mask.shape == b.mask.shape and (a.mask == b.mask).mean() >= 0.999

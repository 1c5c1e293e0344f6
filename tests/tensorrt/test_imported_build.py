"""TensorRT export and the TensorRT 10 check on imported bundles (NCHW, logits at 1/8), without a
GPU: the engine build is replaced by the ONNX itself run in ONNX Runtime, so the flow around it
(profile shapes in the card's layout, parity on canonical outputs, card and sidecar) is real."""

import numpy as np
import pytest
from onnx import TensorProto, helper

import cityseg.export.tensorrt_build as trt_export
from cityseg.acquisition.importer import ImportOptions, import_onnx
from cityseg.benchmarking.fixtures import MMSEG_MEAN, MMSEG_STD, save_foreign_onnx
from cityseg.bundle import Bundle
from cityseg.export import parity
from cityseg.export.onnx import onnxruntime_runner
from cityseg.labels import class_space
from cityseg.tensorrt.engine_cache import BatchProfile, EngineSidecar, Platform, sidecar_path

from support import FOREIGN_H as H
from support import FOREIGN_W as W
from support import OnnxAsEngine, conv_weights

RTX = Platform("10.3.0", "NVIDIA GeForce RTX 4090", "8.9")


def stride8_model(tmp_path, resize_mode=None):
    weight, bias = conv_weights(19, 8)
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["low"], kernel_shape=[8, 8], strides=[8, 8])]
    out, shape, inits = "low", [1, 19, H // 8, W // 8], {"w": weight, "b": bias}
    if resize_mode:
        inits["scales"] = np.array([1, 1, 8, 8], np.float32)
        nodes.append(helper.make_node("Resize", ["low", "", "scales"], ["logits"], mode=resize_mode))
        out, shape = "logits", [1, 19, H, W]
    return save_foreign_onnx(tmp_path / "seg.onnx", nodes, [1, 3, H, W], out, TensorProto.FLOAT, shape, inits)


def imported(tmp_path, **model):
    options = ImportOptions(channel_order="bgr", scale=1.0, mean=MMSEG_MEAN, std=MMSEG_STD, resize="area")
    return import_onnx(stride8_model(tmp_path, **model), tmp_path / "b", class_space("trainid"), options)


@pytest.fixture
def fake_tensorrt(monkeypatch):
    built = {}

    def build(onnx_path, card, **kwargs):
        built.update(card=card, shapes=trt_export.profile_shapes(card, kwargs["profile"]), **kwargs)
        return str(onnx_path).encode()

    monkeypatch.setattr(trt_export, "require_runtime", lambda: None)
    monkeypatch.setattr(trt_export, "current_platform", lambda: RTX)
    monkeypatch.setattr(trt_export, "build_serialized_engine", build)
    monkeypatch.setattr(trt_export, "EngineRunner", OnnxAsEngine)
    return built


def test_imported_bundle_builds_an_engine_in_its_own_layout(tmp_path, fake_tensorrt):
    bundle = imported(tmp_path)
    assert bundle.card.artifacts["onnx"].details["tensorrt_check"] == []
    result = trt_export.export_tensorrt(bundle, precision="fp32", profile=BatchProfile(1, 1, 2))
    assert result.built and result.report.passed and result.report.argmax_agreement == 1.0
    # batch fixed at 1
    assert fake_tensorrt["shapes"] == {"min": (1, 3, H, W), "opt": (1, 3, H, W), "max": (1, 3, H, W)}
    card = Bundle.load(bundle.path).card
    engine = card.artifacts[result.key]
    assert (engine.output, engine.output_layout) == ("logits", "NCHW")
    sidecar = EngineSidecar.read(sidecar_path(result.path))
    assert sidecar.input_shape == [3, H, W] and sidecar.input_name == "input" and sidecar.output_name == "low"


def test_parity_reads_strided_nchw_outputs_as_class_scores(tmp_path):
    bundle = imported(tmp_path)
    card, artifact = bundle.card, bundle.card.artifacts["onnx"]
    run, kind = parity.canonical_runner(onnxruntime_runner(bundle.artifact_path("onnx")), artifact, card)
    batch = card.preprocess(parity.parity_frames(card, count=2)[0])
    canonical = run(batch)
    assert kind == "logits" and canonical.shape == (2, H, W, 19)
    # a candidate that swaps two classes' scores is caught on the canonical scores
    swapped = lambda b: run(b)[..., [1, 0] + list(range(2, 19))]  # noqa: E731
    report = parity.check_parity(run, kind, swapped, kind, batch, reference="r", candidate="c",
                                 precision="fp32", frame_source="synth")
    assert not report.passed


def test_tensorrt_check_of_an_imported_model_is_recorded(tmp_path, caplog):
    import logging

    from cityseg.cli.import_ import tensorrt_line

    with caplog.at_level(logging.DEBUG, logger="cityseg.acquisition.importer"):
        bundle = imported(tmp_path, resize_mode="cubic")  # ONNX Runtime runs it, TensorRT 10 does not
    findings = bundle.card.artifacts["onnx"].details["tensorrt_check"]
    assert len(findings) == 1 and "mode 'cubic' is not supported" in findings[0]
    assert "TensorRT 10 would reject this model" in caplog.text  # the full list: debug only
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert tensorrt_line(bundle).startswith("TensorRT 10 would reject 1 thing(s) in this model (1 x ")


def test_onnx_export_of_an_imported_bundle_says_what_to_do(tmp_path, capsys):
    from cityseg.cli import main

    bundle = imported(tmp_path)
    assert main(["export", str(bundle.path)]) == 2
    assert "imported ONNX, there is no Keras model" in capsys.readouterr().err
    assert main(["export", str(bundle.path), "--argmax-head"]) == 2
    assert "--tensorrt" in capsys.readouterr().err

"""The auto / CPU backend choice: gated artifacts only, by the latency measured at export."""

import numpy as np
import pytest

from cityseg.bundle import Artifact, Bundle
from cityseg.inference.backends import open_backend, pick_artifact
from cityseg.inference.backends.choice import choose, relative_latency

from support import make_palette_bundle, write_palette_onnx


def add_variant(bundle, key, precision, latency, passed=True, runtime=None, path=None):
    path = path or f"{key}.onnx"
    if not (bundle.path / path).exists():
        write_palette_onnx(bundle.path / path, height=64, width=128)
    details = {"gate": {"passed": passed}, "latency_ms": latency}
    bundle.add_artifact(key, Artifact(path, "onnx", "probabilities", details, precision=precision, runtime=runtime))


@pytest.fixture
def bundle(tmp_path):
    return make_palette_bundle(tmp_path / "b", formats=("onnx",))


def test_faster_gated_int8_is_chosen(bundle):
    add_variant(bundle, "onnx_int8", "int8", {"onnxruntime:fp32": 100.0, "onnxruntime:int8": 60.0})
    assert choose(bundle, ["onnxruntime"]) == ("onnxruntime", "int8")
    backend = open_backend(Bundle.load(bundle.path), "auto")
    assert backend.name == "onnxruntime" and backend.artifact_key == "onnx_int8"


def test_a_reduced_precision_within_the_noise_of_fp32_is_not_chosen(bundle):
    """int8 that measured 3 % faster at export (one-frame noise) keeps fp32; 15 % faster is picked."""
    add_variant(bundle, "onnx_int8", "int8", {"onnxruntime:fp32": 61.8, "onnxruntime:int8": 60.1,
                                              "openvino:fp32": 82.1, "openvino:int8": 58.0})
    assert choose(bundle, ["onnxruntime"]) == ("onnxruntime", "fp32")
    assert choose(bundle, ["onnxruntime", "openvino"]) == ("onnxruntime", "fp32")
    add_variant(bundle, "onnx_int8", "int8", {"onnxruntime:fp32": 61.8, "onnxruntime:int8": 52.0})
    assert choose(bundle, ["onnxruntime"]) == ("onnxruntime", "int8")


def test_slower_or_ungated_artifacts_are_never_chosen(bundle):
    add_variant(bundle, "onnx_int8", "int8", {"onnxruntime:fp32": 100.0, "onnxruntime:int8": 130.0})
    add_variant(bundle, "onnx_fp16", "fp16", {"onnxruntime:fp32": 100.0, "onnxruntime:fp16": 10.0}, passed=False)
    assert choose(bundle, ["onnxruntime"]) == ("onnxruntime", "fp32")
    assert "onnxruntime:fp16" not in relative_latency(bundle)
    assert pick_artifact(bundle, "onnx", precision="fp16") is None
    assert open_backend(Bundle.load(bundle.path), "onnxruntime").artifact_key == "onnx"


def test_unmeasured_variants_do_not_win(bundle):
    add_variant(bundle, "onnx_int8", "int8", {})
    assert choose(bundle, ["onnxruntime"]) == ("onnxruntime", "fp32")


def test_runtime_bound_entry_only_on_its_backend(bundle):
    add_variant(bundle, "onnx_bf16", "bf16", {"onnxruntime:fp32": 100.0, "openvino:bf16": 50.0},
                runtime="openvino", path="model.onnx")
    assert choose(bundle, ["onnxruntime"]) == ("onnxruntime", "fp32")
    assert choose(bundle, ["onnxruntime", "openvino"]) == ("openvino", "bf16")
    assert pick_artifact(bundle, "onnx", precision="bf16", backend="onnxruntime") is None


def test_openvino_backend_matches_onnxruntime(bundle):
    pytest.importorskip("openvino")
    from support import painted_scene

    loaded = Bundle.load(bundle.path)
    frame, _ = painted_scene(128, 256)
    batch = loaded.card.preprocess([frame])
    ov = open_backend(loaded, "openvino")
    ort = open_backend(loaded, "onnxruntime", "onnx")
    assert ov.name == "openvino" and "fp32" in ov.describe()
    assert np.array_equal(np.argmax(ov.infer(batch), -1), np.argmax(ort.infer(batch), -1))
    assert np.abs(ov.infer(batch) - ort.infer(batch)).max() < 1e-3

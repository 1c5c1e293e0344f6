"""TensorRT engine files without TensorRT: names, sidecars, rebuild-or-refuse, engine selection,
atomic engine writes - with real files and fake sidecars, no TensorRT needed."""

import json
import subprocess
import sys

import pytest

import cityseg.tensorrt.engine_cache as engine_cache
from cityseg.bundle import Artifact
from cityseg.errors import BackendUnavailable, BundleError, InputError
from cityseg.export import EngineMismatch, ExportError
from cityseg.export.tensorrt_build import require_runtime
from cityseg.fileio import atomic_path, sha256_file
from cityseg.inference import Segmenter
from cityseg.tensorrt import runtime as tensorrt_runtime
from cityseg.tensorrt.engine_cache import (
    BatchProfile,
    EngineSidecar,
    Platform,
    engine_decision,
    engine_filename,
    engine_key,
    mismatches,
    rebuild_allowed_by_env,
    resolve_engine,
    select_engine,
    sidecar_path,
    timing_cache_path,
    write_engine,
)

from support import make_palette_bundle

ORIN = Platform("10.3.0", "Orin", "8.7")
RTX = Platform("10.3.0", "NVIDIA GeForce RTX 4090", "8.9")
L4 = Platform("10.3.0", "NVIDIA L4", "8.9")
PROFILE = BatchProfile(1, 2, 4)


def sidecar_for(platform, sha="a" * 64, precision="fp16", profile=PROFILE, onnx_file="model.onnx"):
    return EngineSidecar(tensorrt_version=platform.tensorrt_version, gpu_name=platform.gpu_name,
                         compute_capability=platform.compute_capability, precision=precision,
                         input_name="image", input_shape=[64, 128, 3], output_name="probabilities",
                         output_kind="probabilities", profile=profile.to_dict(), onnx_file=onnx_file,
                         onnx_sha256=sha, workspace_mb=1024)


def fake_engine(directory, platform, **kwargs):
    """An engine file (opaque bytes, as TensorRT writes) with its sidecar."""
    engine = directory / engine_filename(kwargs.get("onnx_file", "model.onnx"), kwargs.get("precision", "fp16"),
                                         platform)
    write_engine(engine, b"serialized engine for " + platform.gpu_name.encode(), sidecar_for(platform, **kwargs))
    return engine


def test_engine_names_say_precision_gpu_and_tensorrt():
    assert engine_filename("model.onnx", "fp16", RTX) == "model.fp16.sm89.trt10.3.0.engine"
    assert engine_filename("model_argmax.onnx", "int8", ORIN) == "model_argmax.int8.sm87.trt10.3.0.engine"
    assert engine_key("model.fp16.sm89.trt10.3.0.engine") == "model.fp16.sm89.trt10.3.0"
    with pytest.raises(InputError, match="precision 'fp8'"):
        engine_filename("model.onnx", "fp8", RTX)


def test_cache_file_names(tmp_path):
    assert timing_cache_path(tmp_path, ORIN).name == "timing.sm87.trt10.3.0.cache"


def test_batch_profile_parsing():
    assert BatchProfile.parse("1,2,8") == BatchProfile(1, 2, 8)
    assert BatchProfile.parse("4") == BatchProfile(4, 4, 4)
    for bad in ("0,1,2", "4,2,8", "a,b,c", "1,2"):
        with pytest.raises(InputError, match="batch"):
            BatchProfile.parse(bad)


def test_sidecar_round_trip_and_corruption(tmp_path):
    engine = fake_engine(tmp_path, RTX)
    side = sidecar_path(engine)
    assert side.name == engine.name + ".json"
    assert EngineSidecar.read(side) == sidecar_for(RTX)
    assert EngineSidecar.read(side).platform == RTX
    side.write_text("{not json")
    with pytest.raises(BundleError, match="not a valid engine sidecar"):
        EngineSidecar.read(side)
    side.write_text(json.dumps({"gpu_name": "x"}))
    with pytest.raises(BundleError, match="not a valid engine sidecar"):
        EngineSidecar.read(side)
    with pytest.raises(BundleError, match="sidecar is missing"):
        EngineSidecar.read(tmp_path / "none.engine.json")


def test_mismatch_reasons():
    sidecar = sidecar_for(RTX)
    assert mismatches(sidecar, RTX, onnx_sha256="a" * 64, precision="fp16", profile=PROFILE) == []
    [reason] = mismatches(sidecar, ORIN)
    assert "compute capability 8.9 (NVIDIA GeForce RTX 4090), this GPU is 8.7 (Orin)" in reason
    [reason] = mismatches(sidecar, L4)  # same compute capability, other GPU model
    assert "built on a NVIDIA GeForce RTX 4090, this GPU is a NVIDIA L4" in reason
    [reason] = mismatches(sidecar, Platform("10.7.0", RTX.gpu_name, "8.9"))
    assert "built with TensorRT 10.3.0, this machine has 10.7.0" in reason
    [reason] = mismatches(sidecar, RTX, onnx_sha256="b" * 64)
    assert "built from another model.onnx" in reason
    assert "built in fp16, int8 was asked for" in mismatches(sidecar, RTX, precision="int8")[0]
    assert "batch profile" in mismatches(sidecar, RTX, profile=BatchProfile(1, 1, 8))[0]


def test_decision_build_reuse_rebuild_or_refuse(tmp_path):
    engine = tmp_path / engine_filename("model.onnx", "fp16", RTX)
    kwargs = dict(onnx_sha256="a" * 64, precision="fp16", profile=PROFILE)
    assert engine_decision(engine, RTX, **kwargs) == ("build", ["no engine yet"])
    assert engine_decision(engine, RTX, rebuild=False, **kwargs)[0] == "build"  # nothing to refuse yet
    fake_engine(tmp_path, RTX)
    assert engine_decision(engine, RTX, **kwargs) == ("reuse", [])
    assert engine_decision(engine, RTX, force=True, **kwargs) == ("build", ["--force"])
    # the ONNX was re-exported since the engine was built
    decision, reasons = engine_decision(engine, RTX, **{**kwargs, "onnx_sha256": "b" * 64})
    assert decision == "build" and "built from another model.onnx" in reasons[0]
    with pytest.raises(EngineMismatch, match=r"built from another model\.onnx.*Rebuilding is off"):
        engine_decision(engine, RTX, rebuild=False, **{**kwargs, "onnx_sha256": "b" * 64})
    # same file name copied to a machine with another GPU model / TensorRT patch level
    with pytest.raises(EngineMismatch, match="this GPU is a NVIDIA L4"):
        engine_decision(engine, L4, rebuild=False, **kwargs)
    with pytest.raises(EngineMismatch, match="this machine has 10.7.0"):
        engine_decision(engine, Platform("10.7.0", RTX.gpu_name, "8.9"), rebuild=False, **kwargs)


def test_engine_without_sidecar_is_rebuilt_not_trusted(tmp_path):
    engine = fake_engine(tmp_path, RTX)
    sidecar_path(engine).unlink()
    decision, reasons = engine_decision(engine, RTX, onnx_sha256="a" * 64, precision="fp16", profile=PROFILE)
    assert decision == "build" and "sidecar is missing" in reasons[0]


def test_half_written_engine_never_replaces_a_good_one(tmp_path, monkeypatch):
    engine = fake_engine(tmp_path, RTX)
    good = engine.read_bytes()

    def crash(path, data):
        with atomic_path(path) as tmp:  # the real atomic write, interrupted midway
            tmp.write_bytes(data[:10])
            raise OSError("disk full")

    monkeypatch.setattr(engine_cache, "write_bytes_atomic", crash)
    with pytest.raises(OSError, match="disk full"):
        write_engine(engine, b"new engine bytes" * 100, sidecar_for(RTX, sha="b" * 64))
    assert engine.read_bytes() == good  # the old engine is intact
    assert not sidecar_path(engine).exists()  # ...and no longer vouched for: it will be rebuilt
    assert sorted(p.name for p in tmp_path.iterdir()) == [engine.name]  # no temp files


def test_select_engine_prefers_a_sibling_built_for_this_gpu(tmp_path):
    bundle = make_palette_bundle(tmp_path / "b")  # has model.onnx
    sha = sha256_file(bundle.path / "model.onnx")
    keys = {}
    for platform in (ORIN, RTX):
        engine = fake_engine(bundle.path, platform, sha=sha)
        keys[platform] = engine_key(engine.name)
        bundle.add_artifact(keys[platform], Artifact(engine.name, "tensorrt", "probabilities",
                                                     {"precision": "fp16", "onnx_artifact": "onnx"}))
    assert select_engine(bundle, keys[ORIN], ORIN) == (keys[ORIN], {})
    key, rejected = select_engine(bundle, keys[ORIN], RTX)  # card lists the Orin engine first
    assert key == keys[RTX] and "this GPU is 8.9" in rejected[keys[ORIN]][0]
    key, rejected = select_engine(bundle, keys[ORIN], L4)
    assert key is None and set(rejected) == set(keys.values())
    # an engine whose ONNX changed since is not selected either
    (bundle.path / "model.onnx").write_bytes((bundle.path / "model.onnx").read_bytes() + b"\0")
    key, rejected = select_engine(bundle, keys[RTX], RTX)
    assert key is None and "built from another model.onnx" in rejected[keys[RTX]][0]


def test_a_sibling_without_the_confidence_output_is_not_selected(tmp_path):
    bundle = make_palette_bundle(tmp_path / "b")
    sha = sha256_file(bundle.path / "model.onnx")
    keys = {}
    for platform, confidence in ((ORIN, "confidence"), (RTX, None)):
        engine = fake_engine(bundle.path, platform, sha=sha)
        keys[platform] = engine_key(engine.name)
        bundle.add_artifact(keys[platform], Artifact(engine.name, "tensorrt", "argmax",
                                                     {"precision": "fp16", "onnx_artifact": "onnx"},
                                                     confidence=confidence))
    key, rejected = select_engine(bundle, keys[ORIN], RTX)
    assert key is None and list(rejected) == [keys[ORIN]]


def test_rebuild_switch_from_environment(monkeypatch):
    monkeypatch.delenv(engine_cache.REBUILD_ENV, raising=False)
    assert rebuild_allowed_by_env()
    for off in ("0", "false", "No", "off"):
        monkeypatch.setenv(engine_cache.REBUILD_ENV, off)
        assert not rebuild_allowed_by_env()


def test_no_tensorrt_here_is_explained(tmp_path):
    reason = tensorrt_runtime.runtime_unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT and a GPU are present; this checks the message where they are not")
    assert "TensorRT" in reason or "cuda-python" in reason or "GPU" in reason
    with pytest.raises(ExportError, match="--tensorrt needs TensorRT 10 or 11 and an NVIDIA GPU"):
        require_runtime()
    bundle = make_palette_bundle(tmp_path / "b")
    engine = fake_engine(bundle.path, RTX)
    bundle.add_artifact(engine_key(engine.name), Artifact(engine.name, "tensorrt", "probabilities"))
    with pytest.raises(BackendUnavailable, match="backend tensorrt cannot run"):
        Segmenter(bundle, backend="tensorrt")
    assert Segmenter(bundle).backend.name == "onnxruntime"  # auto falls back


def bundle_with_engine_for(tmp_path, platform, **details):
    """A palette bundle (with model.onnx) holding one fp16 engine built for ``platform``."""
    bundle = make_palette_bundle(tmp_path / "b")
    engine = fake_engine(bundle.path, platform, sha=sha256_file(bundle.path / "model.onnx"))
    key = engine_key(engine.name)
    bundle.add_artifact(key, Artifact(engine.name, "tensorrt", "probabilities",
                                      {"precision": "fp16", "onnx_artifact": "onnx", **details}))
    return bundle, key


def test_resolve_engine_uses_a_matching_engine_without_building(tmp_path):
    bundle, key = bundle_with_engine_for(tmp_path, RTX)
    never = lambda *_: pytest.fail("a matching engine must not be rebuilt")  # noqa: E731
    assert resolve_engine(bundle, key, RTX, rebuild=True, build=never) == key


def test_resolve_engine_rebuilds_a_foreign_engine_or_refuses(tmp_path):
    bundle, key = bundle_with_engine_for(tmp_path, ORIN)
    calls = []
    assert resolve_engine(bundle, key, RTX, rebuild=True,
                          build=lambda b, k: calls.append((b, k)) or "rebuilt") == "rebuilt"
    assert calls == [(bundle, key)]
    with pytest.raises(EngineMismatch, match=r"(?s)runs on NVIDIA GeForce RTX 4090 \(sm89\).*this GPU is 8\.9"
                                             r".*rebuilding is off \(CITYSEG_TENSORRT_REBUILD=0\).*--precision fp16"):
        resolve_engine(bundle, key, RTX, rebuild=False, build=lambda *_: pytest.fail("rebuild is off"))


def test_resolve_engine_refuses_when_there_is_no_onnx_to_rebuild_from(tmp_path):
    bundle, key = bundle_with_engine_for(tmp_path, ORIN, onnx_artifact="onnx_argmax")
    with pytest.raises(EngineMismatch, match="the bundle has no ONNX to rebuild from"):
        resolve_engine(bundle, key, RTX, rebuild=True, build=lambda *_: pytest.fail("nothing to build from"))


def test_the_tensorrt_backend_does_not_import_the_converter():
    code = ("import sys, cityseg.inference.backends.tensorrt, cityseg.tensorrt.engine_cache, "
            "cityseg.tensorrt.runtime; print(sorted(m for m in sys.modules if m.startswith("
            "('cityseg.export', 'cityseg.export.tensorrt_build'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_backend_rebuilds_through_the_converter(monkeypatch):
    import cityseg.export.tensorrt_build as build
    from cityseg.inference.backends.tensorrt import rebuild_engine

    calls = []
    monkeypatch.setattr(build, "rebuild_engine", lambda b, k: calls.append((b, k)) or "rebuilt")
    assert rebuild_engine("bundle", "key") == "rebuilt"
    assert calls == [("bundle", "key")]

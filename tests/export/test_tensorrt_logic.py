"""The plain-Python half of the TensorRT export: names, sidecars, rebuild-or-refuse, calibration
batches, atomic engine writes - with real files and fake sidecars, no TensorRT needed."""

import json

import cv2
import numpy as np
import pytest

import cityseg.export.tensorrt as trt_export
from cityseg.bundle import Artifact
from cityseg.errors import BackendUnavailable, BundleError, InputError
from cityseg.export import EngineMismatch
from cityseg.fileio import atomic_path
from cityseg.export.tensorrt import (BatchProfile, CalibrationBatches, EngineSidecar, Platform,
                                     calibration_cache_path, calibration_files, engine_decision,
                                     engine_filename, engine_key, mismatches, rebuild_allowed_by_env,
                                     select_engine, sidecar_path, timing_cache_path, write_engine)
from cityseg.inference import Segmenter
from support import make_palette_bundle, painted_scene, palette_card

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
    calib = calibration_cache_path(tmp_path, "model.onnx", RTX, "0123456789abcdef" * 4)
    assert calib == tmp_path / "model.int8.trt10.3.0.onnx-0123456789ab.calib"
    assert calibration_cache_path(tmp_path, "model.onnx", L4, "0123456789abcdef" * 4) == calib  # GPU-portable


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

    monkeypatch.setattr(trt_export, "write_bytes_atomic", crash)
    with pytest.raises(OSError, match="disk full"):
        write_engine(engine, b"new engine bytes" * 100, sidecar_for(RTX, sha="b" * 64))
    assert engine.read_bytes() == good  # the old engine is intact
    assert not sidecar_path(engine).exists()  # ...and no longer vouched for: it will be rebuilt
    assert sorted(p.name for p in tmp_path.iterdir()) == [engine.name]  # no temp files


def test_select_engine_prefers_a_sibling_built_for_this_gpu(tmp_path):
    bundle = make_palette_bundle(tmp_path / "b")  # has model.onnx
    sha = trt_export.sha256_file(bundle.path / "model.onnx")
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


def test_rebuild_switch_from_environment(monkeypatch):
    monkeypatch.delenv(trt_export.REBUILD_ENV, raising=False)
    assert rebuild_allowed_by_env()
    for off in ("0", "false", "No", "off"):
        monkeypatch.setenv(trt_export.REBUILD_ENV, off)
        assert not rebuild_allowed_by_env()


def write_images(directory, count, size=(90, 160)):
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        rgb, _ = painted_scene(*size, seed=i)
        path = directory / f"frame_{i:03d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def test_calibration_files_sorted_and_spread(tmp_path):
    paths = write_images(tmp_path / "calib" / "aachen", 10)
    (tmp_path / "calib" / "notes.txt").write_text("not an image")
    assert calibration_files(tmp_path / "calib") == paths
    picked = calibration_files(tmp_path / "calib", limit=4)
    assert picked == [paths[i] for i in (0, 3, 6, 9)]
    with pytest.raises(InputError, match="no such directory"):
        calibration_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        calibration_files(tmp_path / "empty")


def test_calibration_batches_are_preprocessed_like_inference(tmp_path):
    card = palette_card(height=64, width=128, resize="area")
    paths = write_images(tmp_path / "calib", 7)
    batches = CalibrationBatches(paths, card, batch_size=3)
    assert len(batches) == 2 and batches.shape == (3, 64, 128, 3) and batches.nbytes == 3 * 64 * 128 * 3 * 4
    produced = list(batches)
    assert len(produced) == 2 and all(b.dtype == np.float32 and b.flags.c_contiguous for b in produced)
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths[:3]]
    assert np.array_equal(produced[0], card.preprocess(frames))
    with pytest.raises(InputError, match="at least 8 images"):
        CalibrationBatches(paths, card, batch_size=8)


def test_no_tensorrt_here_is_explained(tmp_path):
    reason = trt_export.runtime_unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT and a GPU are present; this checks the message where they are not")
    assert "TensorRT" in reason or "cuda-python" in reason or "GPU" in reason
    with pytest.raises(trt_export.ExportError, match="--tensorrt needs TensorRT 10 and an NVIDIA GPU"):
        trt_export.require_runtime()
    bundle = make_palette_bundle(tmp_path / "b")
    engine = fake_engine(bundle.path, RTX)
    bundle.add_artifact(engine_key(engine.name), Artifact(engine.name, "tensorrt", "probabilities"))
    with pytest.raises(BackendUnavailable, match="backend tensorrt cannot run"):
        Segmenter(bundle, backend="tensorrt")
    assert Segmenter(bundle).backend.name == "onnxruntime"  # auto falls back

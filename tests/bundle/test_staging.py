"""What `import`/`pull --force` count as a bundle's own files, and the swap that replaces only those."""

from __future__ import annotations

import json

import pytest

from cityseg.bundle.staging import own_files, staged_bundle
from cityseg.errors import BundleError, InputError


def write_card(folder, artifacts):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps({"artifacts": artifacts}))
    for entry in artifacts.values():
        (folder / entry["path"]).write_bytes(b"x")


def test_own_files_are_the_card_its_artifacts_engine_sidecars_and_timing_caches(tmp_path):
    root = tmp_path / "b"
    write_card(root, {"onnx": {"path": "model.onnx", "format": "onnx"},
                      "e": {"path": "model.fp16.sm89.trt10.3.0.engine", "format": "tensorrt"},
                      "outside": {"path": "../escape.onnx", "format": "onnx"}})
    (root / "model.fp16.sm89.trt10.3.0.engine.json").write_text("{}")
    (root / "timing.sm89.trt10.3.0.cache").write_bytes(b"t")
    (root / "model.onnx.json").write_text("{}")  # not a sidecar of an ONNX: the user's
    (root / "notes.txt").write_text("mine")
    assert own_files(root) == {"model.json", "model.onnx", "model.fp16.sm89.trt10.3.0.engine",
                               "model.fp16.sm89.trt10.3.0.engine.json", "timing.sm89.trt10.3.0.cache"}


def test_a_corrupt_card_is_still_replaced_with_force_and_other_files_stay(tmp_path):
    root = tmp_path / "b"
    root.mkdir()
    (root / "model.json").write_text("{not json")
    (root / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="a model bundle already exists there"):
        with staged_bundle(root, force=False):
            pass
    with staged_bundle(root, force=True) as staging:
        write_card(staging, {"onnx": {"path": "model.onnx", "format": "onnx"}})
        (staging / ".download").mkdir()
        (staging / ".download" / "file.tflite").write_bytes(b"d")  # not on the card: not swapped in
    assert sorted(p.name for p in root.iterdir()) == ["model.json", "model.onnx", "notes.txt"]
    assert not list(tmp_path.glob(".*staging"))


def test_a_failure_inside_leaves_the_old_bundle_and_removes_what_it_made(tmp_path):
    root = tmp_path / "b"
    write_card(root, {"onnx": {"path": "model.onnx", "format": "onnx"}})
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    with pytest.raises(RuntimeError):
        with staged_bundle(root, force=True) as staging:
            write_card(staging, {"onnx": {"path": "model.onnx", "format": "onnx"}})
            raise RuntimeError("the trial run failed")
    assert {p.name: p.read_bytes() for p in root.iterdir()} == before
    deep = tmp_path / "n1" / "n2" / "b"
    with pytest.raises(RuntimeError):
        with staged_bundle(deep, force=False):
            raise RuntimeError("interrupted")
    assert not (tmp_path / "n1").exists()


def test_a_file_given_as_out_is_refused(tmp_path):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"mine")
    with pytest.raises(InputError, match="is a file, not a folder"):
        with staged_bundle(out, force=True):
            pass
    assert out.read_bytes() == b"mine"

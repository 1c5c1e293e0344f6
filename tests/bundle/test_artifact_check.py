"""A model file that does not match its card is named; artifact paths stay inside the bundle."""

from __future__ import annotations

import json
import os
import shutil

import cv2
import pytest

from cityseg.bundle import Bundle
from cityseg.bundle.card import CARD_FILE
from cityseg.cli import main
from cityseg.errors import BundleError
from cityseg.fileio import sha256_file
from cityseg.inference.backends import open_backend

from support import make_palette_bundle, painted_scene


def recorded_bundle(root):
    """A palette bundle whose card records each ONNX file's sha256 and size, as cityseg export does."""
    bundle = make_palette_bundle(root, "trainid", 64, 128, formats=("onnx", "onnx_argmax"))
    for key in ("onnx", "onnx_argmax"):
        path = bundle.artifact_path(key)
        bundle.card.artifacts[key].details.update(sha256=sha256_file(path), bytes=path.stat().st_size)
    bundle.save()
    return Bundle.load(root)


def test_a_file_copied_over_the_model_is_named(tmp_path, capsys):
    bundle = recorded_bundle(tmp_path / "b")
    open_backend(bundle, "onnxruntime", "onnx")  # the bundle's own file passes
    own = bundle.artifact_path("onnx").read_bytes()
    shutil.copyfile(bundle.artifact_path("onnx_argmax"), bundle.artifact_path("onnx"))
    bundle.artifact_path("onnx_argmax").write_bytes(own)  # swapped: whichever segment picks is wrong
    with pytest.raises(BundleError, match=r"model.onnx: this file does not belong to the card .*\(artifact 'onnx'\)"):
        open_backend(Bundle.load(bundle.path), "onnxruntime", "onnx")
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), painted_scene(128, 256, "trainid", seed=1)[0])
    assert main(["segment", str(image), "--model", str(bundle.path), "--out", str(tmp_path / "o"),
                 "--backend", "onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert "does not belong to the card" in err and "Traceback" not in err and err.count("\n") == 1


def test_same_size_other_bytes_is_caught_by_the_hash(tmp_path):
    bundle = recorded_bundle(tmp_path / "b")
    path = bundle.artifact_path("onnx")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(BundleError, match="sha256"):
        bundle.verified_artifact_path("onnx")


@pytest.mark.parametrize("bad, word", [("/etc/passwd", "absolute"), ("../other/model.onnx", "outside")])
def test_artifact_paths_outside_the_bundle_are_refused(tmp_path, bad, word):
    bundle = make_palette_bundle(tmp_path / "b", "trainid", 64, 128)
    (tmp_path / "other").mkdir()
    shutil.copyfile(bundle.artifact_path("onnx"), tmp_path / "other" / "model.onnx")
    card = json.loads((bundle.path / CARD_FILE).read_text())
    card["artifacts"]["onnx"]["path"] = bad
    (bundle.path / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(BundleError, match=f"artifact 'onnx' path .* is {word}"):
        Bundle.load(bundle.path)


def test_a_file_given_as_the_bundle_is_named_as_a_file(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(BundleError, match="is a file, not a model bundle directory"):
        Bundle.load(tmp_path / "model.onnx")


@pytest.mark.parametrize("tamper", ["replaced", "sha zeroed"])
def test_export_precision_refuses_an_onnx_that_does_not_match_its_card(tmp_path, capsys, tamper):
    bundle = recorded_bundle(tmp_path / "b")
    if tamper == "replaced":  # another graph of the same kind copied over the bundle's own
        shutil.copyfile(bundle.artifact_path("onnx_argmax"), bundle.artifact_path("onnx"))
    else:
        card = json.loads((bundle.path / CARD_FILE).read_text())
        card["artifacts"]["onnx"]["details"]["sha256"] = "0" * 64
        (bundle.path / CARD_FILE).write_text(json.dumps(card))
    assert main(["export", str(bundle.path), "--precision", "fp16"]) == 2
    err = capsys.readouterr().err
    assert "model.onnx: this file does not belong to the card" in err and err.count("\n") == 1
    assert "onnx_fp16" not in Bundle.load(bundle.path).card.artifacts
    assert not [p for p in bundle.path.iterdir() if "fp16" in p.name]

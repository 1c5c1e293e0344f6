"""The precision vocabulary: one list of names everywhere, and every artifact records the precision
it really has - an int8 TensorRT engine says int8 on its card entry, old cards included - so the
automatic choice reads it instead of guessing."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from cityseg.bundle import Artifact, Bundle
from cityseg.bundle.precision import PRECISIONS, REDUCED_PRECISIONS, RULES, TENSORRT_PRECISIONS, check_precision
from cityseg.errors import InputError
from cityseg.export.tensorrt_build import _engine_artifact
from cityseg.inference.backends import pick_artifact
from cityseg.tensorrt.engine_cache import EngineSidecar, Platform, engine_filename, engine_key, write_engine

from support import make_palette_bundle

RTX = Platform("10.3.0", "NVIDIA GeForce RTX 4090", "8.9")


def _sidecar(precision: str, onnx_artifact: str) -> EngineSidecar:
    return EngineSidecar(tensorrt_version=RTX.tensorrt_version, gpu_name=RTX.gpu_name,
                         compute_capability=RTX.compute_capability, precision=precision, input_name="image",
                         input_shape=[64, 128, 3], output_name="probabilities", output_kind="probabilities",
                         profile={"min": 1, "opt": 1, "max": 1}, onnx_file="model_int8.onnx", onnx_sha256="a" * 64,
                         workspace_mb=1024, onnx_artifact=onnx_artifact)


def test_one_vocabulary_for_every_command():
    from cityseg.cli import build_parser

    assert PRECISIONS == ("fp32", "fp16", "int8", "bf16") and set(RULES) == set(PRECISIONS)
    assert set(REDUCED_PRECISIONS) == set(PRECISIONS) - {"fp32"} and "bf16" not in TENSORRT_PRECISIONS
    assert RULES["int8"].needs_calibration and not RULES["bf16"].own_file and RULES["bf16"].runtimes == ("openvino",)
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    export = next(a for a in sub.choices["export"]._actions if a.dest == "precision")
    bench = next(a for a in sub.choices["bench"]._actions if a.dest == "precisions")
    assert tuple(export.choices) == tuple(bench.choices) == PRECISIONS
    with pytest.raises(InputError, match="precision 'fp8': use one of fp32, fp16, int8$"):
        check_precision("fp8", TENSORRT_PRECISIONS)


def test_an_int8_engine_records_int8_and_the_automatic_pick_reads_it(tmp_path):
    bundle = make_palette_bundle(tmp_path / "b")
    shutil.copy(bundle.path / "model.onnx", bundle.path / "model_int8.onnx")  # stands in for the Q/DQ file
    bundle.add_artifact("onnx_int8", Artifact("model_int8.onnx", "onnx", "probabilities", precision="int8",
                                              details={"gate": {"passed": True}}))
    engine = bundle.path / engine_filename("model_int8.onnx", "int8", RTX)
    write_engine(engine, b"serialized engine", _sidecar("int8", "onnx_int8"))  # as TensorRT leaves it
    entry = _engine_artifact(engine, bundle, "onnx_int8", _sidecar("int8", "onnx_int8"))
    assert entry.precision == "int8"  # was recorded 'fp32' (the field's default)
    entry.details["parity"] = {"passed": True}
    bundle.add_artifact(engine_key(engine.name), entry)
    loaded = Bundle.load(bundle.path)
    assert loaded.card.artifacts[engine_key(engine.name)].precision == "int8"
    assert pick_artifact(loaded, "tensorrt") == engine_key(engine.name)  # the engine's own precision
    assert pick_artifact(loaded, "tensorrt", precision="fp16") is None
    assert pick_artifact(loaded, "onnx") == "onnx"  # the CPU default stays fp32 (choice.py picks others)


def test_a_card_written_before_engines_recorded_their_precision_reads_true(tmp_path):
    bundle = make_palette_bundle(tmp_path / "b")
    engine = bundle.path / engine_filename("model.onnx", "int8", RTX)
    write_engine(engine, b"serialized engine", _sidecar("int8", "onnx"))
    bundle.add_artifact(engine_key(engine.name), Artifact(engine.name, "tensorrt", "probabilities",
                                                          {"precision": "int8", "parity": {"passed": True}}))
    card = json.loads((bundle.path / "model.json").read_text())
    entry = card["artifacts"][engine_key(engine.name)]
    entry.pop("precision", None)  # as the old converter wrote it: the precision in details only
    (bundle.path / "model.json").write_text(json.dumps(card))
    artifact = Bundle.load(bundle.path).card.artifacts[engine_key(engine.name)]
    assert artifact.precision == "int8" and artifact.gated
    ungated = Artifact(engine.name, "tensorrt", "probabilities", {"precision": "fp16"})
    assert ungated.precision == "fp16" and not ungated.gated  # no parity recorded: never picked

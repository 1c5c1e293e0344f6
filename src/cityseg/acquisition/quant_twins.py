"""Float twins of imported quantised graphs: what TensorRT can build from a uint8 TFLite/Q-DQ model.

An imported graph with uint8 / non-zero-zero-point Q/DQ (every int8 TFLite model converted by
tf2onnx) is refused by TensorRT's ONNX parser. :func:`add_float_twin` writes, inside the import's
staging folder, its float twin (:func:`cityseg.export.qdq_float.float_twin`): the publisher's
graph moves to ``model_quantized.onnx`` (card key ``onnx_quantized``: ONNX Runtime / OpenVINO on
CPUs, never TensorRT), the twin becomes ``model.onnx`` (key ``onnx``, fp32 with class scores then
ids out: what ``cityseg export --precision`` and ``--tensorrt`` build from), gated against the
original on street frames.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from cityseg.bundle import Artifact, Bundle
from cityseg.export import gate as accuracy_gate
from cityseg.export import latency, parity
from cityseg.export import tensorrt_compat as trt_compat
from cityseg.export.calibration import FrameSet
from cityseg.export.precision import class_runner
from cityseg.export.qdq_float import float_twin, needs_float_twin
from cityseg.fileio import sha256_file

log = logging.getLogger(__name__)

ORIGINAL_KEY, ORIGINAL_FILE = "onnx_quantized", "model_quantized.onnx"
TWIN_KEY = "onnx"
TWIN_MIN_AGREEMENT = 0.99
"""Pixel agreement with the original (ONNX Runtime) the float twin must reach at import. The twin
computes Convs and Adds on the original's integers (:mod:`cityseg.export.integer_ops`), so it
reproduces the quantised kernels' class ids up to the rare rounding tie of a Resize (Coral: 99.99 %
on CamVid test frames, docs/MODELS.md)."""
GATE_FRAMES = 4
"""Street frames the twin is checked on at import (each runs both graphs at the model's size)."""
LATENCY_REPEATS = 3


def add_float_twin(bundle: Bundle, shown: Path, frames: list[np.ndarray] | None = None) -> Bundle:
    """When the bundle's ``onnx`` artifact is a quantised graph TensorRT rejects, make its float
    twin the ``onnx`` artifact and keep the publisher's graph as ``onnx_quantized`` (gated against
    the twin, CPU latencies measured side by side); the bundle unchanged otherwise. ``shown``: the
    file the user gave (named in errors)."""
    import onnx

    original = bundle.card.artifacts.get(TWIN_KEY)
    if original is None or original.output != "argmax":
        return bundle
    path = bundle.artifact_path(TWIN_KEY)
    model = onnx.load(str(path))
    if not needs_float_twin(model):
        return bundle
    twin_model = float_twin(model, str(shown))
    card = bundle.card
    quantized = bundle.path / ORIGINAL_FILE
    os.replace(path, quantized)
    onnx.save(twin_model, str(path))
    scores, ids, axis = twin_output_names(twin_model)
    original.path = ORIGINAL_FILE
    original.precision = "int8"
    original.details.update(role="publisher-quantized", activations="uint8-asymmetric",
                            float_twin=TWIN_KEY)
    rank = len(twin_model.graph.output[0].type.tensor_type.shape.dim)
    twin = Artifact(path.name, "onnx", "logits", output_layout="NCHW" if axis % rank == 1 else "NHWC")
    frames, source = parity.parity_frames(card, frames, count=GATE_FRAMES)
    report = accuracy_gate.run_gate(card, class_runner(path, twin, card), class_runner(quantized, original, card),
                                    FrameSet(frames, source), candidate=f"onnxruntime:{ORIGINAL_FILE}")
    passed = report.pixel_agreement >= TWIN_MIN_AGREEMENT
    figures = (f"pixel agreement {report.pixel_agreement:.2%} with the original on {report.frames} "
               f"{report.frame_source} frames, required >= {TWIN_MIN_AGREEMENT:.0%}")
    verdict = {**report.to_dict(), "failures": [] if passed else [f"pixel agreement {report.pixel_agreement:.2%} < "
                                                                  f"{TWIN_MIN_AGREEMENT:.0%}"],
               "passed": passed, "rule": f"float twin vs original pixel agreement >= {TWIN_MIN_AGREEMENT:.0%}"}
    if not passed:  # the surgery changed what the model says: keep only the publisher's graph
        os.replace(quantized, path)
        original.path, original.precision = path.name, "fp32"
        original.details["float_twin"] = f"refused: {verdict['failures'][0]}"
        log.warning("%s: the float twin disagrees with the original (%s); ONNX Runtime runs the original, "
                    "TensorRT cannot", shown, figures)
        bundle.save()
        return bundle
    timings = latency.measure(card, {"fp32": path, "int8": quantized}, "int8", repeats=LATENCY_REPEATS)
    original.details.update(gate=verdict, latency_ms=timings)
    findings = trt_compat.check_model(twin_model)
    twin.details = {
        "role": "float-twin", "source_artifact": ORIGINAL_KEY, "source_sha256": sha256_file(quantized),
        "opset": original.details.get("opset"), "scores_output": scores, "ids_output": ids,
        "input": original.details.get("input"),
        "output": {"name": scores, "shape": _dims(twin_model.graph.output[0]), "dtype": "float32"},
        "trial": {**original.details.get("trial", {}), "output_stride": 1.0},
        "agreement_with_original": verdict, "latency_ms": timings,
        "tensorrt_check": [str(f) for f in findings], "sha256": sha256_file(path),
        "bytes": path.stat().st_size}
    card.artifacts = {TWIN_KEY: twin, ORIGINAL_KEY: original,
                      **{k: a for k, a in card.artifacts.items() if k not in (TWIN_KEY, ORIGINAL_KEY)}}
    bundle.save()
    log.info("%s: float twin written (%s)", shown, figures)
    return bundle


def twin_output_names(model) -> tuple[str, str, int]:
    """(scores output, ids output, ArgMax axis) of a float twin made by :func:`float_twin`."""
    scores, ids = model.graph.output[0].name, model.graph.output[1].name
    argmax = next(n for n in model.graph.node if n.op_type == "ArgMax" and n.input[0] == scores)
    return scores, ids, next((a.i for a in argmax.attribute if a.name == "axis"), 0)


def _dims(value) -> list:
    dims = value.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims]

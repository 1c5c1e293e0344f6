"""Precision in the model file: int8 (static Q/DQ) and fp16 ONNX from a bundle's fp32 ONNX, gated.

* ``int8``: ONNX Runtime's ``quantize_static`` in QDQ format - per-channel symmetric int8 weights,
  int8 activations calibrated (minmax / entropy / percentile) on frames fed through the bundle's own
  preprocessing; the classifier head (the last Conv and what follows it) is kept in float, which
  measured better (docs/EXPORT.md "Precision"). Writes ``model_int8.onnx`` and its argmax-head twin
  ``model_argmax_int8.onnx`` (ArgMax + Cast appended to the int8 scores graph).
* ``fp16``: the fp32 graph converted to fp16 with fp32 inputs and outputs (``model_fp16.onnx`` and
  ``model_argmax_fp16.onnx``), what a strongly typed TensorRT network builds in fp16.
* ``bf16``: no new file - the fp32 ONNX run by OpenVINO with a bf16 hint, recorded as the card entry
  ``onnx_bf16`` (runtime openvino), where the CPU reports BF16.

Every candidate passes the accuracy gate (:mod:`cityseg.export.gate`) before anything is written;
files are staged in a hidden folder of the bundle and renamed into place. Works from any bundle's
``onnx`` artifact, so imported bundles quantize the same way.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cityseg.bundle import Artifact, Bundle
from cityseg.bundle.precision import REDUCED_PRECISIONS, check_precision
from cityseg.errors import InputError
from cityseg.export import gate as accuracy_gate
from cityseg.export import latency, parity
from cityseg.export.calibration import FrameFeed, FrameSet
from cityseg.export.errors import ExportError
from cityseg.export.onnx import drop_softmax_before_argmax, onnxruntime_runner, refuse_overwrite
from cityseg.fileio import sha256_file
from cityseg.inference import openvino_runtime as ov_runtime

log = logging.getLogger(__name__)

CALIB_METHODS = ("minmax", "entropy", "percentile")
TRY_ORDER = ("percentile", "entropy", "minmax")
"""Methods a refused int8 export suggests, best first as measured here (docs/EXPORT.md): percentile
kept the demo-width unet_lite at 512x1024 within the gate where minmax and entropy lost 5 points of car."""
SOURCE_KEY = "onnx"
ARGMAX_KEY = "onnx_argmax"


class GateFailed(ExportError):
    """A reduced-precision model failed its accuracy gate; nothing was written."""

    def __init__(self, message: str, report: accuracy_gate.GateReport):
        super().__init__(message)
        self.report = report


@dataclass
class PrecisionResult:
    """What export_precision wrote: card keys, their gate reports, and the latencies it measured."""

    keys: list[str] = field(default_factory=list)
    reports: list[accuracy_gate.GateReport] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)


def precision_artifact(precision: str, source_key: str = SOURCE_KEY) -> tuple[str, str]:
    """(card key, file name) of a precision variant: ('onnx_int8', 'model_int8.onnx'), ..."""
    stem = "model_argmax" if source_key == ARGMAX_KEY else "model"
    return f"{source_key}_{precision}", f"{stem}_{precision}.onnx"


def source_artifact(bundle: Bundle) -> tuple[str, Artifact]:
    """The bundle's fp32 scores ONNX (tensor I/O), the source of every precision variant."""
    artifact = bundle.card.artifacts.get(SOURCE_KEY)
    if artifact is None or artifact.format != "onnx" or artifact.fused or artifact.precision != "fp32":
        raise ExportError(f"{bundle.path}: no fp32 model.onnx to derive reduced precisions from; run "
                          f"`cityseg export {bundle.path} --onnx` first")
    return SOURCE_KEY, artifact


def reduced_source(bundle: Bundle, source: Artifact, source_path: Path,
                   workdir: Path) -> tuple[Path, dict[str, tuple[float, float]] | None]:
    """The fp32 graph reduced precisions are converted from: the source itself, except for the float
    twin of an imported quantised model (:mod:`cityseg.export.qdq_float`), whose integer-grid
    arithmetic (sums up to 2**24, Round/Clip emulation) neither fp16 nor int8 Q/DQ can carry; for it,
    the plain real-valued float graph of the publisher's file (Q/DQ dropped, weights dequantised).
    Returns (that graph, the activation ranges int8 is seeded with: the publisher's own, for a twin;
    else None). The gates still compare against the twin."""
    import onnx

    from cityseg.export.qdq_float import activation_ranges, float_twin

    original_key = source.details.get("source_artifact") if source.details.get("role") == "float-twin" else None
    if original_key is None:
        return source_path, None
    original_path = bundle.verified_artifact_path(original_key)
    original = onnx.load(str(original_path))
    real = workdir / "real_valued.onnx"
    onnx.save(float_twin(original, str(original_path), rounding=False), str(real))
    return real, activation_ranges(original)


def class_runner(path: Path, artifact: Artifact, card, backend: str = "onnxruntime", precision: str = "fp32"):
    """float32 batch -> NxHxW class indices of one ONNX file (ONNX Runtime CPU, or OpenVINO)."""
    run = (onnxruntime_runner(path) if backend == "onnxruntime"
           else ov_runtime.OpenVinoRunner(path, precision, artifact.frame_shape(card)).infer)
    canonical, kind = parity.canonical_runner(run, artifact, card)
    return lambda batch: parity.class_ids(canonical(batch), kind)


ACTIVATIONS = {False: "uint8-asymmetric", True: "int8-symmetric"}
"""Activation encoding per ``for_tensorrt``: ONNX Runtime's and OpenVINO's fast x86 int8 kernels take
uint8 activations with a zero point (U8S8, measured 1.6x faster than s8 here); TensorRT takes only
symmetric int8 Q/DQ (zero point 0)."""

WEIGHT_BITS = {False: (7, 8), True: (8,)}
"""Weight bits tried, in order, per ``for_tensorrt``; the first that passes the gate is written. The
CPU artifact first uses 7 of its 8 bits (ONNX Runtime's ``reduce_range``): on x86 CPUs without VNNI
(AVX2, AVX-512 without VNNI) the U8S8 kernels add pairs of uint8 x int8 products in int16, which
saturates with full-range weights - measured on this project's non-VNNI AMD EPYC: the demo bundle's
int8 mIoU fell from 18.75 to 11.62 (road -49 points) with 8-bit weights and was 18.63 with 7-bit
ones. 7 bits also hold on VNNI CPUs, so the file runs on whatever CPU the robot has. A model whose
margins 7 bits cannot keep (the gate fails) is tried with 8 bits; the card's ``weight_bits`` says
which, and ONNX Runtime runs an 8-bit file with its exact (non-saturating, slower on CPUs without
VNNI) int8 kernels (:data:`cityseg.inference.onnxruntime_session.EXACT_INT8`), as the gate does. TensorRT's int8 is
exact in 8 bits."""


def quantize_int8(source: Path, target: Path, frames: FrameSet, card, method: str, workdir: Path,
                  keep_head_float: bool = True, for_tensorrt: bool = False, weight_bits: int = 8,
                  ranges: dict[str, tuple[float, float]] | None = None) -> None:
    """Static Q/DQ quantization of ``source`` into ``target``: per-channel symmetric int8 weights
    (``weight_bits`` of them used: 7 is ONNX Runtime's reduce_range), activations as
    :data:`ACTIVATIONS` says for ``for_tensorrt``; ``ranges`` ({tensor: (rmin, rmax)}) replace the
    calibrated range of the tensors they name (symmetric for TensorRT: the larger side)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = workdir / "prepared.onnx"
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    model = onnx.load(str(prepared))
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    feed = FrameFeed(frames, card, model.graph.input[0].name, batch.dim_value if batch.dim_value > 0 else 1)
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    names = {o for n in model.graph.node for o in n.output}
    overrides = {name: [{"rmin": np.float32(low), "rmax": np.float32(high)}]
                 for name, (low, high) in (ranges or {}).items() if name in names}
    quantize_static(str(prepared), str(target), feed, quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8 if for_tensorrt else QuantType.QUInt8,
                    calibrate_method=methods[method],
                    nodes_to_exclude=head_nodes(model.graph) if keep_head_float else [],
                    reduce_range=weight_bits == 7,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": for_tensorrt,
                                   "CalibStridedMinMax": calibration_stride(len(feed)),
                                   "TensorQuantOverrides": overrides})


CALIB_STRIDE = 4
"""Batches whose activations ONNX Runtime's calibrator holds at once. Without a stride it keeps every
activation of every calibration frame (and the histogram methods copy them once more): 64 frames of
a unet_lite at 512x1024 were killed for memory on a 24 GiB machine with entropy and percentile. The
ranges are merged across strides (min/max exactly; histograms by extending their bins)."""


def calibration_stride(batches: int) -> int:
    """The largest stride <= :data:`CALIB_STRIDE` that divides ``batches`` (ONNX Runtime needs that)."""
    return max(d for d in range(1, min(CALIB_STRIDE, max(batches, 1)) + 1) if batches % d == 0)


def head_nodes(graph) -> list[str]:
    """Names of the last Conv and every node after it (the classifier head and its softmax)."""
    nodes = list(graph.node)
    last = max((i for i, n in enumerate(nodes) if n.op_type == "Conv"), default=len(nodes))
    return [n.name for n in nodes[last:] if n.name]


def convert_fp16(source: Path, target: Path) -> None:
    """fp32 ONNX -> fp16 ONNX with fp32 inputs and outputs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))


def argmax_twin(scores: Path, target: Path, artifact: Artifact) -> bool:
    """Write the argmax-head twin of a scores ONNX (ArgMax over the class axis, Cast to uint8, the
    softmax before it dropped); False when the output is not a full-size score map (strided or 1-channel)."""
    import onnx
    from onnx import TensorProto, helper

    if artifact.output not in ("probabilities", "logits"):
        return False
    model = onnx.load(str(scores))
    output = model.graph.output[0]
    rank = len(output.type.tensor_type.shape.dim)
    axis = -1 if artifact.output_layout == "NHWC" else 1
    ids, classes = output.name + "__argmax", "classes"
    model.graph.node.extend([
        helper.make_node("ArgMax", [output.name], [ids], axis=axis, keepdims=0, name="twin_argmax"),
        helper.make_node("Cast", [ids], [classes], to=TensorProto.UINT8, name="twin_cast")])
    dims = [d for i, d in enumerate(output.type.tensor_type.shape.dim) if i != axis % rank]
    shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(classes, TensorProto.UINT8, shape))
    skip_quantized_softmax(model.graph, "twin_argmax")
    drop_softmax_before_argmax(model.graph)
    onnx.save(model, str(target))
    return True


def softmax_axis(node, rank: int = 4) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), -1) % rank


def skip_quantized_softmax(graph, argmax_name: str) -> None:
    """ArgMax(DQ(Q(Softmax(x)))) -> ArgMax(x): the classes are the same, the quantized probabilities
    are not needed (a softmax left in float is dropped by drop_softmax_before_argmax instead)."""
    producers = {out: n for n in graph.node for out in n.output}
    argmax = next(n for n in graph.node if n.name == argmax_name)
    chain, tensor = [], argmax.input[0]
    for op in ("DequantizeLinear", "QuantizeLinear", "Softmax"):
        node = producers.get(tensor)
        if node is None or node.op_type != op or sum(tensor in n.input for n in graph.node) != 1:
            return
        chain.append(node)
        tensor = node.input[0]
    if any(o.name in {out for n in chain for out in n.output} for o in graph.output):
        return
    if softmax_axis(chain[-1]) != next((a.i for a in argmax.attribute if a.name == "axis"), 0) % 4:
        return
    argmax.input[0] = tensor
    for node in chain:
        graph.node.remove(node)


def next_step(precision: str, method: str) -> str:
    """What to try after a failed gate."""
    others = [m for m in TRY_ORDER if m != method]
    if precision == "int8":
        return (f"try --calib-method {others[0]} (or {others[1]}), more or more representative calibration "
                "frames (--calib-images DIR / --calib-data ROOT), or --precision fp16")
    return "keep the fp32 model (or try int8 with calibration frames)"


def require_gate(report: accuracy_gate.GateReport, target: Path, precision: str, method: str) -> None:
    if not report.passed:
        raise GateFailed(f"{target}: refused - {report.summary()}. Nothing was written; "
                         f"{next_step(precision, method)}", report)


def export_precision(bundle: Bundle, precision: str, *, calibration: FrameSet | None = None,
                     evaluation: FrameSet, method: str = "minmax", force: bool = False,
                     keep_head_float: bool = True, for_tensorrt: bool = False,
                     refuse_failed: bool = True) -> PrecisionResult:
    """Write (int8, fp16) or record (bf16) a reduced-precision variant of the bundle's fp32 ONNX,
    gated against it on ``evaluation`` frames; GateFailed (nothing written) when it fails.
    ``for_tensorrt``: int8 activations symmetric (what TensorRT's Q/DQ takes). ``refuse_failed=False``
    (benchmarks only) writes a failing variant too, recorded with its failed gate, so it is never picked."""
    check_precision(precision, REDUCED_PRECISIONS)
    if method not in CALIB_METHODS:
        raise InputError(f"--calib-method {method!r}: use one of {', '.join(CALIB_METHODS)}")
    source_key, source = source_artifact(bundle)
    if precision == "bf16":
        return record_bf16(bundle, source_key, evaluation, force, refuse_failed)
    if precision == "int8" and calibration is None:
        raise InputError("--precision int8 needs calibration frames: --calib-images DIR, or --calib-data ROOT "
                         "--calib-split NAME (a few dozen frames of the target camera)")
    key, filename = precision_artifact(precision)
    twin_key, twin_name = precision_artifact(precision, ARGMAX_KEY)
    for k, name in ((key, filename), (twin_key, twin_name)):
        refuse_overwrite(bundle, k, bundle.path / name, force)
    source_path, card = bundle.verified_artifact_path(source_key), bundle.card
    workdir = Path(tempfile.mkdtemp(prefix=f".{precision}-", dir=bundle.path))
    try:
        staged, staged_twin = workdir / filename, workdir / twin_name
        candidate = Artifact(filename, "onnx", source.output, output_layout=source.output_layout,
                             precision=precision)
        twin = Artifact(twin_name, "onnx", "argmax", precision=precision)
        fp32 = class_runner(source_path, source, card)
        convert_from, ranges = reduced_source(bundle, source, source_path, workdir)
        ranges = None if for_tensorrt else ranges  # the publisher's uint8 ranges are exact only as uint8
        convert = (lambda bits: quantize_int8(convert_from, staged, calibration, card, method, workdir,
                                              keep_head_float, for_tensorrt, bits, ranges)) if precision == "int8" \
            else (lambda _: convert_fp16(convert_from, staged))
        report, weight_bits = _first_passing(card, fp32, staged, candidate, evaluation, convert,
                                             WEIGHT_BITS[for_tensorrt] if precision == "int8" else (None,))
        if refuse_failed:
            require_gate(report, bundle.path / filename, precision, method)
        twin_report = (accuracy_gate.run_gate(card, fp32, class_runner(staged_twin, twin, card), evaluation,
                                              candidate=f"onnxruntime:{twin_name}")
                       if argmax_twin(staged, staged_twin, source) else None)
        if twin_report is not None and refuse_failed:
            require_gate(twin_report, bundle.path / twin_name, precision, method)
        timings = latency.measure(card, {"fp32": source_path, precision: staged}, precision,
                                  exact_int8=weight_bits == 8)
        facts = {"precision": precision, "source_artifact": source_key, "source_sha256": sha256_file(source_path),
                 "latency_ms": timings}
        if precision == "int8":
            facts.update(method=method if ranges is None else f"seeded from {source.details['source_artifact']}",
                         calibration=calibration.describe(), activations=ACTIVATIONS[for_tensorrt],
                         weight_bits=weight_bits, float_nodes=head_nodes_of(staged) if keep_head_float else [])
        return _install(bundle, [(key, candidate, staged, report), (twin_key, twin, staged_twin, twin_report)],
                        facts, PrecisionResult(latency_ms=timings))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _first_passing(card, fp32, staged: Path, candidate: Artifact, evaluation: FrameSet, convert, tries: tuple):
    """(gate report, weight bits) of the first of ``tries`` whose ``convert(bits)`` into ``staged``
    passes the gate against ``fp32``; the last one's when none does."""
    for weight_bits in tries:
        convert(weight_bits)
        report = accuracy_gate.run_gate(card, fp32, class_runner(staged, candidate, card), evaluation,
                                        candidate=f"onnxruntime:{candidate.path}")
        if report.passed:
            break
    return report, weight_bits


def _install(bundle: Bundle, entries, facts: dict, result: PrecisionResult) -> PrecisionResult:
    """Move each gated (key, artifact, staged file, report) into the bundle and record it on the card."""
    for key, artifact, path, report in entries:
        if report is None:
            continue
        os.replace(path, bundle.path / artifact.path)
        artifact.details = {**facts, "sha256": sha256_file(bundle.path / artifact.path), "gate": report.to_dict()}
        bundle.add_artifact(key, artifact)
        result.keys.append(key)
        result.reports.append(report)
    return result


def head_nodes_of(path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(path)).graph
    return sorted({n.name for n in graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")}
                  & set(head_nodes(graph)))


def record_bf16(bundle: Bundle, source_key: str, evaluation: FrameSet, force: bool,
                refuse_failed: bool = True) -> PrecisionResult:
    """Gate OpenVINO's bf16 run of the fp32 ONNX (and of model_argmax.onnx when the bundle has it) and
    record them as card entries ``onnx_bf16`` / ``onnx_argmax_bf16`` (runtime openvino, no new file)."""
    reason = ov_runtime.unavailable_reason()
    if reason:
        raise ExportError(f"--precision bf16 runs on OpenVINO: {reason}")
    if not ov_runtime.cpu_has_bf16():
        raise ExportError(f"--precision bf16: this CPU does not report BF16 to OpenVINO "
                          f"({', '.join(ov_runtime.cpu_capabilities())}); use --precision int8 instead")
    card = bundle.card
    keys = [k for k in (source_key, ARGMAX_KEY) if k in card.artifacts and not card.artifacts[k].fused
            and card.artifacts[k].precision == "fp32"]
    for key in keys:
        if f"{key}_bf16" in card.artifacts and not force:
            raise ExportError(f"{bundle.path}: {key}_bf16 is already recorded; pass --force to gate it again")
    source_path = bundle.verified_artifact_path(source_key)
    fp32 = class_runner(source_path, card.artifacts[source_key], card)
    timings = latency.measure(card, {"fp32": source_path}, "bf16")
    checked = []
    for key in keys:
        source, path = card.artifacts[key], bundle.verified_artifact_path(key)
        report = accuracy_gate.run_gate(card, fp32, class_runner(path, source, card, "openvino", "bf16"),
                                        evaluation, candidate=f"openvino-bf16:{source.path}")
        if refuse_failed:
            require_gate(report, path, "bf16", "minmax")
        checked.append((key, source, report))
    result = PrecisionResult(latency_ms=timings)
    for key, source, report in checked:
        artifact = Artifact(source.path, "onnx", source.output, output_layout=source.output_layout,
                            confidence=source.confidence, precision="bf16", runtime="openvino",
                            details={"precision": "bf16", "source_artifact": key, "sha256": sha256_file(
                                bundle.artifact_path(key)), "gate": report.to_dict(), "latency_ms": timings})
        bundle.add_artifact(f"{key}_bf16", artifact)
        result.keys.append(f"{key}_bf16")
        result.reports.append(report)
    return result

"""Will TensorRT 10 parse this ONNX? A static check that runs without TensorRT (CPU-only CI).

Source of the rules: the ONNX-TensorRT operator support matrix, ``docs/operators.md`` of
github.com/onnx/onnx-tensorrt as shipped with TensorRT 10.15 (the matrix for 10.0 lists the same
unsupported operators, plus a few that later 10.x releases added). We check:

* the default-domain opset is within 9..20, the range every TensorRT 10.x parses (10.0 stops at
  20; later 10.x releases go to 24);
* operators the matrix marks unsupported (``N``), operators it does not list at all, operators
  from custom domains (they need a plugin), and the three operators only 10.15 parses;
* tensor types TensorRT has no type for (strings, complex, int16, uint16/32/64) and UINT8 tensors
  inside the graph (the matrix: "UINT8 is only supported as network input or output");
* the attribute/input restrictions the matrix states for operators a convolutional segmentation
  network can contain: Resize modes and antialiasing, pooling rank and dilations, MaxPool's
  indices output, TopK ``sorted``/``K``, Dropout in training mode, Constant payload kinds,
  ScatterND reduction, LSTM ``input_forget``/``layout``, LayerNormalization's extra outputs,
  Reduce*/CumSum/OneHot inputs that must be build-time constants, and non-zero quantisation
  zero points.

It cannot see everything the parser checks (shape-dependent rules, e.g. GridSample's 4-D input),
so a clean report means "no known blocker", and the real build on the target GPU stays the proof.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cityseg.export.errors import ExportError

log = logging.getLogger(__name__)

SOURCE = ("onnx-tensorrt docs/operators.md, operator support matrix of TensorRT 10.15 "
          "(https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md)")
OPSET_RANGE = (9, 20)
"""Default-domain opsets every TensorRT 10.x parses (10.0: 9-20; 10.15: 9-24)."""

UNSUPPORTED_OPS = frozenset("""
    AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Col2Im CenterCropPad
    Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder MatMulInteger
    MaxRoiPool MaxUnpool MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional
    OptionalGetElement OptionalHasElement QLinearConv QLinearMatMul RegexFullMatch SequenceAt
    SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength SequenceMap
    SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer StringSplit
    TfIdfVectorizer Unique
""".split())
"""Operators the matrix marks ``N``."""

SUPPORTED_OPS = frozenset("""
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool
    BatchNormalization BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape
    Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum
    Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm
    GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
    GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If
    ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log
    LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
    MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
    ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
    RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
    ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence
    RMSNormalization RNN RoiAlign RotaryEmbedding Round STFT ScaledTanh Scan Scatter ScatterElements
    ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign
    SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh TensorScatter ThresholdedRelu Tile TopK
    Transpose Trilu Unsqueeze Upsample Where Xor
""".split())
"""Operators the matrix marks ``Y`` (each possibly with restrictions, checked below)."""

NEWEST_OPS = frozenset({"RotaryEmbedding", "RMSNormalization", "TensorScatter"})
"""Supported only since TensorRT 10.15 (onnx-tensorrt changelog)."""

RESIZE_MODES = {"nearest", "linear"}
RESIZE_COORDINATE_MODES = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric",
                           "align_corners"}
REDUCE_OPS = frozenset(op for op in SUPPORTED_OPS if op.startswith("Reduce"))
MAX_TOPK = 3840


@dataclass(frozen=True)
class Finding:
    """One thing TensorRT 10 would reject."""

    where: str
    """'node NAME (OpType)', 'tensor NAME' or 'model'."""
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


def _type_names() -> dict[int, str]:
    from onnx import TensorProto

    return {value: name for name, value in TensorProto.DataType.items()}


def _unsupported_types() -> set[int]:
    from onnx import TensorProto

    return {TensorProto.STRING, TensorProto.COMPLEX64, TensorProto.COMPLEX128, TensorProto.INT16,
            TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64}


def load(model):
    """An ONNX ModelProto from a path or a ModelProto."""
    import onnx

    if isinstance(model, (str, Path)):
        return onnx.load(str(model))
    return model


def check_model(model) -> list[Finding]:
    """Everything in ``model`` (ModelProto or path) that TensorRT 10's ONNX parser is known to reject."""
    model = load(model)
    findings = _check_opset(model)
    graph = model.graph
    constants = _constant_values(graph)
    for index, node in enumerate(graph.node):
        where = f"node {node.name or f'#{index}'!r} ({node.op_type})"
        findings += [Finding(where, p) for p in _node_problems(node, constants)]
    findings += _check_types(model)
    return findings


def _check_opset(model) -> list[Finding]:
    low, high = OPSET_RANGE
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and not low <= opset.version <= high:
            return [Finding("model", f"default-domain opset {opset.version} is outside {low}-{high}, the "
                                     "range every TensorRT 10.x parses; export with --opset 17")]
    return []


def _constant_values(graph) -> dict[str, np.ndarray]:
    """Tensors known at build time: initializers and Constant node outputs."""
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _attrs(node) -> dict:
    from onnx import helper

    return {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _input(node, index: int) -> str:
    return node.input[index] if len(node.input) > index else ""


def _node_problems(node, constants: dict[str, np.ndarray]) -> list[str]:
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        return [f"operator from custom domain {node.domain!r}; TensorRT needs a plugin for it"]
    if op in UNSUPPORTED_OPS:
        return ["not supported by the TensorRT 10 ONNX parser (support matrix: N)"]
    if op not in SUPPORTED_OPS:
        return ["not in the TensorRT 10 operator support matrix"]
    problems = []
    if op in NEWEST_OPS:
        problems.append("parsed only since TensorRT 10.15")
    attrs = _attrs(node)
    checker = _RULES.get(op)
    if checker:
        problems += checker(node, attrs, constants)
    if op in REDUCE_OPS and _input(node, 1) and _input(node, 1) not in constants:
        problems.append("'axes' input must be an initializer")
    return problems


def _resize(node, attrs, constants) -> list[str]:
    problems = []
    mode = _text(attrs.get("mode", "nearest"))
    if mode not in RESIZE_MODES:
        problems.append(f"mode {mode!r} is not supported (nearest and linear only)")
    coord = _text(attrs.get("coordinate_transformation_mode", "half_pixel"))
    if coord not in RESIZE_COORDINATE_MODES:
        problems.append(f"coordinate_transformation_mode {coord!r} is not supported")
    if attrs.get("antialias", 0):
        problems.append("antialiasing is not supported")
    policy = _text(attrs.get("keep_aspect_ratio_policy", "stretch"))
    if policy != "stretch":
        problems.append(f"keep_aspect_ratio_policy {policy!r} is not supported (stretch only)")
    return problems


def _pool(node, attrs, constants) -> list[str]:
    problems = []
    kernel = attrs.get("kernel_shape", [])
    if node.op_type in ("MaxPool", "AveragePool") and len(kernel) not in (2, 3):
        problems.append(f"{len(kernel)}-D pooling is not supported (2-D or 3-D only)")
    if any(d != 1 for d in attrs.get("dilations", [])):
        problems.append(f"dilations {list(attrs['dilations'])} are not supported (all ones only)")
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        problems.append("the Indices output is not supported")
    return problems


def _topk(node, attrs, constants) -> list[str]:
    problems = []
    if attrs.get("sorted", 1) != 1:
        problems.append("sorted=0 is not supported")
    k = constants.get(_input(node, 1))
    if k is not None and int(np.max(k)) >= MAX_TOPK:
        problems.append(f"K={int(np.max(k))} is too large (K < {MAX_TOPK})")
    return problems


def _dropout(node, attrs, constants) -> list[str]:
    training = _input(node, 2)
    if not training:
        return []
    if training not in constants or bool(np.asarray(constants[training]).any()):
        return ["training_mode must be an initializer that is False"]
    return []


def _constant(node, attrs, constants) -> list[str]:
    bad = sorted(set(attrs) & {"sparse_value", "value_string", "value_strings"})
    return [f"attribute {name!r} is not supported" for name in bad]


def _scatter_nd(node, attrs, constants) -> list[str]:
    reduction = _text(attrs.get("reduction", "none"))
    return [] if reduction == "none" else [f"reduction {reduction!r} is not supported"]


def _lstm(node, attrs, constants) -> list[str]:
    problems = []
    if attrs.get("input_forget", 0):
        problems.append("input_forget must be 0")
    if attrs.get("layout", 0):
        problems.append("layout must be 0")
    return problems


def _layer_norm(node, attrs, constants) -> list[str]:
    return ["only the first output (Y) is supported"] if any(node.output[1:]) else []


def _constant_input(index: int, name: str):
    def rule(node, attrs, constants) -> list[str]:
        value = _input(node, index)
        return [f"{name!r} must be a build-time constant"] if value and value not in constants else []
    return rule


def _zero_point(index: int):
    def rule(node, attrs, constants) -> list[str]:
        name = _input(node, index)
        if not name:
            return []
        if name not in constants:
            return ["the zero point must be an initializer"]
        return [] if not np.asarray(constants[name]).astype(np.float64).any() else \
            ["the zero point must be zero"]
    return rule


_RULES = {
    "Resize": _resize,
    "MaxPool": _pool, "AveragePool": _pool, "LpPool": _pool,
    "TopK": _topk,
    "Dropout": _dropout,
    "Constant": _constant,
    "ScatterND": _scatter_nd,
    "LSTM": _lstm,
    "LayerNormalization": _layer_norm,
    "CumSum": _constant_input(1, "axis"),
    "OneHot": _constant_input(1, "depth"),
    "QuantizeLinear": _zero_point(2),
    "DequantizeLinear": _zero_point(2),
}


def _check_types(model) -> list[Finding]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types; the check goes on without
        log.debug("ONNX shape inference failed (%s); checking declared types only", exc)
        inferred = model
    graph = inferred.graph
    names = _type_names()
    unsupported = _unsupported_types()
    io_names = {v.name for v in graph.input} | {v.name for v in graph.output}
    findings = []
    tensors = [(v.name, v.type.tensor_type.elem_type) for v in
               list(graph.input) + list(graph.output) + list(graph.value_info)]
    tensors += [(t.name, t.data_type) for t in graph.initializer]
    seen = set()
    for name, elem_type in tensors:
        if name in seen or not elem_type:
            continue
        seen.add(name)
        type_name = names.get(elem_type, str(elem_type))
        if elem_type in unsupported:
            findings.append(Finding(f"tensor {name!r}", f"type {type_name} has no TensorRT equivalent"))
        elif elem_type == onnx.TensorProto.UINT8 and name not in io_names:
            findings.append(Finding(f"tensor {name!r}", "UINT8 is supported only as a network input or "
                                                         "output, not inside the graph"))
    return findings


def describe(findings: list[Finding]) -> str:
    """Findings as an indented list, or a one-line all-clear."""
    if not findings:
        return "no operators or attributes TensorRT 10 is known to reject"
    return "\n".join(f"  - {f}" for f in findings)


def summarize(findings: list[Finding]) -> str:
    """The findings in one line: their count and each kind of problem with its count."""
    if not findings:
        return "no operators or attributes TensorRT 10 is known to reject"
    kinds = Counter(f.problem for f in findings)
    shown = "; ".join(f"{n} x {problem}" for problem, n in kinds.most_common(3))
    more = f"; and {len(kinds) - 3} more kind(s)" if len(kinds) > 3 else ""
    return f"TensorRT 10 would reject {len(findings)} thing(s) in this model ({shown}{more})"


def enforce(model, path: Path, *, strict: bool) -> list[Finding]:
    """Check ``model``; warn about findings, or raise ExportError when ``strict``."""
    findings = check_model(model)
    if findings:
        message = (f"{path}: TensorRT 10 would reject {len(findings)} thing(s) in this ONNX "
                   f"(checked against {SOURCE}):\n{describe(findings)}")
        if strict:
            raise ExportError(message + "\nNothing was written. Change the model (or drop --strict "
                                        "to export for ONNX Runtime only)")
        log.warning("%s\nThe ONNX file works with ONNX Runtime; a TensorRT build will fail.", message)
    return findings

"""A float graph from a quantised ONNX one: the surgery behind the TensorRT-ready float twin.

An imported graph whose Quantize/DequantizeLinear carry non-zero zero points or uint8 tensors
(every int8 TFLite model converted by tf2onnx) is refused by TensorRT's ONNX parser, which takes
only symmetric int8 Q/DQ. :func:`float_twin` rewrites such a graph into a float one:

* DequantizeLinear of a constant (weights, biases) is folded into a float initializer;
* each activation QuantizeLinear -> DequantizeLinear pair becomes float Mul/Round/Clip/Mul, so the
  values stay on the original's integer grid (no integer tensor is left);
* a DequantizeLinear of the uint8 graph input becomes Cast -> Sub(zero point) -> Mul(scale), so the
  input stays the uint8 RGB frame the card says;
* Convs are computed on the integers themselves, as the quantised kernels do (:mod:`integer_ops`);
* the tensor the final ArgMax reads (the class scores) becomes the first output, the class ids the second.
"""

from __future__ import annotations

import json

import numpy as np

from cityseg.errors import InputError
from cityseg.export import integer_ops

QDQ = ("QuantizeLinear", "DequantizeLinear")
PASS_THROUGH = {"Cast", "Identity", "Transpose", "Reshape", "Squeeze", "Unsqueeze"}
"""Operators looked through from the id output back to its ArgMax."""


class QuantGraphError(InputError):
    """An imported quantised graph cannot be rewritten into float (the message names tensor and fix)."""


def constants(graph) -> dict:
    """{tensor name: numpy value} of the graph's initializers and Constant nodes."""
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _zero_point(node, values: dict) -> np.ndarray | None:
    return values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None


def needs_float_twin(model) -> bool:
    """True when a Q/DQ node has a uint8 or non-zero zero point (what TensorRT's parser rejects)."""
    graph = model.graph
    values = constants(graph)
    for node in graph.node:
        if node.op_type in QDQ:
            zero = _zero_point(node, values)
            if zero is not None and (zero.dtype == np.uint8 or np.any(zero != 0)):
                return True
    return False


def _axis(node, rank: int) -> int:
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    return axis + rank if axis < 0 else axis


def integer_part(node, values: dict, conv_weights: set[str], where: str) -> tuple[np.ndarray, np.ndarray]:
    """(``q - zero point`` as float32, scale broadcastable to it) of DequantizeLinear ``node`` of a
    constant; QuantGraphError for per-channel scales on an axis that does not hold them (or a Conv
    weight's scales off its output-channel axis)."""
    if any(a.name == "block_size" and a.i for a in node.attribute):
        raise QuantGraphError(f"{where}: tensor {node.input[0]!r} is block-quantised (DequantizeLinear "
                              "block_size); export it per-tensor or per-channel and import that")
    q, scale = values[node.input[0]], values[node.input[1]].astype(np.float32)
    zero = _zero_point(node, values)
    zero = np.zeros(1) if zero is None else zero.astype(np.float64)
    if scale.size > 1:
        axis = _axis(node, q.ndim)
        if not 0 <= axis < q.ndim or q.shape[axis] != scale.size:
            raise QuantGraphError(f"{where}: tensor {node.input[0]!r} {list(q.shape)} has {scale.size} per-channel "
                                  f"scales on axis {axis}, which has {q.shape[axis] if 0 <= axis < q.ndim else 'no'} "
                                  "entries; the file is inconsistent - re-export the quantised model")
        if node.output[0] in conv_weights and axis != 0:
            raise QuantGraphError(f"{where}: Conv weight {node.input[0]!r} {list(q.shape)} is quantised per channel "
                                  f"on axis {axis}; cityseg expects a Conv weight's scales on axis 0 (its output "
                                  "channels) - re-export with per-channel quantisation on axis 0, or per-tensor")
        shape = [1] * q.ndim
        shape[axis] = scale.size
        scale, zero = scale.reshape(shape), (zero.reshape(shape) if zero.size > 1 else zero)
    return (q.astype(np.float64) - zero).astype(np.float32), scale


def _real(integers: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The float value of a dequantised constant from :func:`integer_part`'s pair."""
    return (integers.astype(np.float64) * scale.astype(np.float64)).astype(np.float32)


def _input_dequantize(node, values: dict):
    """Sub(zero point) -> Mul(scale) nodes (and their constants) that dequantise, in float, what a
    DequantizeLinear read from the uint8 input (the input itself is cast to float, :func:`_cast_inputs`)."""
    from onnx import helper, numpy_helper

    out = node.output[0]
    zero = _zero_point(node, values)
    zero = np.zeros((), np.float32) if zero is None else zero.astype(np.float32)
    scale = values[node.input[1]].astype(np.float32)
    if scale.size > 1:
        raise QuantGraphError(f"input {node.input[0]!r} is quantised per channel; cityseg takes a per-tensor "
                              "uint8 image input - re-export the model with a per-tensor input scale")
    inits = [numpy_helper.from_array(zero, f"{out}__zero"), numpy_helper.from_array(scale, f"{out}__scale")]
    nodes = [helper.make_node("Sub", [node.input[0], f"{out}__zero"], [f"{out}__centred"], name=f"{out}__sub"),
             helper.make_node("Mul", [f"{out}__centred", f"{out}__scale"], [out], name=f"{out}__mul")]
    return nodes, inits


def _float_rounding(node, values: dict, quantizer):
    """Float nodes computing what QuantizeLinear -> DequantizeLinear did to an activation: scaled,
    rounded (half to even, as ONNX), clipped to the integer range, scaled back - no integer tensor."""
    from onnx import helper, numpy_helper

    out = node.output[0]
    zero = _zero_point(quantizer, values)
    unsigned = zero is None or zero.dtype == np.uint8
    low, high = (0, 255) if unsigned else (-128, 127)
    offset = np.float32(0 if zero is None else np.ravel(zero)[0])
    scale = values[node.input[1]].astype(np.float32)
    if scale.size > 1:
        raise QuantGraphError(f"activation {node.input[0]!r} is quantised per channel; cityseg's float twin "
                              "takes per-tensor activation scales - re-export with per-tensor activations")
    consts = {"inv": np.float32(1.0) / scale, "lo": np.float32(low) - offset, "hi": np.float32(high) - offset,
              "scale": scale}
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), f"{out}__{k}") for k, v in consts.items()]
    nodes = [helper.make_node("Mul", [node.input[0], f"{out}__inv"], [f"{out}__steps"], name=f"{out}__div"),
             helper.make_node("Round", [f"{out}__steps"], [f"{out}__rounded"], name=f"{out}__round"),
             helper.make_node("Clip", [f"{out}__rounded", f"{out}__lo", f"{out}__hi"], [f"{out}__clipped"],
                              name=f"{out}__clip"),
             helper.make_node("Mul", [f"{out}__clipped", f"{out}__scale"], [out], name=f"{out}__scale")]
    return nodes, inits


def _cast_inputs(graph, nodes: list, names: set[str]) -> list:
    """``nodes`` with each integer graph input in ``names`` cast to float first (its uses renamed)."""
    from onnx import TensorProto, helper

    casts = []
    for name in sorted(names):
        floated = f"{name}__float"
        for node in nodes:
            node.input[:] = [floated if i == name else i for i in node.input]
        casts.append(helper.make_node("Cast", [name], [floated], to=TensorProto.FLOAT, name=f"{name}__cast"))
    return casts + nodes


def _resolve(name: str, renamed: dict[str, str]) -> str:
    while name in renamed:
        name = renamed[name]
    return name


MOVEMENT = {"Transpose", "Reshape", "Tile", "Concat", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Slice",
            "Expand", "Gather", "DepthToSpace", "SpaceToDepth", "MaxPool"}
"""Operators that move quantised values without arithmetic (tf2onnx leaves them on uint8 between a
QuantizeLinear and a DequantizeLinear of the same scale); in float they move the float values."""


def _data_inputs(node) -> list[str]:
    return list(node.input) if node.op_type == "Concat" else list(node.input[:1])


def _sources(tensor: str, producers: dict, inputs: set[str], where: str) -> list:
    """The QuantizeLinear nodes (or graph input names) whose integers reach ``tensor`` through
    data-movement operators; QuantGraphError for anything else (integer arithmetic)."""
    if tensor in inputs:
        return [tensor]
    node = producers.get(tensor)
    if node is not None and node.op_type == "QuantizeLinear":
        return [node]
    if node is None or node.op_type not in MOVEMENT:
        raise QuantGraphError(f"{where}: tensor {tensor!r} reaches a DequantizeLinear from "
                              f"{node.op_type if node else 'nowhere'} (integer arithmetic); cannot make it float")
    return [s for name in _data_inputs(node) for s in _sources(name, producers, inputs, where)]


def _same_quantisation(a, b, values: dict) -> bool:
    def params(node):
        zero = _zero_point(node, values)
        return values.get(node.input[1]), (np.zeros(1) if zero is None else zero)

    (sa, za), (sb, zb) = params(a), params(b)
    return sa is not None and sb is not None and np.allclose(sa, sb, rtol=1e-6) and np.array_equal(
        np.ravel(za).astype(np.int64), np.ravel(zb).astype(np.int64))


def _zero(node, values: dict) -> int:
    zero = _zero_point(node, values)
    return 0 if zero is None else int(np.ravel(zero)[0])


def _bound(node, values: dict) -> float:
    """The largest ``|q - zero point|`` a tensor quantised as DequantizeLinear ``node`` reads can hold."""
    zero = _zero_point(node, values)
    if zero is None or zero.dtype == np.uint8:
        offset = 0.0 if zero is None else float(np.ravel(zero)[0])
        return max(offset, 255.0 - offset)
    return 128.0 + abs(float(np.ravel(zero)[0]))


def strip_qdq(graph, where: str, rounding: bool = True) -> dict[str, int]:
    """Fold constant DequantizeLinear into float initializers, emulate activation Q->DQ pairs in
    float (or, ``rounding=False``, drop them; also across data-movement operators of the same
    scale), dequantise graph inputs in float and run Convs on the integers (:mod:`integer_ops`),
    in place; returns how many Convs and Adds run on integers. QuantGraphError for Q/DQ that fit
    none of these."""
    from onnx import helper, numpy_helper

    values = constants(graph)
    inputs = {i.name for i in graph.input} - set(values)
    conv_weights = {n.input[1] for n in graph.node if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 1}
    producers = {o: n for n in graph.node for o in n.output}
    renamed = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    kept, folded, cast, grid = [], [], set(), integer_ops.Grid()
    for node in graph.node:
        if node.op_type == "QuantizeLinear":
            continue
        if node.op_type != "DequantizeLinear":
            kept.append(node)
            continue
        if node.input[0] in values:
            integers, scale = grid.constants[node.output[0]] = integer_part(node, values, conv_weights, where)
            folded.append(numpy_helper.from_array(_real(integers, scale), node.output[0]))
            continue
        scale = float(np.ravel(values[node.input[1]])[0])
        sources = _sources(node.input[0], producers, inputs, where)
        if all(isinstance(s, str) for s in sources):  # the uint8 input (maybe transposed): Cast/Sub/Mul
            nodes, inits = _input_dequantize(node, values)
            kept.extend(nodes)
            folded.extend(inits)
            cast.update(sources)
            grid.activations[node.output[0]] = (f"{node.output[0]}__centred", scale, _bound(node, values),
                                                _zero(node, values))
        elif all(not isinstance(s, str) and _same_quantisation(s, node, values) for s in sources):
            if rounding:
                nodes, inits = _float_rounding(node, values, sources[0])
                kept.extend(nodes)
                folded.extend(inits)
                grid.activations[node.output[0]] = (f"{node.output[0]}__clipped", scale, _bound(node, values),
                                                    _zero(node, values))
                grid.requantizers[node.output[0]] = (scale, _zero(node, values))
            else:
                renamed[node.output[0]] = node.input[0]
        else:
            raise QuantGraphError(f"{where}: DequantizeLinear {node.name!r} reads values quantised with another "
                                  "scale or zero point (or mixed with the input); cannot make it float")
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = _resolve(name, renamed)
    for output in graph.output:  # an output made by a removed Q/DQ: an Identity of the float tensor
        if output.name in renamed:
            kept.append(helper.make_node("Identity", [_resolve(output.name, renamed)], [output.name],
                                         name=f"{output.name}__float"))
    counts, inits = {"convs": 0, "adds": 0}, []
    if rounding:
        kept, inits, counts = integer_ops.rewrite_convs(kept, grid, {o.name for o in graph.output})
    del graph.node[:]
    graph.node.extend(_cast_inputs(graph, kept, cast))
    graph.initializer.extend(folded + inits)
    return counts


def expose_scores(model) -> tuple[str, str, int]:
    """Make the tensor the final ArgMax reads the first graph output (ids stay, second);
    returns (scores name, ids name, the ArgMax axis). QuantGraphError when no ArgMax makes the output."""
    from onnx import TensorProto, helper

    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    ids = graph.output[0].name
    node = producers.get(ids)
    while node is not None and node.op_type in PASS_THROUGH:
        node = producers.get(node.input[0])
    if node is None or node.op_type != "ArgMax":
        raise QuantGraphError(f"output {ids!r} is not made by an ArgMax; the float twin exposes the scores "
                              "before the ArgMax of a class-id graph")
    scores = node.input[0]
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    rest = [o for o in graph.output]
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info(scores, TensorProto.FLOAT, None), *rest])
    return scores, ids, axis


def float_twin(model, where: str = "model", rounding: bool = True):
    """The float ONNX ModelProto of a quantised ``model`` (not changed), checked with onnx.checker;
    its outputs: the class scores, then the original's class ids."""
    import onnx
    from onnxruntime.quantization.onnx_model import ONNXModel

    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    counts = strip_qdq(twin.graph, where, rounding)
    onnx.helper.set_model_props(twin, {"cityseg.integer_ops": json.dumps(counts)})
    scores, ids, axis = expose_scores(twin)
    ONNXModel(twin).remove_unused_constant()
    del twin.graph.value_info[:]
    for value in list(twin.graph.output):
        if value.name == scores:
            value.type.tensor_type.ClearField("shape")
    twin = onnx.shape_inference.infer_shapes(twin, strict_mode=True)
    onnx.checker.check_model(twin, full_check=True)
    leftovers = quantised_inside(twin)
    if leftovers:
        raise QuantGraphError(f"{where}: the float twin still holds {leftovers[0]}; cannot make the graph float")
    return twin


def activation_ranges(model) -> dict[str, tuple[float, float]]:
    """{real tensor name: (rmin, rmax)} the quantised ``model`` gives each activation it quantises
    (its QuantizeLinear's scale and zero point over the integer range): the ranges an int8 twin of the
    real-valued graph (``float_twin(model, rounding=False)``, which keeps those tensor names) is seeded with."""
    values = constants(model.graph)
    ranges = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in values or node.input[1] not in values:
            continue
        scale = values[node.input[1]]
        if scale.size != 1:
            continue
        zero = _zero_point(node, values)
        low, high = (0, 255) if zero is None or zero.dtype == np.uint8 else (-128, 127)
        offset = 0.0 if zero is None else float(np.ravel(zero)[0])
        ranges[node.input[0]] = ((low - offset) * float(scale), (high - offset) * float(scale))
    return ranges


def quantised_inside(model) -> list[str]:
    """Q/DQ nodes and uint8/int8 tensors inside ``model`` (the graph inputs and outputs excepted)."""
    from onnx import TensorProto

    small = {TensorProto.UINT8, TensorProto.INT8}
    found = [f"{n.op_type} {n.name!r}" for n in model.graph.node if n.op_type in QDQ]
    found += [f"{i.data_type == TensorProto.UINT8 and 'uint8' or 'int8'} initializer {i.name!r}"
              for i in model.graph.initializer if i.data_type in small]
    found += [f"a uint8/int8 tensor {v.name!r}" for v in model.graph.value_info
              if v.type.tensor_type.elem_type in small]
    return found



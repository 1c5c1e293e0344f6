"""Convs and Adds of a float twin computed on the original's integers, as quantised kernels do.

A quantised Conv (ONNX Runtime's QLinearConv, TFLite's and XNNPACK's int8 kernels) sums integer
products exactly in int32 and rescales once, ``round(acc * (s_x * s_w / s_y))``. The same Conv in
float on dequantised values sums rounded reals instead: an error of ~1e-7 that flips a rounding now
and then, and the flips compound over twenty blocks (a float-only twin of the Coral model agrees with
the original on ~98 % of pixels). :func:`rewrite_convs` runs such a Conv on the integer-valued tensors
the twin keeps (``q - zero point`` as float, exact in float32 while ``|acc| < 2**24``, checked from
the weights), then rescales it: by ``s_x * s_w`` where a real value is read, and by ONNX Runtime's
requantisation scale ``s_x * s_w / s_y`` where the twin rounds it straight back onto a grid. An Add
of two quantised tensors re-quantised at once is computed as ONNX Runtime's QLinearAdd computes it,
``(q_a - z_a) * (s_a / s_y) + (q_b - z_b) * (s_b / s_y)`` before the rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EXACT_LIMIT = 2 ** 24
"""Integers float32 holds exactly: a Conv whose worst-case accumulator reaches this stays real-valued."""


@dataclass
class Grid:
    """What the Q/DQ surgery left on the original's integer grid (keys: DequantizeLinear outputs)."""

    activations: dict[str, tuple[str, float, float, int]] = field(default_factory=dict)
    """activation -> (its integer-valued tensor ``q - zero``, its scale, the largest ``|q - zero|``,
    its zero point)"""
    constants: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """constant -> (its integers ``q - zero`` as float32, its scale, broadcastable to them)"""
    requantizers: dict[str, tuple[float, int]] = field(default_factory=dict)
    """activation re-quantised by a ``{name}__div`` Mul (the twin's QuantizeLinear) -> (its scale,
    its zero point)"""


@dataclass
class IntegerConv:
    """One Conv rewritten onto integers: its accumulator tensor and per-channel ``s_x * s_w``."""

    accumulator: str
    scale: np.ndarray


def _plan(node, grid: Grid) -> IntegerConv | None:
    """The rewrite of Conv ``node``, or None where its inputs are not all on a grid (or it could
    overflow float32's exact integers, or its bias is on another scale than ``s_x * s_w``)."""
    if len(node.input) < 2 or node.input[0] not in grid.activations or node.input[1] not in grid.constants:
        return None
    _, x_scale, x_bound, _ = grid.activations[node.input[0]]
    weights, w_scale = grid.constants[node.input[1]]
    channels = weights.shape[0]
    scale = (np.float32(x_scale) * np.broadcast_to(np.ravel(w_scale).astype(np.float32), (channels,))).astype(
        np.float32)
    worst = np.abs(weights).reshape(channels, -1).sum(axis=1) * x_bound
    if len(node.input) > 2 and node.input[2]:
        if node.input[2] not in grid.constants:
            return None
        bias, b_scale = grid.constants[node.input[2]]
        if bias.shape != (channels,) or not np.allclose(np.ravel(b_scale), scale, rtol=1e-4):
            return None
        worst = worst + np.abs(bias)
    if worst.max() >= EXACT_LIMIT:
        return None
    return IntegerConv(f"{node.output[0]}__acc", scale)


def _constant(name: str, value: np.ndarray):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name)


def _integer_nodes(node, plan: IntegerConv, grid: Grid) -> tuple[list, list]:
    """Conv on integers -> Mul(s_x * s_w) giving the real output under its old name."""
    from onnx import helper

    out = node.output[0]
    inputs = [grid.activations[node.input[0]][0], f"{node.input[1]}__int"]
    inits = [_constant(inputs[1], grid.constants[node.input[1]][0])]
    if len(node.input) > 2 and node.input[2]:
        inputs.append(f"{node.input[2]}__int")
        inits.append(_constant(inputs[2], grid.constants[node.input[2]][0]))
    conv = helper.make_node("Conv", inputs, [f"{plan.accumulator}__sum"], name=f"{out}__integer")
    conv.attribute.extend(node.attribute)
    # Round of an integer is a no-op, but no optimiser folds the scales below into the Conv's weights
    # through it (ONNX Runtime's Conv+Mul fusion would, and the sum would be exact no more)
    fence = helper.make_node("Round", [conv.output[0]], [plan.accumulator], name=f"{plan.accumulator}__fence")
    inits.append(_constant(f"{out}__accscale", plan.scale.reshape(1, -1, 1, 1)))
    real = helper.make_node("Mul", [plan.accumulator, f"{out}__accscale"], [out], name=f"{out}__real")
    return [conv, fence, real], inits


def _integer_add(node, source, grid: Grid, out: str) -> tuple[list, list]:
    """Turn the twin QuantizeLinear ``node`` (its ``__div`` Mul) of Add ``source`` of two grid
    tensors into QLinearAdd's arithmetic on the quantised values, ``q_a * r_a + q_b * r_b + k``
    (``r = s / s_y``, ``k = z_y - r_a * z_a - r_b * z_b``, in that float32 order), rounded, less ``z_y``."""
    from onnx import helper

    scale, zero = grid.requantizers[out]
    ratios, constant = [], np.float32(zero)
    parts, inits = [], []
    for index, name in enumerate(source.input):
        integers, tensor_scale, _, tensor_zero = grid.activations[name]
        ratio = np.float32(np.float32(tensor_scale) / np.float32(scale))
        constant = np.float32(constant - np.float32(ratio * np.float32(tensor_zero)))
        ratios.append(ratio)
        tag = f"{out}__add{index}"
        inits += [_constant(f"{tag}__zero", np.float32(tensor_zero)), _constant(f"{tag}__ratio", ratio)]
        parts += [helper.make_node("Add", [integers, f"{tag}__zero"], [f"{tag}__q"], name=f"{tag}__q"),
                  helper.make_node("Mul", [f"{tag}__q", f"{tag}__ratio"], [f"{tag}__part"], name=f"{tag}__mul")]
    inits += [_constant(f"{out}__addk", constant), _constant(f"{out}__addzero", np.float32(zero))]
    parts += [helper.make_node("Add", [f"{out}__add0__part", f"{out}__add1__part"], [f"{out}__addsum"],
                               name=f"{out}__addsum"),
              helper.make_node("Add", [f"{out}__addsum", f"{out}__addk"], [f"{out}__addq"], name=f"{out}__addq"),
              helper.make_node("Round", [f"{out}__addq"], [f"{out}__addround"], name=f"{out}__addround")]
    node.op_type = "Sub"  # rounded in q (ties to even there, as QLinearAdd), then on the twin's grid, q - z_y
    node.input[:] = [f"{out}__addround", f"{out}__addzero"]
    return parts, inits


def _fuse_requantisation(nodes: list, convs: dict[str, IntegerConv], grid: Grid) -> tuple[list, list]:
    """Point each twin QuantizeLinear (``__div`` Mul) that reads a rewritten Conv, directly or
    through a Relu, at the accumulator times ``s_x * s_w / s_y``, and one that reads an Add of two
    grid tensors at QLinearAdd's arithmetic: one rounding, as the kernels do."""
    from onnx import helper

    producers = {o: n for n in nodes for o in n.output}
    inits, relus, before = [], {}, {}
    for node in nodes:
        if node.op_type != "Mul" or not node.name.endswith("__div"):
            continue
        out = node.name[: -len("__div")]
        source = producers.get(node.input[0])
        if (source is not None and source.op_type == "Add" and out in grid.requantizers
                and len(source.input) == 2 and all(i in grid.activations for i in source.input)):
            before[node.name], add_inits = _integer_add(node, source, grid, out)
            inits.extend(add_inits)
            continue
        through_relu = source is not None and source.op_type == "Relu"
        conv_out = source.input[0] if through_relu else node.input[0]
        if conv_out not in convs or out not in grid.requantizers:
            continue
        plan = convs[conv_out]
        read = plan.accumulator
        if through_relu:
            if read not in relus:
                relus[read] = helper.make_node("Relu", [read], [f"{read}__relu"], name=f"{read}__relu")
            read = f"{read}__relu"
        multiplier = (plan.scale / np.float32(grid.requantizers[out][0])).astype(np.float32)
        inits.append(_constant(f"{out}__requant", multiplier.reshape(1, -1, 1, 1)))
        node.input[:] = [read, f"{out}__requant"]
    ordered = []
    for node in nodes:  # each new Relu right after the integer Conv it reads, Add parts before their Add
        ordered.extend(before.get(node.name, []))
        ordered.append(node)
        ordered.extend(relus[o] for o in node.output if o in relus)
    return ordered, inits


def prune(nodes: list, outputs: set[str]) -> list:
    """``nodes`` without those whose outputs nothing reads (repeatedly), in their order."""
    alive = list(nodes)
    while True:
        read = outputs | {name for n in alive for name in n.input}
        kept = [n for n in alive if any(o in read for o in n.output)]
        if len(kept) == len(alive):
            return kept
        alive = kept


def rewrite_convs(nodes: list, grid: Grid, outputs: set[str]) -> tuple[list, list, dict[str, int]]:
    """(nodes, new initializers, {"convs": n, "adds": n} now computed on integers) of a twin's node
    list whose tensor names are resolved (in graph order); Convs off the grid stay as they are."""
    convs: dict[str, IntegerConv] = {}
    rewritten, inits = [], []
    for node in nodes:
        plan = _plan(node, grid) if node.op_type == "Conv" else None
        if plan is None:
            rewritten.append(node)
            continue
        convs[node.output[0]] = plan
        new_nodes, new_inits = _integer_nodes(node, plan, grid)
        rewritten.extend(new_nodes)
        inits.extend(new_inits)
    fused, requant = _fuse_requantisation(rewritten, convs, grid)
    adds = sum(n.name.endswith("__addround") for n in fused)
    return prune(fused, outputs), inits + requant, {"convs": len(convs), "adds": adds}

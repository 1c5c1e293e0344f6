"""Deterministic names for a converted ONNX graph. tf2onnx numbers the tensors and nodes it makes
from a process-wide counter (``zero_point__9`` in one run, ``zero_point__82`` in the next) and
lists initializers in no fixed order, so two conversions of one file differ in bytes though not in
graph. Renumbering in node order and sorting the initializers makes them identical."""

from __future__ import annotations

import re

_NUMBER = re.compile(r"__\d+")
"""tf2onnx's counter in a name (``x__22_DequantizeLinear__47:0`` holds two)."""


def canonical_names(model):
    """``model`` (an onnx ModelProto, changed in place and returned) with every name of a node or
    inner tensor that holds tf2onnx's ``__<n>`` renumbered in the order the nodes use them, and the
    initializers sorted by name. Graph inputs and outputs keep their names."""
    graph = model.graph
    kept = {v.name for v in graph.input} | {v.name for v in graph.output}
    renamed: dict[str, str] = {}
    counter = 0

    def rename(name: str) -> str:
        nonlocal counter
        if not name or name in kept or not _NUMBER.search(name):
            return name
        if name not in renamed:
            renamed[name] = f"{_NUMBER.sub('', name)}__{counter}"
            counter += 1
        return renamed[name]

    for node in graph.node:
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
        node.name = rename(node.name)
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for value in graph.value_info:
        value.name = rename(value.name)
    ordered = sorted(graph.initializer, key=lambda t: t.name)
    copies = [type(t)() for t in ordered]
    for copy, tensor in zip(copies, ordered):
        copy.CopyFrom(tensor)
    del graph.initializer[:]
    graph.initializer.extend(copies)
    return model

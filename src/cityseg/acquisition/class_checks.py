"""Does an imported model's class axis fit the label set it is given? Two checks of `cityseg import`'s
trial run beyond the output's own class count: the number of scores an ArgMax head picks among
(read from the graph, where an argmax output's ids alone cannot tell it), and, for the Cityscapes
labelId set, how much of a street frame lands in its void classes (a 19-class trainId model read
as labelIds puts road on 'unlabeled' and buildings on 'rectification border')."""

from __future__ import annotations

import numpy as np

from cityseg.errors import InputError
from cityseg.labels import LABELS, LabelSet

VOID_SHARE_LIMIT = 0.5
"""A street frame with more than this share of its pixels in void classes is refused (synthetic
street scenes hold 0-13 % void pixels: ego vehicle)."""


def argmax_classes(model, output_name: str, pass_through: set[str]) -> int | None:
    """How many classes the ArgMax that makes ``output_name`` picks among (looking through
    ``pass_through`` operators), from the graph's inferred shapes; None when it cannot be told."""
    from onnx import shape_inference

    producers = {o: n for n in model.graph.node for o in n.output}
    node = producers.get(output_name)
    while node is not None and node.op_type in pass_through and node.input:
        node = producers.get(node.input[0])
    if node is None or node.op_type != "ArgMax":
        return None
    try:
        inferred = shape_inference.infer_shapes(model).graph
    except Exception:  # shape inference refuses some graphs; the count is then unknown
        return None
    values = {v.name: v for v in [*inferred.value_info, *inferred.input, *inferred.output]}
    value = values.get(node.input[0])
    if value is None:
        return None
    dims = value.type.tensor_type.shape.dim
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    axis = axis + len(dims) if axis < 0 else axis
    if not 0 <= axis < len(dims) or not dims[axis].HasField("dim_value"):
        return None
    return int(dims[axis].dim_value)


def check_argmax_classes(count: int | None, space: LabelSet, where) -> None:
    """InputError when the ArgMax picks among another number of classes than ``space`` has."""
    if count is not None and count != space.num_classes:
        raise InputError(f"{where}: the model's ArgMax picks among {count} classes, the label set {space.name!r} "
                         f"has {space.num_classes}; give the --labels it was trained with"
                         + (" (19 classes: cityscapes, the trainIds)" if count == 19 else ""))


def void_ids(space: LabelSet) -> list[int]:
    """The class indices of ``space`` that are Cityscapes void classes (labelId set only)."""
    if space.name != "labelid":
        return []
    return [label.id for label in LABELS if label.category == "void" and 0 <= label.id < space.num_classes]


def check_void_share(ids: np.ndarray, space: LabelSet, where) -> float:
    """The share of ``ids`` (class indices of a street frame) in void classes; InputError above
    VOID_SHARE_LIMIT, naming the classes they land in."""
    void = void_ids(space)
    if not void or ids.size == 0:
        return 0.0
    inside = np.isin(ids, void)
    share = float(inside.mean())
    if share > VOID_SHARE_LIMIT:
        counts = np.bincount(ids[inside].ravel(), minlength=space.num_classes)
        top = [space.names[i] for i in np.argsort(counts)[::-1][:3] if counts[i]]
        raise InputError(f"{where}: {share:.0%} of a street frame lands in void classes of {space.name!r} "
                         f"({', '.join(top)}); the model's class ids are another label set's - give the "
                         "--labels it was trained with (a 19-class Cityscapes model: cityscapes)")
    return share

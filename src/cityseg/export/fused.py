"""Fused I/O graphs: the camera's uint8 frame in, the uint8 mask at camera resolution out.

Built by ONNX graph composition around a bundle's existing ONNX (an export or an imported model),
never by re-running tf2onnx::

    frame  uint8 N x Hc x Wc x 3 (camera order)
      -> Cast float -> resize to the network size (the card's method, :func:`resize_plan`), rounded to
         0..255 as the CPU path's uint8 resize is -> channel swap (camera order != the card's)
      -> x * (scale/std) - mean/std (the card's normalisation) -> Transpose NCHW (NCHW models) -> the network
      -> canonical scores (one channel -> two; strided scores -> bilinear, half-pixel, to the network size)
      -> ArgMax -> nearest resize to Hc x Wc -> Cast uint8                 = classes     N x Hc x Wc
      -> [round(top-class probability x 255) -> nearest resize -> Cast uint8 = confidence N x Hc x Wc]

Nearest resizes reproduce OpenCV's INTER_NEAREST_EXACT (what the unfused path runs) index for index
(:meth:`GraphBuilder.nearest`), so the mask is byte-identical to upsampling the same class map on
the CPU. uint8 appears only at the graph's input and outputs (TensorRT 10 allows it there, not
inside); in between everything is float32 or int64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cityseg.bundle import Artifact, CameraInput, ModelCard
from cityseg.export.errors import ExportError
from cityseg.export.onnx import drop_softmax_before_argmax

FRAME_NAME = "frame"
CLASSES_NAME = "classes"
CONFIDENCE_NAME = "confidence"
NET_PREFIX = "net/"
ANTIALIAS_OPSET = 18
"""Resize's ``antialias`` attribute exists from opset 18."""
MIN_OPSET = 13
"""Squeeze/Unsqueeze/ReduceSum with axes as inputs, Resize with sizes: what the wrapper is written for."""


@dataclass(frozen=True)
class ResizePlan:
    """How the graph resizes camera frames to the network size, and how close that is to the card's method."""

    op: str
    """'AveragePool', 'Resize' or 'Identity' (the camera already has the network size)."""
    attributes: dict = field(default_factory=dict)
    opset: int = MIN_OPSET
    fidelity: str = "exact"
    """'exact' or 'approximate' (parity on real frames decides whether it is close enough)."""
    note: str = ""
    rounding: str = "half_even"
    """How the resized float frame is rounded to uint8 levels, as OpenCV / Pillow do before
    normalising: 'half_even' (cvRound), 'half_up' (OpenCV's 2x2 area fast path) or 'none'."""


def resize_plan(method: str, camera: tuple[int, int], network: tuple[int, int]) -> ResizePlan:
    """The in-graph resize that best matches the card's ``method`` for camera -> network (height, width)."""
    if tuple(camera) == tuple(network):
        return ResizePlan("Identity", note="camera size is the network size: no resize", rounding="none")
    downscale = camera[0] >= network[0] and camera[1] >= network[1]
    factors = (camera[0] // network[0], camera[1] // network[1])
    integer = downscale and camera[0] % network[0] == 0 and camera[1] % network[1] == 0
    linear = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    if method == "area" and integer:
        return ResizePlan("AveragePool", {"kernel_shape": list(factors), "strides": list(factors)},
                          note=f"INTER_AREA at an integer factor {factors[0]}x{factors[1]} is the box "
                               "mean: AveragePool, rounded as OpenCV rounds it",
                          rounding="half_up" if factors == (2, 2) else "half_even")
    if method == "area" and downscale:
        return ResizePlan("Resize", {**linear, "antialias": 1}, ANTIALIAS_OPSET, "approximate",
                          "INTER_AREA at a non-integer factor: antialiased linear Resize (a triangle "
                          "filter over the footprint instead of OpenCV's box)")
    if method in ("area", "bilinear"):
        return ResizePlan("Resize", linear, fidelity="exact" if method == "bilinear" else "approximate",
                          note="linear Resize, half-pixel centres: INTER_LINEAR's formula (OpenCV "
                               "rounds its weights to 11 bits)")
    if method == "lanczos3":
        attrs = {"mode": "cubic", "coordinate_transformation_mode": "half_pixel", "cubic_coeff_a": -0.5}
        if downscale:
            attrs["antialias"] = 1
        return ResizePlan("Resize", attrs, ANTIALIAS_OPSET if downscale else MIN_OPSET, "approximate",
                          "Pillow's antialiased Lanczos-3 approximated by an antialiased cubic Resize "
                          "(a = -0.5, Pillow's bicubic)")
    if method == "nearest":
        return ResizePlan("Gather", note="INTER_NEAREST_EXACT: Gather with OpenCV's own index tables",
                          rounding="none")
    raise ExportError(f"resize method {method!r} has no in-graph equivalent; fused I/O supports "
                      "area, bilinear, lanczos3 and nearest")


class GraphBuilder:
    """Accumulates the wrapper's nodes and constants (names under ``fused/``)."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"fused/{hint}_{self._count}"

    def const(self, hint: str, value) -> str:
        from onnx import numpy_helper

        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], hint: str | None = None, output: str | None = None,
             **attributes) -> str:
        from onnx import helper

        output = output or self._name(hint or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=self._name(op), **attributes))
        return output

    def _dims(self, shape: str, start: int, end: int) -> str:
        return self.node("Slice", [shape, self.const("start", np.array([start], np.int64)),
                                   self.const("end", np.array([end], np.int64))], "dims")

    def resize_to(self, x: str, size: tuple[int, int], attributes: dict, hint: str, layout: str = "NCHW") -> str:
        """Resize ``x`` (NCHW, or NHWC) to ``size`` (height, width), batch and channels kept (sizes built
        from the input's shape, so a dynamic batch works)."""
        shape = self.node("Shape", [x], "shape")
        spatial = self.const("size", np.array(size, np.int64))
        parts = ([self._dims(shape, 0, 2), spatial] if layout == "NCHW"
                 else [self._dims(shape, 0, 1), spatial, self._dims(shape, 3, 4)])
        sizes = self.node("Concat", parts, "sizes", axis=0)
        return self.node("Resize", [x, "", "", sizes], hint, **attributes)

    def nearest(self, x: str, source: tuple[int, int], size: tuple[int, int], hint: str,
                layout: str = "NCHW") -> str:
        """Nearest resize of ``x`` from ``source`` to ``size`` (height, width), byte-identical to OpenCV's
        INTER_NEAREST_EXACT: a Resize (half_pixel + round_prefer_ceil, i.e. floor((x + 0.5) * in / out))
        where that formula gives OpenCV's indices, else Gathers with OpenCV's own index tables (OpenCV
        computes the index in 16-bit fixed point, which differs from the formula on some non-integer
        upscales)."""
        if tuple(source) == tuple(size):
            return x
        tables = [nearest_index(n_in, n_out) for n_in, n_out in zip(source, size)]
        if all(np.array_equal(t, formula_index(n_in, n_out)) for t, n_in, n_out in zip(tables, source, size)):
            return self.resize_to(x, size, NEAREST, hint, layout)
        first = 2 if layout == "NCHW" else 1
        for axis, table, n_in, n_out in zip((first, first + 1), tables, source, size):
            if n_in != n_out:
                x = self.node("Gather", [x, self.const(f"{hint}_index", table)], hint, axis=axis)
        return x

    def reduce(self, op: str, x: str, axis: int | tuple[int, ...], keepdims: int = 1) -> str:
        """ReduceMax/ReduceMean/ReduceSum over ``axis``, axes as attribute or input as the opset wants."""
        axes = [axis] if isinstance(axis, int) else list(axis)
        if self.opset >= (13 if op == "ReduceSum" else 18):
            return self.node(op, [x, self.const("axes", np.array(axes, np.int64))], keepdims=keepdims)
        return self.node(op, [x], axes=axes, keepdims=keepdims)

    def unsqueeze(self, x: str, axis: int) -> str:
        return self.node("Unsqueeze", [x, self.const("axes", np.array([axis], np.int64))])


NEAREST = {"mode": "nearest", "coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_ceil"}
"""Resize attributes computing the source index floor((x + 0.5) * in / out)."""


def formula_index(n_in: int, n_out: int) -> np.ndarray:
    """int64[n_out]: floor((x + 0.5) * n_in / n_out), exactly (integer arithmetic)."""
    return ((2 * np.arange(n_out, dtype=np.int64) + 1) * n_in // (2 * n_out)).astype(np.int64)


def nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """int64[n_out]: the source index of each output pixel of OpenCV's INTER_NEAREST_EXACT resize."""
    import cv2

    ramp = np.arange(n_in, dtype=np.float32).reshape(1, n_in)
    return cv2.resize(ramp, (n_out, 1), interpolation=cv2.INTER_NEAREST_EXACT)[0].astype(np.int64)


def preprocess_nodes(b: GraphBuilder, card: ModelCard, camera: CameraInput, plan: ResizePlan, target: str) -> None:
    """uint8 NHWC ``frame`` -> the network's float input, written to tensor ``target``. The frame stays
    NHWC until it has the network size (a full-size transpose costs more than the resize on a CPU)."""
    x = b.node("Cast", [FRAME_NAME], "frame_float", to=1)  # FLOAT
    network = (card.input_height, card.input_width)
    if plan.op == "AveragePool":  # box mean over (fy, fx) blocks: reshape, mean, no transpose
        (fy, fx), (height, width) = plan.attributes["kernel_shape"], network
        x = b.node("Reshape", [x, b.const("blocks", np.array([-1, height, fy, width, fx, 3], np.int64))], "blocks")
        x = b.reduce("ReduceMean", x, (2, 4), keepdims=0)
    elif plan.op == "Gather":
        x = b.nearest(x, camera.size, network, "resized", "NHWC")
    elif plan.op == "Resize":
        x = b.resize_to(x, network, plan.attributes, "resized", "NHWC")
    x = round_to_levels(b, x, plan.rounding)
    if camera.channel_order != card.channel_order:
        x = b.node("Gather", [x, b.const("swap", np.array([2, 1, 0], np.int64))], "reordered", axis=3)
    mul, off = card.normalization.coefficients()
    x = b.node("Mul", [x, b.const("norm_mul", mul.reshape(1, 1, 1, 3))], "scaled")
    last = card.input_layout == "NHWC"
    x = b.node("Add", [x, b.const("norm_off", off.reshape(1, 1, 1, 3))], output=target if last else None)
    if not last:
        b.node("Transpose", [x], output=target, perm=[0, 3, 1, 2])


def round_to_levels(b: GraphBuilder, x: str, rounding: str) -> str:
    """The resized float frame rounded (and clipped) to 0..255 integers, as the CPU path's uint8 resize output."""
    if rounding == "none":
        return x
    if rounding == "half_up":
        x = b.node("Floor", [b.node("Add", [x, b.const("half", np.array(0.5, np.float32))])], "rounded")
    else:
        x = b.node("Round", [x], "rounded")
    return b.node("Clip", [x, b.const("lo", np.array(0.0, np.float32)),
                           b.const("hi", np.array(255.0, np.float32))], "levels")


def _two_channel(b: GraphBuilder, scores: str, kind: str) -> str:
    """NCHW one-channel scores -> two: a probability p -> (1 - p, p); a logit x -> (0, x)."""
    if kind == "logits":
        first = b.node("Sub", [scores, scores], "zeros")
    else:
        first = b.node("Sub", [b.const("one", np.array(1.0, np.float32)), scores], "complement")
    return b.node("Concat", [first, scores], "two_channel", axis=1)


def _top_probability(b: GraphBuilder, scores: str, kind: str, axis: int) -> str:
    """Scores -> float round(top-class probability x 255), 0..255, class axis kept (size 1)."""
    if kind == "logits":
        shifted = b.node("Sub", [scores, b.reduce("ReduceMax", scores, axis)], "shifted")
        top = b.node("Reciprocal", [b.reduce("ReduceSum", b.node("Exp", [shifted]), axis)], "top")
    else:
        top = b.reduce("ReduceMax", scores, axis)
    scaled = b.node("Round", [b.node("Mul", [top, b.const("c255", np.array(255.0, np.float32))])])
    return b.node("Clip", [scaled, b.const("lo", np.array(0.0, np.float32)),
                           b.const("hi", np.array(255.0, np.float32))], "confidence_float")


def score_heads(b: GraphBuilder, scores: str, kind: str, layout: str, shape: tuple[int, ...],
                network: tuple[int, int], confidence: bool) -> tuple[str, str | None]:
    """Raw scores -> (float class ids N x 1 x H x W, float confidence N x 1 x H x W or None)."""
    channels_last = layout == "NHWC"
    spatial = tuple(shape[1:3]) if channels_last else tuple(shape[2:4])
    channels = shape[3] if channels_last else shape[1]
    if channels_last and channels >= 2 and spatial == network:  # our exports: the cheap path
        ids = b.unsqueeze(b.node("ArgMax", [scores], "ids", axis=3, keepdims=0), 1)
        conf = _top_probability(b, scores, kind, 3) if confidence else None
        return b.node("Cast", [ids], "ids_float", to=1), (b.node("Transpose", [conf], perm=[0, 3, 1, 2])
                                                          if conf else None)
    if channels_last:
        scores = b.node("Transpose", [scores], "scores_nchw", perm=[0, 3, 1, 2])
    if channels == 1:
        scores = _two_channel(b, scores, kind)
        kind = "logits" if kind == "logits" else "probabilities"
    if spatial != network:
        scores = b.resize_to(scores, network, {"mode": "linear", "coordinate_transformation_mode": "half_pixel"},
                             "scores_full")
    ids = b.node("ArgMax", [scores], "ids", axis=1, keepdims=1)
    conf = _top_probability(b, scores, kind, 1) if confidence else None
    return b.node("Cast", [ids], "ids_float", to=1), conf


def id_map(b: GraphBuilder, ids: str, layout: str, shape: tuple[int, ...], network: tuple[int, int],
           hint: str) -> str:
    """A raw id (or uint8 confidence) map, NxHxW or single-channel -> float N x 1 x H x W at the network size."""
    if len(shape) == 3:
        ids, spatial = b.unsqueeze(ids, 1), tuple(shape[1:3])
    elif layout == "NHWC":
        ids, spatial = b.node("Transpose", [ids], perm=[0, 3, 1, 2]), tuple(shape[1:3])
    else:
        spatial = tuple(shape[2:4])
    ids = b.node("Cast", [ids], f"{hint}_float", to=1)
    if spatial != network:
        ids = b.nearest(ids, spatial, network, f"{hint}_full")
    return ids


def to_camera(b: GraphBuilder, x: str, network: tuple[int, int], camera: tuple[int, int], output: str) -> None:
    """float N x 1 x H x W -> uint8 N x Hc x Wc graph output ``output`` (nearest, INTER_NEAREST_EXACT)."""
    x = b.nearest(x, network, camera, f"{output}_camera")
    x = b.node("Squeeze", [x, b.const("axes", np.array([1], np.int64))], f"{output}_squeezed")
    b.node("Cast", [x], output=output, to=2)  # UINT8


@dataclass
class NetworkIO:
    """The wrapped network's tensors (after prefixing) and what its outputs are."""

    input: str
    output: str
    output_shape: tuple[int, ...]
    confidence: str | None = None
    confidence_shape: tuple[int, ...] = ()


def build_fused(source, card: ModelCard, artifact: Artifact, camera: CameraInput, *, confidence: bool,
                shapes: dict[str, tuple[int, ...]], batch: int | str = "batch"):
    """The fused onnx.ModelProto around ``source`` (the artifact's ONNX), and the ResizePlan used.

    ``shapes``: the source's output shapes (name -> shape) and ``batch`` its fixed batch or 'batch'
    (dynamic), both from :func:`probe_shapes`.
    """
    import onnx
    from onnx import TensorProto, compose, helper

    network = (card.input_height, card.input_width)
    plan = resize_plan(card.resize, camera.size, network)
    if confidence and artifact.output == "argmax" and not artifact.confidence:
        raise ExportError(f"{artifact.path} outputs class ids without a confidence output, so the fused graph "
                          "cannot give one; build it from the scores model (export model.onnx first) or "
                          "drop --confidence")
    model = with_opset(source, max(plan.opset, MIN_OPSET))
    opset = default_opset(model)
    io = network_io(model, artifact, shapes)
    model = compose.add_prefix(model, NET_PREFIX)
    b = GraphBuilder(opset)
    preprocess_nodes(b, card, camera, plan, NET_PREFIX + io.input)
    pre = len(b.nodes)
    out = NET_PREFIX + io.output
    if artifact.output == "argmax":
        ids = id_map(b, out, artifact.output_layout, io.output_shape, network, "ids")
        conf = (id_map(b, NET_PREFIX + io.confidence, artifact.output_layout, io.confidence_shape, network,
                       "confidence") if confidence else None)
    else:
        ids, conf = score_heads(b, out, artifact.output, artifact.output_layout, io.output_shape, network, confidence)
    to_camera(b, ids, network, camera.size, CLASSES_NAME)
    if conf:
        to_camera(b, conf, network, camera.size, CONFIDENCE_NAME)
    frame = helper.make_tensor_value_info(FRAME_NAME, TensorProto.UINT8, [batch, camera.height, camera.width, 3])
    outputs = [helper.make_tensor_value_info(n, TensorProto.UINT8, [batch, camera.height, camera.width])
               for n in ([CLASSES_NAME] + ([CONFIDENCE_NAME] if conf else []))]
    inner = model.graph
    graph = helper.make_graph(b.nodes[:pre] + list(inner.node) + b.nodes[pre:], "fused_io",
                              [frame], outputs, initializer=list(inner.initializer) + b.initializers,
                              value_info=list(inner.value_info))
    fused = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name="cityseg-fused-io",
                              functions=list(model.functions))
    fused.ir_version = model.ir_version

    drop_softmax_before_argmax(fused.graph)
    prune(fused.graph)
    try:
        onnx.checker.check_model(fused)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the fused graph around {artifact.path} is not valid ONNX ({exc}); report this "
                          "with the model card") from None
    return fused, plan


def default_opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def with_opset(model, minimum: int):
    """``model``, converted to opset ``minimum`` when older (onnx.version_converter)."""
    from onnx import version_converter

    current = default_opset(model)
    if current >= minimum:
        return model
    try:
        return version_converter.convert_version(model, minimum)
    except Exception as exc:  # noqa: BLE001 - the converter raises assorted errors per operator
        raise ExportError(f"the model's ONNX (opset {current}) could not be converted to opset {minimum}, "
                          f"which the fused graph's resize needs ({exc}); re-export it at --opset "
                          f"{minimum}, or use a card resize method without antialiasing (bilinear)") from None


def network_io(model, artifact: Artifact, shapes: dict[str, tuple[int, ...]]) -> NetworkIO:
    """The network's input and outputs, looking through a final Cast to uint8 (kept out of the graph's inside)."""
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != 1:
        raise ExportError(f"{artifact.path}: fused I/O wraps a model with one float32 image input; this one "
                          f"has {[(v.name, v.type.tensor_type.elem_type) for v in inputs]}")
    names = [o.name for o in graph.output]
    primary = next(n for n in names if n != artifact.confidence)
    io = NetworkIO(inputs[0].name, before_uint8_cast(graph, primary), shapes[primary])
    if artifact.confidence:
        io.confidence = before_uint8_cast(graph, artifact.confidence)
        io.confidence_shape = shapes[artifact.confidence]
    return io


def before_uint8_cast(graph, name: str) -> str:
    """The input of the Cast-to-uint8 node producing ``name``, or ``name`` itself."""
    producer = next((n for n in graph.node if name in n.output), None)
    if producer is not None and producer.op_type == "Cast" and any(
            a.name == "to" and a.i == 2 for a in producer.attribute):
        return producer.input[0]
    return name


def prune(graph) -> None:
    """Remove nodes whose outputs nothing uses (a source's dropped uint8 casts), then unused initializers."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)


def probe_shapes(path, card: ModelCard) -> tuple[dict[str, tuple[int, ...]], int | str]:
    """Run the source ONNX once on a zero batch: ({output name: shape}, its fixed batch or 'batch')."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    fixed = first.shape[0] if isinstance(first.shape[0], int) and first.shape[0] > 0 else None
    batch = np.zeros((fixed or 1, *card.input_shape), np.float32)
    names = [o.name for o in session.get_outputs()]
    shapes = {n: tuple(v.shape) for n, v in zip(names, session.run(names, {first.name: batch}))}
    return shapes, fixed or "batch"

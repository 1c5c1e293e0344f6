"""Bring your own ONNX: inspect a model cityseg did not train and write a bundle for it.

:func:`inspect_graph` reads what the graph says (input layout and size, output kind and class
axis); :func:`detect_layout`, :func:`detect_size`, :func:`detect_output` and :func:`output_layout`
merge that with what the user gave, and :func:`require_given` refuses (naming the option) what can
be neither detected nor defaulted; :func:`import_onnx` runs the model once on a
street frame, refuses what cannot work (rank, class count, NaNs), and writes the bundle: the card
(preprocessing, output kind and layout, classes) and the ONNX as ``model.onnx``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cityseg.acquisition import class_checks, quant_twins, tflite
from cityseg.bundle import raw_output as model_outputs
from cityseg.bundle.card import Artifact, ModelCard, class_fields, framework_versions
from cityseg.bundle.directory import Bundle
from cityseg.bundle.staging import staged_bundle
from cityseg.errors import InputError
from cityseg.export import parity
from cityseg.export import tensorrt_compat as trt_compat
from cityseg.fileio import require_file, sha256_file
from cityseg.labels import LabelSet
from cityseg.preprocess import FIT_POLICIES, Normalization

log = logging.getLogger(__name__)

SCORE_PRODUCERS = {"Softmax": "probabilities", "Sigmoid": "sigmoid", "LogSoftmax": "logits"}
"""Output kind detected from the operator that produces the output."""
ID_PRODUCERS = {"ArgMax"}
PASS_THROUGH = {"Cast", "Identity", "Transpose", "Resize", "Reshape", "Squeeze", "Unsqueeze"}
"""Operators looked through when finding what produces the output."""
RESIZE_CHOICES = {"area": "area", "linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest"}


@dataclass
class GraphFacts:
    """What the ONNX graph itself says about its input and (first) output."""

    input_name: str
    input_shape: list
    """Dims as ints, or names/None for dynamic ones."""
    input_dtype: str
    output_name: str
    output_shape: list
    output_dtype: str
    output_producer: str
    """The operator that makes the output (looking through Cast/Identity/Transpose/Resize...)."""
    other_outputs: list[str] = field(default_factory=list)
    opset: int | None = None
    producer: str = ""


@dataclass
class ImportOptions:
    """What the user gave on the command line (None: detect, or refuse when it cannot be detected)."""

    layout: str = "auto"
    input_size: tuple[int, int] | None = None
    channel_order: str | None = None
    scale: float | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    resize: str | None = None
    output: str = "auto"
    fit: str = "stretch"
    tile_scale: float = 1.0


def _dims(value) -> list:
    dims = value.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims]


def _dtype(value) -> str:
    from onnx import helper

    return str(np.dtype(helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)))


def inspect_graph(model) -> GraphFacts:
    """The input/output facts of an ONNX ModelProto; InputError when it has no single image input."""
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    if len(inputs) != 1:
        raise InputError(f"the model has {len(inputs)} inputs ({', '.join(v.name for v in inputs)}); "
                         "cityseg runs models with one image input")
    if not graph.output:
        raise InputError("the model has no outputs")
    out = graph.output[0]
    producers = {o: n for n in graph.node for o in n.output}
    node = producers.get(out.name)
    while node is not None and node.op_type in PASS_THROUGH and node.input:
        node = producers.get(node.input[0])
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return GraphFacts(inputs[0].name, _dims(inputs[0]), _dtype(inputs[0]), out.name, _dims(out), _dtype(out),
                      node.op_type if node is not None else "", [o.name for o in graph.output[1:]], opset,
                      f"{model.producer_name} {model.producer_version}".strip())


def detect_layout(facts: GraphFacts, given: str) -> str:
    """NCHW when the input's dim 1 is 3, NHWC when its last dim is 3; ``given`` unless 'auto'."""
    shape = facts.input_shape
    if len(shape) != 4:
        raise InputError(f"input {facts.input_name!r} has shape {shape}; an image input is 4-D "
                         "(NCHW or NHWC)")
    if given != "auto":
        layout = given.upper()
        channels = shape[1] if layout == "NCHW" else shape[3]
        if isinstance(channels, int) and channels != 3:
            raise InputError(f"--layout {given}: input {facts.input_name!r} {shape} has {channels} "
                             "channels there, not 3; try the other layout")
        return layout
    nchw, nhwc = shape[1] == 3, shape[3] == 3
    if nchw != nhwc:
        return "NCHW" if nchw else "NHWC"
    raise InputError(f"input {facts.input_name!r} has shape {shape}: cannot tell NCHW from NHWC; "
                     "give --layout nchw or --layout nhwc")


def detect_size(facts: GraphFacts, layout: str, given: tuple[int, int] | None) -> tuple[int, int]:
    """The network input (height, width): the graph's fixed size, else ``given`` (--input-size)."""
    shape = facts.input_shape
    height, width = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    fixed = isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0
    if fixed and given is not None and tuple(given) != (height, width):
        raise InputError(f"--input-size {given[0]}x{given[1]}: the model's input is fixed at "
                         f"{height}x{width}; drop --input-size or give {height}x{width}")
    if fixed:
        return height, width
    if given is None:
        raise InputError(f"input {facts.input_name!r} {shape} has a dynamic height/width; give the size "
                         "the model was trained for with --input-size HxW (e.g. 512x1024)")
    return tuple(given)


def detect_output(facts: GraphFacts, given: str) -> str:
    """The output kind: ``given`` unless 'auto'; else from the dtype and the producing operator."""
    if given != "auto":
        return given
    if facts.output_dtype.startswith(("int", "uint")) or facts.output_producer in ID_PRODUCERS:
        return "argmax"
    if facts.output_producer in SCORE_PRODUCERS:
        return SCORE_PRODUCERS[facts.output_producer]
    shape = facts.output_shape
    single = len(shape) == 4 and 1 in (shape[1], shape[3]) and not (shape[1] == 1 and shape[3] == 1)
    if single:
        raise InputError(f"output {facts.output_name!r} {shape} has one channel and no Sigmoid before it: "
                         "give --output sigmoid (a probability) or --output logits (a raw logit)")
    return "logits"


def output_layout(facts: GraphFacts, layout: str, num_classes: int) -> str:
    """The class axis of the output: the input's layout, unless the output's known dims say otherwise."""
    shape = facts.output_shape
    if len(shape) != 4:
        return layout
    wanted = {num_classes, 1}
    if layout == "NCHW" and shape[1] not in wanted and shape[3] in wanted:
        return "NHWC"
    if layout == "NHWC" and shape[3] not in wanted and shape[1] in wanted:
        return "NCHW"
    return layout


def normalization(options: ImportOptions, channel_order: str) -> Normalization:
    """--scale/--mean/--std (mean and std given as R,G,B) in the model's channel order."""
    mean, std = tuple(options.mean), tuple(options.std)
    if channel_order == "BGR":
        mean, std = mean[::-1], std[::-1]
    try:
        return Normalization(scale=options.scale, mean=mean, std=std)
    except ValueError as exc:
        raise InputError(f"--scale/--mean/--std: {exc}") from None


INPUT_DTYPES = ("float32", "uint8")
"""Input types cityseg feeds: normalised float32, or the resized uint8 frame (no normalisation)."""


def require_given(options: ImportOptions, dynamic_size: bool = False, uint8_input: bool = False) -> None:
    """InputError naming every preprocessing option the graph cannot tell and the user left out
    (and --input-size when the graph's height/width are dynamic). A uint8 input takes the frame
    as it is, so it needs no --scale/--mean/--std."""
    wanted = [("--channel-order rgb|bgr", options.channel_order)]
    if not uint8_input:
        wanted += [("--scale S", options.scale), ("--mean R,G,B", options.mean), ("--std R,G,B", options.std)]
    wanted.append(("--resize area|linear|nearest", options.resize))
    missing = [flag for flag, value in wanted if value is None]
    if missing and dynamic_size and options.input_size is None:
        missing.append("--input-size HxW (the model's height/width are dynamic)")
    if missing:
        raise InputError("an ONNX graph does not record how its input was preprocessed; give "
                         + ", ".join(missing) + " (the values of the model's training pipeline; "
                         "docs/MODELS.md lists them for mmsegmentation, PaddleSeg and torchvision models)")


def build_card(path: Path, facts: GraphFacts, options: ImportOptions, space: LabelSet, name: str,
               source: Path | None = None) -> ModelCard:
    """The model card of an imported ONNX (validated); ``source``: the file it was converted from."""
    layout = detect_layout(facts, options.layout)
    spatial = facts.input_shape[2:] if layout == "NCHW" else facts.input_shape[1:3]
    uint8_input = facts.input_dtype == "uint8"
    require_given(options, dynamic_size=not all(isinstance(d, int) and d > 0 for d in spatial),
                  uint8_input=uint8_input)
    height, width = detect_size(facts, layout, options.input_size)
    kind = detect_output(facts, options.output)
    check_fit(options)
    order = options.channel_order.upper()
    detected = {"layout": options.layout == "auto", "input_size": options.input_size is None,
                "output": options.output == "auto"}
    card = ModelCard(
        name=name, architecture=f"imported:{facts.producer or 'onnx'}", input_height=height,
        input_width=width, **class_fields(space), channel_order=order, resize=RESIZE_CHOICES[options.resize],
        normalization=Normalization() if uint8_input else normalization(options, order), input_layout=layout,
        input_dtype="uint8" if uint8_input else "float32", fit=options.fit,
        tile_scale=float(options.tile_scale),
        frameworks=framework_versions("onnx", "onnxruntime"),
        imported={"source": str(source or path), "sha256": sha256_file(source or path),
                  "converted": "tf2onnx (TFLite)" if source else None, "producer": facts.producer,
                  "opset": facts.opset, "detected": detected,
                  "output_producer": facts.output_producer, "ignored_outputs": facts.other_outputs})
    card.artifacts["onnx"] = Artifact("model.onnx", "onnx", kind, {},
                                      output_layout=output_layout(facts, layout, space.num_classes))
    return card


def check_fit(options: ImportOptions) -> None:
    """InputError for a fit the card cannot take: an unknown policy, a tile scale that is not a
    positive number, or a tile scale without ``--fit tiles``."""
    if options.fit not in FIT_POLICIES:
        raise InputError(f"--fit {options.fit}: unknown fit policy; use one of {', '.join(FIT_POLICIES)}")
    scale = options.tile_scale
    if not (isinstance(scale, (int, float)) and 0 < scale < float("inf")):
        raise InputError(f"--tile-scale {scale}: must be a positive number (the factor frames are resized by "
                         "before they are cut into tiles, e.g. 1.0)")
    if options.fit != "tiles" and scale != 1.0:
        raise InputError(f"--tile-scale {scale} only applies to --fit tiles (the fit is {options.fit})")


def trial_run(path: Path, card: ModelCard, facts: GraphFacts, frames: list[np.ndarray] | None = None, *,
              shown: Path | None = None) -> dict:
    """Run the ONNX once on street frames with the card's preprocessing; InputError naming the
    problem (and ``shown``, the file the user gave, default ``path``) when the output cannot be
    what the card says. Returns what was seen."""
    import onnxruntime as ort

    where = shown or path

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise InputError(f"{where}: ONNX Runtime cannot load this model ({exc})") from None
    if facts.input_dtype not in INPUT_DTYPES:
        raise InputError(f"{where}: input {facts.input_name!r} is {facts.input_dtype}; cityseg feeds float32 "
                         "(normalised) or uint8 (the frame as it is) images - export the model with one of those")
    frames, source = parity.parity_frames(card, frames, count=1)
    batch = card.preprocess(frames)
    try:
        raw = session.run([facts.output_name], {facts.input_name: batch})[0]
    except Exception as exc:  # a shape the graph cannot take, mostly
        raise InputError(f"{where}: the model fails on a {'x'.join(map(str, batch.shape))} "
                         f"{card.input_layout} input ({exc}); check --layout and --input-size") from None
    artifact = card.artifacts["onnx"]
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():
        raise InputError(f"{where}: the output holds NaN or infinite values on a street frame; the model "
                         "or its preprocessing (--scale/--mean/--std) is broken")
    try:
        canonical, kind = model_outputs.standardize(raw, artifact.output, artifact.output_layout,
                                               (card.input_height, card.input_width))
    except model_outputs.OutputError as exc:
        raise InputError(f"{where}: output {facts.output_name!r} {list(raw.shape)}: {exc}; check "
                         "--output and --layout") from None
    classes = card.num_classes
    if kind != "argmax" and canonical.shape[-1] != classes:
        raise InputError(f"{where}: the model outputs {canonical.shape[-1]} classes, the label set "
                         f"{card.space.name!r} has {classes}; give the --labels it was trained with")
    if kind == "argmax" and int(canonical.max()) >= classes:
        raise InputError(f"{where}: the model outputs class index {int(canonical.max())}, the label set "
                         f"{card.space.name!r} has {classes} classes; give the --labels it was trained with")
    void_share = class_checks.check_void_share(canonical if kind == "argmax" else canonical.argmax(-1),
                                               card.space, where)
    if kind == "probabilities" and not (-1e-3 <= float(canonical.min()) and float(canonical.max()) <= 1 + 1e-3):
        raise InputError(f"{where}: output {facts.output_name!r} is not probabilities (values "
                         f"{float(canonical.min()):.3g}..{float(canonical.max()):.3g}); give --output logits")
    stride = card.input_height / (raw.shape[2] if artifact.output_layout == "NCHW" and raw.ndim == 4
                                  else raw.shape[1])
    return {"frame_source": source, "output_shape": list(raw.shape), "output_dtype": str(raw.dtype),
            "output_stride": stride, "void_share": round(void_share, 4)}


def import_onnx(path: str | Path, out: str | Path, space: LabelSet, options: ImportOptions, *,
                name: str | None = None, force: bool = False, frames: list[np.ndarray] | None = None) -> Bundle:
    """Inspect, check and bundle the ONNX (or TFLite, converted with tf2onnx) at ``path`` into
    ``out``, written in a staging folder and swapped in only when complete
    (:func:`cityseg.bundle.staging.staged_bundle`); returns the new bundle."""
    path, out = Path(path), Path(out)
    require_file(path, "ONNX or TFLite", empty_ok=False)
    with staged_bundle(out, force=force, inputs=[path]) as staging:
        write_import(path, staging, space, options, name or path.stem, frames)
    return Bundle.load(out / "model.json")  # the folder written, never a same-named one in ./models


def write_import(path: Path, folder: Path, space: LabelSet, options: ImportOptions, name: str,
                 frames: list[np.ndarray] | None = None) -> Bundle:
    """Write the bundle of the ONNX or TFLite file ``path`` into the empty (staging) folder
    ``folder``; a later step may add artifacts to it before it is swapped in."""
    if tflite.is_tflite(path):
        with tempfile.TemporaryDirectory(prefix="cityseg-tflite-") as scratch:
            converted = tflite.tflite_to_onnx(path, Path(scratch) / f"{path.stem}.onnx")
            bundle = _import(converted, folder, space, options, name, frames, source=path)
    else:
        bundle = _import(path, folder, space, options, name, frames)
    return quant_twins.add_float_twin(bundle, path, frames)  # TensorRT-ready twin of a uint8 Q/DQ graph


def _import(path: Path, out: Path, space: LabelSet, options: ImportOptions, name: str,
            frames: list[np.ndarray] | None, source: Path | None = None) -> Bundle:
    import onnx
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    try:
        model = onnx.load(str(path), load_external_data=False)
        external = any(uses_external_data(t) for t in model.graph.initializer)
        if external:  # weights in side files (models over 2 GB, some exporters): the bundle gets one file
            load_external_data_for_model(model, str(path.parent))
    except Exception as exc:  # onnx raises DecodeError and friends for non-ONNX files
        raise InputError(f"{path}: not an ONNX model, or its external weight files are missing beside "
                         f"it ({exc})") from None
    facts = inspect_graph(model)
    card = build_card(path, facts, options, space, name, source)
    class_checks.check_argmax_classes(class_checks.argmax_classes(model, facts.output_name, PASS_THROUGH),
                                      space, source or path)
    seen = trial_run(path, card, facts, frames, shown=source)
    findings = trt_compat.check_model(model)
    if findings:  # the CLI prints one line; the list goes on the card (details.tensorrt_check)
        log.debug("%s: TensorRT 10 would reject this model (ONNX Runtime runs it):\n%s", source or path,
                  trt_compat.describe(findings))
    artifact = card.artifacts.pop("onnx")
    artifact.details = {"opset": facts.opset, "trial": seen,
                        "input": {"name": facts.input_name, "shape": facts.input_shape, "dtype": facts.input_dtype},
                        "output": {"name": facts.output_name, "shape": facts.output_shape,
                                   "dtype": facts.output_dtype},
                        "tensorrt_check": [str(f) for f in findings]}
    bundle = Bundle.create(out, card)
    if external:
        onnx.save(model, str(out / artifact.path))
    else:
        shutil.copyfile(path, out / artifact.path)
    artifact.details["sha256"] = sha256_file(out / artifact.path)
    artifact.details["bytes"] = (out / artifact.path).stat().st_size
    bundle.add_artifact("onnx", artifact)
    return bundle

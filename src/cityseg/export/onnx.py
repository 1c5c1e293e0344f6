"""Keras bundle -> ONNX (tf2onnx), checked for parity and TensorRT compatibility before it is kept.

The exported graph has one input ``image`` (float32 ``batch x H x W x 3``, the card's size, the
batch dynamic) and one output: ``probabilities`` (float32 ``batch x H x W x C``, the Keras model's
own output) or, with the argmax head, ``classes`` (uint8 ``batch x H x W``), optionally followed by
``confidence`` (uint8 ``batch x H x W``, the top-class probability x 255). uint8 is portable:
TensorRT 10 casts to UINT8 and allows it as a network output (its ONNX support matrix), and ONNX
Runtime supports it, so only one byte per pixel leaves the device.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cityseg.bundle import Artifact, Bundle, ModelCard, framework_versions
from cityseg.bundle import raw_output as model_outputs
from cityseg.errors import BundleError
from cityseg.export import parity
from cityseg.export import tensorrt_compat as trt_compat
from cityseg.export.errors import ExportError, ParityError
from cityseg.fileio import atomic_path, sha256_file
from cityseg.inference.onnxruntime_session import cpu_session_options

log = logging.getLogger(__name__)

INPUT_NAME = "image"
BATCH_DIM = "batch"
OUTPUT_NAMES = {False: "probabilities", True: "classes"}
CONFIDENCE_NAME = "confidence"
CONFIDENCE_TOLERANCE = 2
"""Largest difference (of 255) allowed between the exported confidence output and the source's."""
DEFAULT_OPSET = 17


def onnx_artifact(argmax_head: bool) -> tuple[str, str]:
    """(card key, file name) of the ONNX export: ('onnx', 'model.onnx') or the argmax-head variant."""
    return ("onnx_argmax", "model_argmax.onnx") if argmax_head else ("onnx", "model.onnx")


def refuse_overwrite(bundle: Bundle, key: str, target: Path, force: bool) -> None:
    """Raise unless ``target`` / card entry ``key`` are free or ``force`` is given."""
    if force:
        return
    if key in bundle.card.artifacts or target.exists():
        raise ExportError(f"{target}: already exists in the bundle; pass --force to replace it "
                          "(the new file replaces it only if it passes the parity check)")


def keras_artifact(bundle: Bundle) -> str:
    """The card key of the bundle's Keras model (the export source)."""
    keys = list(bundle.artifacts("keras"))
    if not keys:
        raise ExportError(f"{bundle.path}: the bundle has no Keras model (model.keras) to export; "
                          "export from the training run's bundle/ directory")
    return keys[0]


def load_keras_model(path: Path):
    """Load ``model.keras`` with the project's custom layers registered."""
    # lazy: cityseg.models imports Keras (TensorFlow), needed only where a Keras model is built
    import keras

    import cityseg.models  # noqa: F401  (registers the project's custom layers)

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # keras raises many types for unreadable files
        raise BundleError(f"{path}: Keras cannot load this model ({exc}); the file is corrupt or "
                          "from an incompatible Keras - restore it from the training run") from None


def is_mixed_precision(model) -> bool:
    return any(layer.dtype_policy.name != "float32" for layer in model.layers)


def float32_model(model):
    """``model`` itself, or a float32 clone of a mixed-precision model (ONNX is exported in fp32;
    TensorRT chooses fp16 kernels itself with --precision fp16)."""
    import keras

    if not is_mixed_precision(model):
        return model

    def clone_layer(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    try:
        clone = keras.models.clone_model(model, clone_function=clone_layer)
        clone.set_weights(model.get_weights())
    except Exception as exc:  # clone_model fails on exotic subclassed models
        raise ExportError(f"the model uses mixed precision and could not be rebuilt in float32 "
                          f"for export ({exc}); save it with a float32 policy") from None
    return clone


def check_model_matches_card(model, card: ModelCard, path: Path) -> None:
    """Raise BundleError when the Keras model's input size or class count disagrees with the card."""
    in_shape = tuple(model.input_shape)
    out_shape = tuple(model.output_shape)
    expected = (card.input_height, card.input_width, 3)
    if len(in_shape) != 4 or any(got is not None and got != want for got, want in zip(in_shape[1:], expected)):
        raise BundleError(f"{path}: model input {in_shape} does not match the card's "
                          f"{card.input_height}x{card.input_width}x3; the card and the model do not "
                          "belong together")
    if out_shape[-1] != card.num_classes:
        raise BundleError(f"{path}: the model outputs {out_shape[-1]} classes but the card declares "
                          f"{card.num_classes} ({card.class_space}); the card and the model do not "
                          "belong together")


def convert(model, card: ModelCard, *, argmax_head: bool, opset: int, confidence: bool = False,
            source_kind: str = "probabilities"):
    """Keras model -> onnx.ModelProto with named I/O and a dynamic batch dimension; with
    ``confidence`` the argmax head also outputs the top-class probability x 255 (uint8)."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, card.input_height, card.input_width, 3), tf.float32, name=INPUT_NAME),)
    output_name = OUTPUT_NAMES[argmax_head]

    @tf.function(input_signature=spec)
    def forward(image):
        scores = model(image, training=False)
        outputs = {}
        if argmax_head:
            # tf.argmax, not keras.ops.argmax: the latter adds Bitcast/BitwiseAnd (TensorRT rejects them)
            outputs[output_name] = tf.cast(tf.argmax(scores, axis=-1, output_type=tf.int32), tf.uint8)
            if confidence:
                probabilities = scores if source_kind == "probabilities" else tf.nn.softmax(scores, axis=-1)
                top = tf.round(tf.reduce_max(probabilities, axis=-1) * 255.0)
                outputs[CONFIDENCE_NAME] = tf.cast(tf.clip_by_value(top, 0.0, 255.0), tf.uint8)
        else:
            outputs[output_name] = scores
        return outputs

    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    try:
        proto, _ = tf2onnx.convert.from_function(forward, input_signature=spec, opset=opset)
    except Exception as exc:  # tf2onnx raises assorted errors for unsupported ops/opsets
        raise ExportError(f"tf2onnx could not convert the model at opset {opset}: {exc}; try "
                          f"--opset {DEFAULT_OPSET} or check the model's layers") from None
    name_batch_dimension(proto)
    primary_output_first(proto, output_name)
    if opset >= 13:  # Softmax normalises one axis from opset 13 on (before: a flattened 2-D view)
        drop_softmax_before_argmax(proto.graph)
        softmax_on_last_axis(proto.graph)
    return proto


def primary_output_first(proto, name: str) -> None:
    """Put the graph output ``name`` first (engines and runners read the first output as the main one)."""
    outputs = list(proto.graph.output)
    ordered = sorted(outputs, key=lambda o: o.name != name)
    if ordered != outputs:
        del proto.graph.output[:]
        proto.graph.output.extend(ordered)


def name_batch_dimension(proto) -> None:
    """Call the dynamic first dimension of every graph input/output ``batch``."""
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


def _consumers(graph, tensor: str) -> list:
    return [n for n in graph.node if tensor in n.input]


def _axis(node, rank: int = 4) -> int:
    axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
    return axis % rank


def drop_softmax_before_argmax(graph) -> None:
    """ArgMax(Softmax(x)) -> ArgMax(x) on the same axis: softmax is monotonic, so the classes are
    the same (parity checks it) and the argmax head skips a full pass over the scores."""
    outputs = {o.name for o in graph.output}
    for argmax in [n for n in graph.node if n.op_type == "ArgMax"]:
        softmax = next((n for n in graph.node if argmax.input[0] in n.output and n.op_type == "Softmax"), None)
        if (softmax is None or softmax.output[0] in outputs or len(_consumers(graph, softmax.output[0])) != 1
                or _axis(softmax) != _axis(argmax)):
            continue
        argmax.input[0] = softmax.input[0]
        graph.node.remove(softmax)


def softmax_on_last_axis(graph) -> None:
    """Transpose(Softmax(x, axis=1), NCHW->NHWC) -> Softmax(Transpose(x), axis=-1).

    tf2onnx keeps convolutions in NCHW and pushes the closing transpose past the softmax, leaving a
    channel-axis softmax that ONNX Runtime's CPU kernel runs several times slower than the convs of
    a light model; on the last axis it is cheap (measured in docs/EXPORT.md)."""
    outputs = {o.name for o in graph.output}
    for softmax in [n for n in graph.node if n.op_type == "Softmax"]:
        users = _consumers(graph, softmax.output[0])
        if softmax.output[0] in outputs or len(users) != 1 or users[0].op_type != "Transpose":
            continue
        transpose = users[0]
        perm = next((list(a.ints) for a in transpose.attribute if a.name == "perm"), [])
        if len(perm) != 4 or perm[-1] != _axis(softmax):
            continue
        moved = softmax.input[0] + "__to_last_axis"
        transpose.input[0], transpose.output[0], softmax.input[0], softmax.output[0] = (
            softmax.input[0], moved, moved, transpose.output[0])
        for attr in softmax.attribute:
            if attr.name == "axis":
                attr.i = -1
        index = list(graph.node).index(softmax)
        graph.node.remove(transpose)
        graph.node.insert(index, transpose)


def io_details(proto) -> dict:
    """{'input': {...}, 'output': {...}} names, shapes and dtypes of the graph."""
    from onnx import helper

    def describe(value) -> dict:
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor.shape.dim]
        return {"name": value.name, "shape": shape,
                "dtype": str(helper.tensor_dtype_to_np_dtype(tensor.elem_type))}

    details = {"input": describe(proto.graph.input[0]), "output": describe(proto.graph.output[0])}
    if len(proto.graph.output) > 1:
        details["extra_outputs"] = [describe(o) for o in proto.graph.output[1:]]
    return details


def keras_runner(model):
    """batch -> the Keras model's output (inference mode)."""
    return lambda batch: np.asarray(model(batch, training=False))


def onnxruntime_runner(path: Path, output: str | None = None):
    """batch -> an ONNX file's output (the first, or ``output``), ONNX Runtime on the CPU (deterministic
    fp32; int8 kernels exact on every CPU, so a gate judges the file, not the export machine's kernels)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), cpu_session_options(exact_int8=True, optimized=False),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    output = output or session.get_outputs()[0].name
    fixed = session.get_inputs()[0].shape[0]
    if isinstance(fixed, int) and fixed > 0:  # a fixed batch (imported models often take 1 frame)
        return lambda batch: np.concatenate([session.run([output], {name: batch[i:i + fixed]})[0]
                                             for i in range(0, len(batch), fixed)])
    return lambda batch: session.run([output], {name: batch})[0]


def check_confidence(reference, source_kind: str, exported, batch: np.ndarray, target: Path) -> dict:
    """Compare the exported confidence output with the source's top-class probability x 255;
    ParityError when any pixel is off by more than CONFIDENCE_TOLERANCE."""
    worst = 0
    for start in range(0, len(batch), parity.chunk_frames(batch.shape[1], batch.shape[2])):
        part = batch[start:start + parity.chunk_frames(batch.shape[1], batch.shape[2])]
        source = np.asarray(reference(part))
        expected = np.stack([model_outputs.top_probability(s, source_kind) for s in source]).astype(int)
        worst = max(worst, int(np.abs(expected - np.asarray(exported(part)).astype(int)).max()))
    if worst > CONFIDENCE_TOLERANCE:
        raise ParityError(f"{target}: refused - the confidence output differs from the source's top-class "
                          f"probability by up to {worst}/255 (at most {CONFIDENCE_TOLERANCE} allowed). Nothing "
                          "was written", report=None)
    return {"max_abs_diff": worst, "tolerance": CONFIDENCE_TOLERANCE}


def export_onnx(bundle: Bundle, *, argmax_head: bool = False, opset: int = DEFAULT_OPSET,
                force: bool = False, frames: list[np.ndarray] | None = None,
                strict: bool = False, confidence: bool = False) -> parity.ParityReport:
    """Export the bundle's Keras model to ONNX, check parity, and record it in the card.

    ``confidence`` (argmax head only): add the uint8 ``confidence`` output, checked against the
    Keras model's top-class probability.
    ``frames``: RGB uint8 frames for the parity check (default: generated street scenes).
    ``strict``: refuse an ONNX that TensorRT 10 would not parse (default: warn).
    Returns the parity report (also stored in the artifact's details). Raises ParityError, with the
    figures, when argmax agreement is below 99.9%; nothing is written then.
    """
    card = bundle.card
    key, filename = onnx_artifact(argmax_head)
    target = bundle.path / filename
    refuse_overwrite(bundle, key, target, force)
    source_key = keras_artifact(bundle)
    source_path = bundle.verified_artifact_path(source_key)
    source_kind = card.artifacts[source_key].output
    _check_heads(bundle, argmax_head, confidence)
    source = load_keras_model(source_path)
    check_model_matches_card(source, card, source_path)
    model = float32_model(source)
    precision = "fp16" if model is not source else "fp32"  # a mixed-precision source computes in fp16
    proto = convert(model, card, argmax_head=argmax_head, opset=opset, confidence=confidence,
                    source_kind=source_kind)
    findings = trt_compat.enforce(proto, target, strict=strict)
    frames, frame_source = parity.parity_frames(card, frames)
    batch = card.preprocess(frames)
    output_kind = "argmax" if argmax_head else source_kind
    import onnx  # onnx (the onnx extra): the converter's own dependency

    with atomic_path(target) as tmp:
        onnx.save(proto, str(tmp))
        report = parity.check_parity(keras_runner(source), source_kind, onnxruntime_runner(tmp), output_kind,
                                     batch, reference=f"keras:{source_path.name}",
                                     candidate=f"onnxruntime:{filename}", precision=precision,
                                     frame_source=frame_source)
        parity.require_parity(report, target)
        confidence_check = (check_confidence(keras_runner(source), source_kind,
                                             onnxruntime_runner(tmp, CONFIDENCE_NAME), batch, target)
                            if confidence else None)
        details = {"opset": opset, "source": card.artifacts[source_key].path, "sha256": sha256_file(tmp),
                   "bytes": tmp.stat().st_size, **io_details(proto), "versions": _versions(),
                   "parity": report.to_dict(), "tensorrt_check": [str(f) for f in findings]}
    if confidence_check:
        details["confidence_check"] = confidence_check
    bundle.add_artifact(key, Artifact(filename, "onnx", output_kind, details,
                                      confidence=CONFIDENCE_NAME if confidence else None))
    log.info("%s", report.summary())
    return report


def _check_heads(bundle: Bundle, argmax_head: bool, confidence: bool) -> None:
    """ExportError for a confidence output without the argmax head, or classes beyond uint8."""
    if confidence and not argmax_head:
        raise ExportError("--confidence adds a second output to the argmax head; add --argmax-head (the "
                          "scores model gives the confidence already)")
    if argmax_head and bundle.card.num_classes > 256:
        raise ExportError(f"{bundle.path}: {bundle.card.num_classes} classes do not fit the uint8 argmax head")


def _versions() -> dict[str, str]:
    versions = framework_versions("tf2onnx", "onnx", "tensorflow", "keras", "onnxruntime")
    return {k: v for k, v in versions.items() if k != "python"}

"""`cityseg export --fused-io`: write the fused-I/O ONNX (:mod:`cityseg.export.fused`) into a bundle.

The new artifact takes the camera's uint8 frames and returns the uint8 mask (and confidence) at
camera resolution. Before it is kept it must reproduce the unfused path - the card's CPU
preprocessing, the source ONNX in ONNX Runtime, argmax, INTER_NEAREST_EXACT upsampling - on street
frames at the camera size: >= 99.9 % of pixels the same class, else it is refused with the figures.
"""

from __future__ import annotations

import logging

import numpy as np

from cityseg.bundle import Artifact, Bundle, CameraInput, framework_versions
from cityseg.bundle import raw_output as model_outputs
from cityseg.errors import InputError
from cityseg.export import fused, parity
from cityseg.export import tensorrt_compat as trt_compat
from cityseg.export.errors import ExportError, ParityError
from cityseg.export.onnx import io_details, onnxruntime_runner, refuse_overwrite
from cityseg.fileio import atomic_path, sha256_file
from cityseg.preprocess import upsample_nearest

log = logging.getLogger(__name__)

CONFIDENCE_TOLERANCE = 2
"""Confidence values (of 255) within this of the unfused path's count as agreeing."""
CONFIDENCE_AGREEMENT = 0.999
"""Share of pixels whose confidence must agree (the resize inside the graph is not OpenCV's, so a
few pixels at class borders may differ by more)."""


def fused_artifact(camera: CameraInput) -> tuple[str, str]:
    """(card key, file name), e.g. ('onnx_fused_2048x1024', 'model_fused_2048x1024.onnx')."""
    suffix = f"{camera.width}x{camera.height}" + ("_bgr" if camera.channel_order == "BGR" else "")
    return f"onnx_fused_{suffix}", f"model_fused_{suffix}.onnx"


def parse_camera_size(text: str) -> tuple[int, int]:
    """'2048x1024' (width x height) -> (height, width)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--camera-size {text!r}: expected WIDTHxHEIGHT, e.g. 2048x1024") from None
    if width <= 0 or height <= 0:
        raise InputError(f"--camera-size {text!r}: width and height must be positive")
    if max(width, height) > MAX_CAMERA_SIDE:
        raise InputError(f"--camera-size {text!r}: each side must be at most {MAX_CAMERA_SIDE} pixels "
                         "(a camera frame, not a mosaic)")
    return height, width


MAX_CAMERA_SIDE = 8192
"""Largest --camera-size side: bigger frames are refused before any graph or frame is built."""


def exact_camera_sizes(network: tuple[int, int], camera: tuple[int, int], count: int = 3) -> list[str]:
    """The ``count`` WIDTHxHEIGHT sizes nearest ``camera`` (height, width) that are an integer multiple
    of the ``network`` input on each axis: the sizes an INTER_AREA card resizes exactly in the graph."""
    (net_h, net_w), (cam_h, cam_w) = network, camera
    heights = [k * net_h for k in range(max(1, cam_h // net_h - 1), cam_h // net_h + 3)]
    widths = [k * net_w for k in range(max(1, cam_w // net_w - 1), cam_w // net_w + 3)]
    ranked = sorted((abs(w - cam_w) / cam_w + abs(h - cam_h) / cam_h, w, h) for w in widths for h in heights)
    return [f"{w}x{h}" for _, w, h in ranked[:count]]


def resize_refusal(target, report: parity.ParityReport, plan, card, camera: CameraInput) -> str:
    """Why an approximate in-graph resize failed parity, and the camera sizes that would be exact."""
    network = (card.input_height, card.input_width)
    said = f"{camera.width}x{camera.height}"
    if card.resize == "area":
        factors = f"{camera.width / network[1]:g}x{camera.height / network[0]:g}"
        return (f"{target}: refused - --camera-size {said} resizes to the model's {network[1]}x{network[0]} "
                f"input by a non-integer factor ({factors}), which the fused graph can only approximate "
                f"({plan.note}): {report.summary()}. Nothing was written. Camera sizes this model resizes "
                f"exactly: {', '.join(exact_camera_sizes(network, camera.size))} (integer factors), or "
                "keep the CPU preprocessing (export without --fused-io)")
    return (f"{target}: refused - the card's resize {card.resize!r} is approximated in the fused graph "
            f"({plan.note}): {report.summary()}. Nothing was written. Keep the CPU preprocessing "
            "(export without --fused-io)")


def source_artifact(bundle: Bundle, confidence: bool, key: str | None = None) -> str:
    """The ONNX artifact to wrap: ``key``, else the scores model (``onnx``), else an argmax head
    (one with a confidence output when ``confidence``)."""
    candidates = {k: a for k, a in bundle.artifacts("onnx").items() if not a.fused}
    if key is not None:
        if key not in candidates:
            raise ExportError(f"{bundle.path}: no unfused ONNX artifact {key!r} to wrap; it has "
                              f"{', '.join(candidates) or 'none'}")
        return key
    ranked = sorted(candidates, key=lambda k: (candidates[k].output == "argmax",
                                               confidence and not candidates[k].confidence))
    if not ranked:
        raise ExportError(f"{bundle.path}: no ONNX model to wrap; run `cityseg export {bundle.path} --onnx` "
                          "first (or import one with `cityseg import`)")
    return ranked[0]


def camera_frames(bundle: Bundle, camera: CameraInput, frames: list[np.ndarray] | None) -> tuple[list, str]:
    """RGB parity frames at the camera size: ``frames`` resized (INTER_AREA) to it, or generated street
    scenes of that size (2 to 8 frames, about 2 Mpx)."""
    import cv2

    card = bundle.card
    if frames is not None:
        frames, source = parity.parity_frames(card, frames)
        return [f if f.shape[:2] == camera.size else cv2.resize(f, (camera.width, camera.height),
                                                                   interpolation=cv2.INTER_AREA)
                for f in frames], source
    count = int(np.clip(parity.PARITY_PIXELS // (camera.height * camera.width), 2,
                        parity.default_frame_count(card)))
    return parity.parity_frames(card, count=count, size=camera.size)


def fused_runner(path, output: str = fused.CLASSES_NAME, camera_order: str = "RGB"):
    """RGB uint8 frames (NxHxWx3) -> a fused ONNX's output, ONNX Runtime on the CPU."""
    run = onnxruntime_runner(path, output)
    return lambda frames: run(np.ascontiguousarray(frames[..., ::-1]) if camera_order == "BGR" else frames)


def check_confidence(bundle: Bundle, source_key: str, path, frames: list[np.ndarray], camera: CameraInput,
                     target) -> dict:
    """Fused confidence vs the unfused path's (top-class probability x 255, nearest-upsampled):
    share of pixels within CONFIDENCE_TOLERANCE; ParityError below CONFIDENCE_AGREEMENT."""
    card, artifact = bundle.card, bundle.card.artifacts[source_key]
    run = onnxruntime_runner(bundle.verified_artifact_path(source_key),
                             artifact.confidence if artifact.output == "argmax" else None)
    fused_run = fused_runner(path, fused.CONFIDENCE_NAME, camera.channel_order)
    within = total = worst = 0
    for frame in frames:
        raw = run(card.preprocess([frame]))
        if artifact.output == "argmax":
            size = (card.input_height, card.input_width)
            low = model_outputs.standardize_confidence(raw, artifact.output_layout, size)[0]
        else:
            canonical, kind = model_outputs.standardize(raw, artifact.output, artifact.output_layout,
                                                 (card.input_height, card.input_width))
            low = model_outputs.top_probability(canonical[0], kind)
        expected = upsample_nearest(low, *camera.size).astype(int)
        diff = np.abs(expected - fused_run(frame[None])[0].astype(int))
        within += int((diff <= CONFIDENCE_TOLERANCE).sum())
        total += diff.size
        worst = max(worst, int(diff.max()))
    share = within / total
    if share < CONFIDENCE_AGREEMENT:
        raise ParityError(f"{target}: refused - the fused confidence is within {CONFIDENCE_TOLERANCE}/255 of the "
                          f"unfused path's on {share:.4%} of pixels (at least {CONFIDENCE_AGREEMENT:.1%} required; "
                          f"worst {worst}/255). Nothing was written", report=None)
    return {"within_tolerance": share, "tolerance": CONFIDENCE_TOLERANCE, "max_abs_diff": worst}


def export_fused(bundle: Bundle, camera: CameraInput, *, confidence: bool = False, source: str | None = None,
                 force: bool = False, frames: list[np.ndarray] | None = None,
                 strict: bool = False) -> tuple[str, parity.ParityReport]:
    """Wrap the bundle's ONNX (``source``, default :func:`source_artifact`) into a fused-I/O graph for
    ``camera`` frames, check it against the unfused path, record it in the card; returns (key, report).

    ``frames``: RGB frames for the parity check (resized to the camera size; default generated
    street scenes). ParityError with the figures, and nothing written, below 99.9 % agreement."""
    import onnx

    key, filename = fused_artifact(camera)
    target = bundle.path / filename
    refuse_overwrite(bundle, key, target, force)
    if bundle.card.input_dtype != "float32" or bundle.card.fit != "stretch":
        raise ExportError(f"{bundle.path}: --fused-io builds float32-input, stretched graphs; this card has "
                          f"a {bundle.card.input_dtype} input and fit {bundle.card.fit} - run the bundle's "
                          "model.onnx as it is")
    if bundle.card.num_classes > 256:
        raise ExportError(f"{bundle.path}: {bundle.card.num_classes} classes do not fit the uint8 mask")
    source_key = source_artifact(bundle, confidence, source)
    artifact = bundle.card.artifacts[source_key]
    source_path = bundle.verified_artifact_path(source_key)
    shapes, batch = fused.probe_shapes(source_path, bundle.card)
    proto, plan = fused.build_fused(onnx.load(str(source_path)), bundle.card, artifact, camera,
                                    confidence=confidence, shapes=shapes, batch=batch)
    findings = trt_compat.enforce(proto, target, strict=strict)
    frames, frame_source = camera_frames(bundle, camera, frames)
    with atomic_path(target) as tmp:
        onnx.save(proto, str(tmp))
        report = parity.check_camera_parity(
            onnxruntime_runner(source_path), artifact, bundle.card,
            fused_runner(tmp, camera_order=camera.channel_order),
            frames, reference=f"onnxruntime:{source_path.name}+cpu-io", candidate=f"onnxruntime:{filename}",
            precision="fp32", frame_source=frame_source)
        if not report.passed and plan.fidelity != "exact":
            raise ParityError(resize_refusal(target, report, plan, bundle.card, camera), report)
        parity.require_parity(report, target)
        confidence_check = check_confidence(bundle, source_key, tmp, frames, camera, target) if confidence else None
        digest, size = sha256_file(tmp), tmp.stat().st_size
    details = {"opset": fused.default_opset(proto), "source": artifact.path, "source_artifact": source_key,
               "sha256": digest, "bytes": size, **io_details(proto),
               "resize": {"method": bundle.card.resize, "op": plan.op, "attributes": plan.attributes,
                          "fidelity": plan.fidelity, "note": plan.note},
               "versions": {k: v for k, v in framework_versions("onnx", "onnxruntime").items() if k != "python"},
               "parity": report.to_dict(), "tensorrt_check": [str(f) for f in findings]}
    if confidence_check:
        details["confidence_check"] = confidence_check
    bundle.add_artifact(key, Artifact(filename, "onnx", "argmax", details, "NHWC",
                                      confidence=fused.CONFIDENCE_NAME if confidence else None,
                                      io="fused", camera=camera))
    log.info("%s", report.summary())
    return key, report

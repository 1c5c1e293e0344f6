"""The harness of `cityseg bench`: per-stage latency of the whole frame path, against the study's approach.

For each model (a given bundle, or every registered model with random weights) at each network
size, and each backend that can run here, it times on a 2048x1024 camera frame:
decode (PNG), convert (sensor_msgs/Image -> array), preprocess, inference, postprocess (argmax +
id map + mask upsample), colour, overlay, and the end-to-end frame: the ROS node's FrameProcessor
from an rgb8 sensor_msgs/Image to the mask, colour and overlay messages.
The baseline, measured in the same run, is the original study's approach: Keras ``predict``
followed by a boolean-mask colouring loop over every label.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from cityseg.benchmarking.baseline import bench_study_baseline
from cityseg.benchmarking.fixtures import (
    FRAME_HEIGHT,
    FRAME_WIDTH,
    IMPORTED_NAME,
    camera_frame,
    make_imported_bundle,
    make_random_bundle,
)
from cityseg.benchmarking.precision_rows import RUNS_ON, make_variants
from cityseg.benchmarking.report import BenchRow
from cityseg.benchmarking.timing import median_ms
from cityseg.bundle import Bundle
from cityseg.bundle.directory import resolve_bundle
from cityseg.inference import Segmenter, postprocess
from cityseg.inference.backends import backend_class, pick_artifact, unavailable_reason
from cityseg.inference.backends.choice import CPU_BACKENDS
from cityseg.preprocess import upsample_nearest
from cityseg.ros.core.images import decode_message
from cityseg.ros.core.messages import RosbagsMessages
from cityseg.ros.core.processor import FrameProcessor


def _frame_processor(segmenter):
    """The ROS node's FrameProcessor on rosbags' message classes, or None without rosbags."""
    try:
        return FrameProcessor(segmenter, RosbagsMessages())
    except ImportError:  # rosbags (the bag extra) is not installed
        return None


def bench_bundle(bundle, backend: str, frame: np.ndarray, repeats: int, warmup: int,
                 alpha: float = 0.5, variant=None) -> BenchRow:
    """Time every stage of one bundle on one backend (its fp32 pick, or ``variant``'s artifact)."""
    artifact = variant.artifact if variant is not None else None
    segmenter = Segmenter(bundle, backend=backend, artifact=artifact)
    card = segmenter.bundle.card
    row = BenchRow(row_name(card), f"{card.input_height}x{card.input_width}", backend,
                   precision=variant.precision if variant else "fp32", gate=variant.gate if variant else "")
    processor = _frame_processor(segmenter)
    message = None
    if processor is not None:
        factory = processor.factory
        message = factory.image_from_array(factory.header(0, 0, "camera"), frame, "rgb8")
    encoded = cv2.imencode(".png", frame)[1]
    batch = segmenter.preprocess([frame])
    output = segmenter.backend.infer(batch)
    classes = segmenter.results(output, None, [frame.shape[:2]])[0].classes
    color_low = postprocess.colorize(classes, card.space.palette)
    color = upsample_nearest(color_low, FRAME_HEIGHT, FRAME_WIDTH)

    def convert():
        return decode_message(message)

    def whole_frame():
        if processor is not None:  # exactly what the node runs per frame
            return processor.process(message)
        result = segmenter.segment(frame, "RGB")
        return result.mask, result.color(), result.overlay(frame, alpha)

    stages = {
        "decode": lambda: cv2.imdecode(encoded, cv2.IMREAD_COLOR),
        "convert": convert if message is not None else None,
        "preprocess": lambda: segmenter.preprocess([frame]),
        "infer": lambda: segmenter.backend.infer(batch),
        "postprocess": lambda: upsample_nearest(  # incl. the upsampling of strided scores, fit, stitching
            segmenter.results(output, None, [frame.shape[:2]])[0].classes, FRAME_HEIGHT, FRAME_WIDTH),
        "colour": lambda: upsample_nearest(
            postprocess.colorize(classes, card.space.palette), FRAME_HEIGHT, FRAME_WIDTH),
        "overlay": lambda: postprocess.overlay(frame, color, alpha),
        "frame": whole_frame,
    }
    for name, fn in stages.items():
        if fn is not None:
            row.stages[name] = median_ms(fn, repeats, warmup)
    return row


def row_name(card) -> str:
    """The model column: the architecture, or '<name> (imported)' for a model cityseg did not train."""
    return f"{card.name} (imported)" if card.imported else card.architecture


def _keras_missing() -> str | None:
    """Why the Keras model cannot be loaded here (None when TensorFlow/Keras are installed)."""
    return backend_class("tensorflow").unavailable_reason()


def load_keras(bundle):
    """The bundle's Keras model, or None when it has none or TensorFlow is missing."""
    if "keras" not in bundle.card.artifacts or _keras_missing():
        return None
    # lazy: cityseg.models imports Keras (TensorFlow), needed only where a Keras model is built
    import keras

    import cityseg.models  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(bundle.verified_artifact_path("keras"), compile=False)


def model_facts(bundle, model) -> tuple[int | None, float | None, float | None]:
    """(params, GFLOPs per frame at the card's size, Keras file MB); Nones without a Keras model."""
    if model is None:
        return None, None, None
    # lazy: cityseg.models imports Keras (TensorFlow), needed only where a Keras model is built
    from cityseg.models.profile import count_params, gflops

    card = bundle.card
    return (count_params(model), gflops(model, card.input_height, card.input_width),
            bundle.artifact_path("keras").stat().st_size / 2**20)


def available_backends(bundle, wanted: list[str], name: str) -> list[str]:
    """The backends of ``wanted`` that can run ``bundle`` (called ``name``) on this machine; each
    other one is said with its reason, never silently left out."""
    usable = []
    for backend in wanted:
        why = unavailable_reason(bundle, backend)
        if why:
            print(f"not timing {name} on {backend}: {why}", flush=True)
        else:
            usable.append(backend)
    return usable


def _time_bundle(path: Path, backends: list[str], frame: np.ndarray, repeats: int, warmup: int,
                 baseline: bool, precisions: tuple[str, ...] = ("fp32",),
                 calib_method: str = "minmax") -> tuple[list[BenchRow], float | None]:
    """Rows for every usable backend (and precision variant, int8 calibrated with ``calib_method``)
    of one bundle, and the study baseline (None if skipped)."""
    bundle = Bundle.load(path)
    model = load_keras(bundle)
    params, flops, size_mb = model_facts(bundle, model)
    rows = []
    usable = available_backends(bundle, backends, path.name)
    variants = make_variants(bundle, list(precisions), calib_method) if "onnx" in bundle.card.artifacts else []
    variants = variants or [None]
    for variant in variants:
        for backend in [b for b in usable if variant is None or b in RUNS_ON[variant.precision]]:
            label = f"{backend} {variant.precision}" if variant else backend
            print(f"timing {path.name} on {label} ...", flush=True)
            if variant is not None and variant.artifact is None and backend in CPU_BACKENDS:
                variant = replace(variant, artifact=pick_fp32(bundle))  # not the measured choice: fp32 itself
            row = bench_bundle(bundle, backend, frame, repeats, warmup, variant=variant)
            if variant is not None and variant.precision == "fp32":
                variant = replace(variant, artifact=None)
            row.params, row.gflops, row.file_mb = params, flops, size_mb
            rows.append(row)
    base = None
    if baseline and rows and model is None:
        why = _keras_missing() or "the bundle has no Keras model"
        print(f"no study baseline for {path.name}: {why}", flush=True)
    elif baseline and rows:
        print(f"timing the study's approach on {path.name} ...", flush=True)
        base = bench_study_baseline(bundle, model, frame, max(3, repeats // 3), 1)
    return rows, base


def pick_fp32(bundle) -> str | None:
    """The fp32 ONNX artifact a CPU backend runs by default (the measured choice left out)."""
    return pick_artifact(bundle, "onnx")


def _release_keras() -> None:
    """Drop Keras/TensorFlow state between models so memory does not pile up over the run."""
    import gc

    try:
        import keras

        keras.backend.clear_session()
    except ImportError:
        pass
    gc.collect()


def run_bench(bundles: list[Path], models: list[str], sizes: list[tuple[int, int]],
              backends: list[str], repeats: int, warmup: int, baseline: bool = True,
              imported: bool = False, precisions: tuple[str, ...] = ("fp32",),
              calib_method: str = "minmax") -> tuple[list[BenchRow], dict]:
    """Benchmark given bundles, or registered models at ``sizes``; returns rows and baselines.
    ``imported``: also an imported-style ONNX (:func:`make_imported_bundle`) at each size.
    ``precisions``: also time these variants (:mod:`cityseg.benchmarking.precision_rows`; int8
    calibrated with ``calib_method``).

    Registered models are built (random weights), timed and deleted one at a time.
    """
    frame = camera_frame()
    rows, baselines = [], {}
    jobs = [(path, None) for path in bundles] + [(None, (name, h, w)) for name in models for h, w in sizes]
    jobs += [(None, (None, h, w)) for h, w in sizes] if imported else []  # None: the imported stand-in
    for path, spec in jobs:
        workdir = Path(tempfile.mkdtemp(prefix="cityseg-bench-"))
        try:
            if spec is not None and spec[0] is None:
                print(f"importing {IMPORTED_NAME} at {spec[1]}x{spec[2]} (random weights) ...", flush=True)
                path = make_imported_bundle(workdir, *spec[1:])
            elif spec is not None:
                print(f"building {spec[0]} at {spec[1]}x{spec[2]} (random weights) ...", flush=True)
                path = make_random_bundle(workdir, *spec)
            elif set(precisions) != {"fp32"}:  # the variants are made in a copy: the user's bundle stays as it is
                path = Path(shutil.copytree(resolve_bundle(path), workdir / Path(path).name))
            new_rows, base = _time_bundle(path, backends, frame, repeats, warmup, baseline, precisions,
                                          calib_method)
            rows += new_rows
            if base is not None:
                baselines[(new_rows[0].model, new_rows[0].size)] = base
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            _release_keras()
    return rows, baselines

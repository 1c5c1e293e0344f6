"""`cityseg bench`: per-stage latency of the whole frame path, against the study's approach.

For each model (a given bundle, or every registered model with random weights) at each network
size, and each backend that can run here, it times on a 2048x1024 camera frame:
decode (PNG), convert (sensor_msgs/Image -> array), preprocess, inference, postprocess (argmax +
id map + mask upsample), colour, overlay, and the end-to-end frame: the ROS node's FrameProcessor
from an rgb8 sensor_msgs/Image to the mask, colour and overlay messages.
The baseline, measured in the same run, is the original study's approach: Keras ``predict``
followed by a boolean-mask colouring loop over every label.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from cityseg.fileio import write_bytes_atomic
from cityseg.inference import postprocess
from cityseg.timing import median_ms

FRAME_HEIGHT, FRAME_WIDTH = 1024, 2048


def study_postprocess(scores: np.ndarray, frame: np.ndarray, palette: np.ndarray, alpha: float):
    """The original study's postprocess: argmax, then colour with a loop over every label."""
    classes = np.argmax(scores, axis=-1).astype(np.uint8)
    height, width = frame.shape[:2]
    mask = cv2.resize(classes, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    color = np.zeros((height, width, 3), np.uint8)
    for label_id in range(scores.shape[-1]):
        color[mask == label_id] = palette[label_id]
    blended = frame.astype(np.float32) * (1 - alpha) + color.astype(np.float32) * alpha
    return mask, color, np.clip(blended + 0.5, 0, 255).astype(np.uint8)


@dataclass
class BenchRow:
    model: str
    size: str
    backend: str
    stages: dict[str, float] = field(default_factory=dict)
    params: int | None = None
    gflops: float | None = None
    file_mb: float | None = None

    @property
    def frame_ms(self) -> float:
        return self.stages["frame"]


def _camera_frame() -> np.ndarray:
    try:
        from cityseg.synthetic.dataset import render_scene

        return render_scene(np.random.default_rng(0), FRAME_HEIGHT, FRAME_WIDTH)[0]
    except ImportError:  # synth is optional for benchmarking a user's bundle
        return np.random.default_rng(0).integers(0, 256, (FRAME_HEIGHT, FRAME_WIDTH, 3), np.uint8)


def _frame_processor(segmenter):
    """The ROS node's FrameProcessor on rosbags' message classes, or None without rosbags."""
    try:
        from cityseg.ros.messages import RosbagsMessages
        from cityseg.ros.processor import FrameProcessor
    except ImportError:
        return None
    return FrameProcessor(segmenter, RosbagsMessages())


def bench_bundle(bundle, backend: str, frame: np.ndarray, repeats: int, warmup: int,
                 alpha: float = 0.5) -> BenchRow:
    """Time every stage of one bundle on one backend."""
    from cityseg.inference import Segmenter

    segmenter = Segmenter(bundle, backend=backend)
    card = segmenter.bundle.card
    row = BenchRow(row_name(card), f"{card.input_height}x{card.input_width}", backend)
    processor = _frame_processor(segmenter)
    message = None
    if processor is not None:
        factory = processor.factory
        message = factory.image_from_array(factory.header(0, 0, "camera"), frame, "rgb8")
    encoded = cv2.imencode(".png", frame)[1]
    batch = segmenter.preprocess([frame])
    output = segmenter.backend.infer(batch)
    classes = segmenter.to_ids(*segmenter.standardize(output))[0]
    color_low = postprocess.colorize(classes, card.space.palette)
    color = postprocess.upsample_nearest(color_low, FRAME_HEIGHT, FRAME_WIDTH)

    def convert():
        from cityseg.ros.images import decode_message

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
        "postprocess": lambda: postprocess.upsample_nearest(  # incl. the upsampling of strided scores
            segmenter.to_ids(*segmenter.standardize(output))[0], FRAME_HEIGHT, FRAME_WIDTH),
        "colour": lambda: postprocess.upsample_nearest(
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


def bench_study_baseline(bundle, model, frame: np.ndarray, repeats: int, warmup: int,
                         alpha: float = 0.5) -> float:
    """End-to-end ms of the study's approach: preprocess, Keras predict, per-label colouring loop."""
    from cityseg.preprocess import normalize, resize_image

    card = bundle.card

    def study_frame():
        small = resize_image(frame, card.input_height, card.input_width, card.resize)
        scores = model.predict(normalize(small[None], card.normalization), verbose=0)[0]
        return study_postprocess(scores, frame, card.space.palette, alpha)

    return median_ms(study_frame, repeats, warmup)


def make_random_bundle(root: Path, model_name: str, height: int, width: int) -> Path:
    """A bundle of a registered model with random weights (for latency only): Keras, ONNX and the
    argmax-head ONNX (which ONNX Runtime then runs, as the Segmenter prefers it)."""
    from cityseg.bundle import Artifact, Bundle, framework_versions
    from cityseg.export.onnx import export_onnx

    path = root / f"{model_name}_{height}x{width}"
    model, card = random_model(model_name, height, width, resize="area",
                               frameworks=framework_versions("tensorflow", "keras"))
    bundle = Bundle.create(path, card)
    model.save(path / "model.keras")
    bundle.add_artifact("keras", Artifact("model.keras", "keras", "probabilities"))
    export_onnx(bundle)
    export_onnx(bundle, argmax_head=True)  # what a vehicle runs: argmax in the graph, uint8 out
    return path


def random_model(model_name: str, height: int, width: int, **card_fields):
    """(Keras model with random weights, its trainId model card) of a registered architecture at
    ``height`` x ``width``; ``card_fields`` override card defaults (name: '<model>-random')."""
    from cityseg.bundle import ModelCard
    from cityseg.labels import class_space
    from cityseg.models import build_model

    space = class_space("trainid")
    model = build_model(model_name, (height, width, 3), space.num_classes)
    card_fields.setdefault("name", f"{model_name}-random")
    card = ModelCard(architecture=model_name, input_height=height, input_width=width,
                     class_space="trainid", class_names=space.names, **card_fields)
    return model, card


IMPORTED_NAME = "stride8_nchw"
"""The generated stand-in for an imported real-time model (PIDNet/DDRNet/STDC-style output)."""


def write_imported_style_onnx(path: Path, height: int, width: int, classes: int = 19, seed: int = 0) -> Path:
    """An ONNX as PyTorch exports real-time models: NCHW float input of batch 1, three stride-2
    3x3 conv + ReLU stages (32, 64, 128 channels) and a 1x1 classifier, logits at 1/8 of the input.
    Random weights: for latency only."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits, previous, channels = [], [], "input", 3
    for i, width_out in enumerate((32, 64, 128)):
        weight = rng.normal(0, (2.0 / (9 * channels)) ** 0.5, (width_out, channels, 3, 3)).astype(np.float32)
        inits += [numpy_helper.from_array(weight, f"w{i}"),
                  numpy_helper.from_array(np.zeros(width_out, np.float32), f"b{i}")]
        nodes += [helper.make_node("Conv", [previous, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[3, 3],
                                   strides=[2, 2], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        previous, channels = f"r{i}", width_out
    head = rng.normal(0, 0.1, (classes, channels, 1, 1)).astype(np.float32)
    inits += [numpy_helper.from_array(head, "head"),
              numpy_helper.from_array(np.zeros(classes, np.float32), "head_b")]
    nodes.append(helper.make_node("Conv", [previous, "head", "head_b"], ["logits"], kernel_shape=[1, 1]))
    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, height, width])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes, height // 8, width // 8])
    graph = helper.make_graph(nodes, IMPORTED_NAME, [image], [logits], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def make_imported_bundle(root: Path, height: int, width: int) -> Path:
    """:func:`write_imported_style_onnx` bundled by ``cityseg import`` (mmsegmentation's preprocessing)."""
    from cityseg.bundle.importer import ImportOptions, import_onnx
    from cityseg.labels import class_space

    onnx_path = write_imported_style_onnx(root / f"{IMPORTED_NAME}.onnx", height, width)
    options = ImportOptions(channel_order="rgb", scale=1.0, mean=(123.675, 116.28, 103.53),
                            std=(58.395, 57.12, 57.375), resize="bilinear")
    path = root / f"{IMPORTED_NAME}_{height}x{width}"
    import_onnx(onnx_path, path, class_space("trainid"), options, name=IMPORTED_NAME)
    return path


def _keras_missing() -> str | None:
    """Why the Keras model cannot be loaded here (None when TensorFlow/Keras are installed)."""
    from cityseg.inference.backends import backend_class

    return backend_class("tensorflow").unavailable_reason()


def load_keras(bundle):
    """The bundle's Keras model, or None when it has none or TensorFlow is missing."""
    if "keras" not in bundle.card.artifacts or _keras_missing():
        return None
    import keras

    import cityseg.models  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(bundle.artifact_path("keras"), compile=False)


def model_facts(bundle, model) -> tuple[int | None, float | None, float | None]:
    """(params, GFLOPs per frame at the card's size, Keras file MB); Nones without a Keras model."""
    if model is None:
        return None, None, None
    from cityseg.models.profile import count_params, gflops

    card = bundle.card
    return (count_params(model), gflops(model, card.input_height, card.input_width),
            bundle.artifact_path("keras").stat().st_size / 2**20)


def available_backends(bundle, wanted: list[str]) -> list[str]:
    """The backends of ``wanted`` that can run ``bundle`` on this machine."""
    from cityseg.inference.backends import unavailable_reason

    return [name for name in wanted if unavailable_reason(bundle, name) is None]


def format_table(rows: list[BenchRow], baselines: dict[tuple[str, str], float]) -> str:
    """Markdown table: one row per model x size x backend, ratios against the study baseline."""
    stage_names = ["decode", "convert", "preprocess", "infer", "postprocess", "colour", "overlay", "frame"]
    head = (["model", "size", "backend"] + [f"{s} ms" for s in stage_names]
            + ["overhead", "study ms", "speedup", "params", "GFLOPs", "MB"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        base = baselines.get((row.model, row.size))
        overhead = row.frame_ms / row.stages["infer"] - 1
        cells = [row.model, row.size, row.backend]
        cells += [f"{row.stages[s]:.1f}" if s in row.stages else "–" for s in stage_names]
        cells += [f"{overhead:+.0%}", f"{base:.0f}" if base else "–",
                  f"{base / row.frame_ms:.1f}×" if base else "–",
                  f"{row.params / 1e6:.2f}M" if row.params else "–",
                  f"{row.gflops:.1f}" if row.gflops else "–",
                  f"{row.file_mb:.1f}" if row.file_mb else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (platform.processor() is often empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """'<CPU model>, N cores usable, Linux, Python 3.x' for the figures' captions."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu_name()}, {cores} CPU cores usable, {platform.system()}, Python {platform.python_version()}"


def _time_bundle(path: Path, backends: list[str], frame: np.ndarray, repeats: int, warmup: int,
                 baseline: bool) -> tuple[list[BenchRow], float | None]:
    """Rows for every usable backend of one bundle, and the study baseline (None if skipped)."""
    from cityseg.bundle import Bundle

    bundle = Bundle.load(path)
    model = load_keras(bundle)
    params, flops, size_mb = model_facts(bundle, model)
    rows = []
    for backend in available_backends(bundle, backends):
        print(f"timing {path.name} on {backend} ...", flush=True)
        row = bench_bundle(bundle, backend, frame, repeats, warmup)
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
              imported: bool = False) -> tuple[list[BenchRow], dict]:
    """Benchmark given bundles, or registered models at ``sizes``; returns rows and baselines.
    ``imported``: also an imported-style ONNX (:func:`make_imported_bundle`) at each size.

    Registered models are built (random weights), timed and deleted one at a time.
    """
    frame = _camera_frame()
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
            new_rows, base = _time_bundle(path, backends, frame, repeats, warmup, baseline)
            rows += new_rows
            if base is not None:
                baselines[(new_rows[0].model, new_rows[0].size)] = base
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            _release_keras()
    return rows, baselines


def headline_row(rows: list[BenchRow], model: str | None = None) -> BenchRow:
    """The row the RESULT line reports: ``model`` (default: the first row's model) at its largest
    benchmarked size, on its fastest backend - the deployment the table is about."""
    model = model or rows[0].model
    candidates = [r for r in rows if r.model == model] or rows
    pixels = lambda r: int(np.prod([int(v) for v in r.size.split("x")]))  # noqa: E731
    largest = max(pixels(r) for r in candidates)
    return min((r for r in candidates if pixels(r) == largest), key=lambda r: r.frame_ms)


def result_line(rows: list[BenchRow], baselines: dict, model: str | None = None) -> str:
    """`RESULT frame_ms=... infer_ms=... overhead=... baseline_ms=... speedup=...` (headline row)."""
    best = headline_row(rows, model)
    base = baselines.get((best.model, best.size), float("nan"))
    overhead = best.frame_ms / best.stages["infer"] - 1
    return (f"RESULT frame_ms={best.frame_ms:.2f} infer_ms={best.stages['infer']:.2f} "
            f"overhead={overhead:.3f} baseline_ms={base:.2f} speedup={base / best.frame_ms:.2f}")


def update_doc(doc: Path, table: str, header: str, marker: str = "bench") -> None:
    """Replace the text between ``<!-- {marker}:start -->`` and ``<!-- {marker}:end -->`` in ``doc``."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = doc.read_text() if doc.exists() else ""
    if start not in text or end not in text:
        text += f"\n{start}\n{end}\n"
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    write_bytes_atomic(doc, f"{before}{start}\n{header}\n\n{table}\n{end}{after}".encode())

"""`cityseg demo`: the whole product on generated data, on a CPU, in a few minutes.

synthetic Cityscapes-layout dataset -> train the default model briefly -> model bundle ->
ONNX exports with parity checks (the scores model and the argmax head a vehicle runs) ->
synthetic camera rosbag2 -> `cityseg bag` replay (on the argmax head) ->
overlay strip, history plot, val mIoU table and report.md in one output directory.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cityseg.errors import CitysegError
from cityseg.fileio import is_own_output, output_marker, write_bytes_atomic, write_json_atomic, write_output_marker


@dataclass
class DemoSettings:
    """Sizes of the demo run (the slow test shrinks them)."""

    train_images: int = 160
    val_images: int = 40
    image_size: tuple[int, int] = (512, 256)
    """(width, height) of the generated source images."""
    epochs: int | None = None
    """None: as training_configs/demo.yaml says."""
    bag_frames: int = 40
    bag_size: tuple[int, int] = (1024, 512)
    strip_frames: int = 4
    seed: int = 0
    config_overrides: dict = field(default_factory=dict)


@dataclass
class DemoOutputs:
    """Where each product of the demo landed."""

    root: Path
    data: Path
    run: Path
    bundle: Path
    camera_bag: Path
    segmented_bag: Path
    strip: Path
    history: Path
    miou_table: Path
    report: Path


def _outputs(root: Path) -> DemoOutputs:
    return DemoOutputs(root=root, data=root / "data", run=root / "run", bundle=root / "bundle",
                       camera_bag=root / "camera_bag", segmented_bag=root / "segmented_bag",
                       strip=root / "overlay_strip.png", history=root / "history.png",
                       miou_table=root / "val_miou.md", report=root / "report.md")


def _step(number: int, text: str) -> float:
    print(f"[{number}/7] {text}", flush=True)
    return time.perf_counter()


def run_demo(out: Path, settings: DemoSettings | None = None, *, force: bool = False) -> DemoOutputs:
    """Run every stage of the demo into ``out`` and return where each product is."""
    from cityseg.evaluation.run import evaluate_bundle, format_table
    from cityseg.export.onnx import export_onnx
    from cityseg.ros.bag.camera_bag import write_camera_bag
    from cityseg.ros.bag.replay import replay_bag
    from cityseg.synthetic import dataset as synth
    from cityseg.training.config import load_train_config, shipped_config
    from cityseg.training.train import train

    settings = settings or DemoSettings()
    paths = _outputs(Path(out))
    _prepare_output_dir(paths, force)
    timings = {}

    t = _step(1, f"generating {settings.train_images}+{settings.val_images} synthetic street scenes")
    synth.write_dataset(paths.data, count=settings.train_images + settings.val_images,
                        size=settings.image_size, seed=settings.seed,
                        splits={"train": settings.train_images, "val": settings.val_images})
    timings["synthesize"] = time.perf_counter() - t

    t = _step(2, "training the default model on CPU")
    overrides = {"data__root": str(paths.data), "data__cache_dir": str(paths.root / "cache"),
                 **settings.config_overrides}
    if settings.epochs is not None:
        overrides["epochs"] = settings.epochs
    cfg = load_train_config(shipped_config("demo.yaml"), **overrides)
    bundle = train(cfg, paths.run, progress=True)
    shutil.copytree(bundle.path, paths.bundle)
    shutil.copyfile(paths.run / "history.png", paths.history)
    timings["train"] = time.perf_counter() - t

    t = _step(3, "exporting ONNX (scores model and argmax head) with parity checks")
    from cityseg.bundle import Bundle

    parity = export_onnx(Bundle.load(paths.bundle))
    # the argmax head is what a vehicle runs (uint8 class map out); the replay, strip and evaluation
    # pick it as the Segmenter's automatic choice, so the demo measures that
    parity_argmax = export_onnx(Bundle.load(paths.bundle), argmax_head=True)
    timings["export"] = time.perf_counter() - t

    t = _step(4, f"writing a synthetic camera rosbag2 ({settings.bag_frames} frames)")
    width, height = settings.bag_size
    frames = [rgb for rgb, _ in synth.drive_frames(settings.bag_frames, height, width, seed=settings.seed)]
    write_camera_bag(paths.camera_bag, frames)
    timings["write_bag"] = time.perf_counter() - t

    t = _step(5, "replaying it through `cityseg bag`")
    summary = replay_bag(paths.camera_bag, paths.segmented_bag, paths.bundle)
    timings["replay"] = time.perf_counter() - t

    t = _step(6, "evaluating val mIoU and drawing the overlay strip")
    result = evaluate_bundle(paths.bundle, paths.data, "val")
    write_bytes_atomic(paths.miou_table, ("# Validation mIoU (synthetic val split)\n\n```\n"
                                          + format_table(result) + "\n```\n").encode())
    write_json_atomic(paths.root / "val_miou.json", result.to_json())
    write_overlay_strip(paths.strip, paths.bundle, frames, settings.strip_frames)
    timings["evaluate"] = time.perf_counter() - t

    _step(7, "writing report.md")
    write_report(paths, result, [parity, parity_argmax], summary, timings)
    return paths


MARKER = output_marker("demo")
"""Written first into a demo output directory: --force only ever clears a directory holding it."""


def _products(paths: DemoOutputs) -> list[Path]:
    """Everything a demo run writes into its output directory."""
    return [paths.data, paths.run, paths.bundle, paths.camera_bag, paths.segmented_bag, paths.strip,
            paths.history, paths.miou_table, paths.report, paths.root / "val_miou.json",
            paths.root / "cache", paths.root / MARKER]


def _prepare_output_dir(paths: DemoOutputs, force: bool) -> None:
    """Refuse a non-empty directory; with ``force``, remove an earlier demo's products only."""
    root = paths.root
    if root.exists() and any(root.iterdir()):
        if not force:
            raise CitysegError(f"{root}: the demo output directory is not empty; pass --force to "
                               "replace an earlier demo's output there, or choose another --out")
        if not is_own_output(root.resolve(), "demo"):
            raise CitysegError(f"{root}: not an earlier `cityseg demo` output ({MARKER} is missing); "
                               "--force only replaces demo output - choose an empty --out")
        for product in _products(paths):
            if product.is_dir() and not product.is_symlink():
                shutil.rmtree(product)
            elif product.exists() or product.is_symlink():
                product.unlink()  # a link: remove the link, never its target
    root.mkdir(parents=True, exist_ok=True)
    write_output_marker(root, "demo")


def write_overlay_strip(path: Path, bundle: Path, frames: list[np.ndarray], count: int) -> None:
    """A PNG with one row per sampled frame: frame | colour mask | overlay."""
    import cv2

    from cityseg.fileio import write_png
    from cityseg.inference import Segmenter

    segmenter = Segmenter(bundle)
    picks = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).astype(int)
    rows = []
    for index in picks:
        frame = frames[index]
        result = segmenter.segment(frame)
        row = np.hstack([frame, result.color(), result.overlay(frame, 0.5)])
        scale = 1536 / row.shape[1]
        rows.append(cv2.resize(row, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    write_png(path, cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))


def write_report(paths: DemoOutputs, result, parity, summary, timings: dict[str, float]) -> None:
    """report.md: what the demo made, where it is, and what to run next (``parity``: the export
    reports, scores model first, then the argmax head)."""
    from cityseg.bundle import Bundle
    from cityseg.inference.backends import open_backend

    reports = parity if isinstance(parity, (list, tuple)) else [parity]
    backend = open_backend(Bundle.load(paths.bundle))
    runs = backend.describe()
    backend.close()
    rel = lambda p: Path(p).relative_to(paths.root).as_posix()  # noqa: E731
    lines = [
        "# cityseg demo report", "",
        f"Synthetic data: `{rel(paths.data)}/` (Cityscapes layout).  ",
        f"Training run: `{rel(paths.run)}/` (checkpoints, history.csv, previews, TensorBoard).", "",
        "| product | path |", "|---|---|",
        f"| model bundle (Keras, ONNX scores model, ONNX argmax head) | `{rel(paths.bundle)}/` |",
        f"| training history plot | `{rel(paths.history)}` |",
        f"| val mIoU table | `{rel(paths.miou_table)}` |",
        f"| overlay strip (frame, colour mask, overlay) | `{rel(paths.strip)}` |",
        f"| synthetic camera rosbag2 | `{rel(paths.camera_bag)}/` |",
        f"| segmented rosbag2 | `{rel(paths.segmented_bag)}/` |", "",
        f"**val mIoU: {result.miou:.3f}**, pixel accuracy {result.pixel_accuracy:.3f}.", "",
        *[f"ONNX parity: {r}  " for r in reports], "",
        f"Bag replay (runs {runs}, what the node picks for this bundle): {summary}", "",
        "Stage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), "",
        "## Next", "",
        "```bash",
        "cityseg train --config training_configs/recommended.yaml --data-root /data/cityscapes --out runs/rec",
        f"cityseg segment --model {paths.bundle} your_image.png --out segmented/",
        f"cityseg export {paths.bundle} --tensorrt --precision fp16   # on the vehicle's GPU",
        f"ros2 launch cityseg segmentation.launch.py model:={paths.bundle.resolve()} image:=/camera/image_raw",
        "```", "",
    ]
    write_bytes_atomic(paths.report, "\n".join(lines).encode())

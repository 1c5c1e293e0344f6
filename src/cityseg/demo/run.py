"""`cityseg demo`'s stages: the whole product on generated data, on a CPU, in a few minutes.

synthetic Cityscapes-layout dataset -> train the default model briefly -> model bundle ->
ONNX exports with parity checks (the scores model and the argmax head a vehicle runs) ->
synthetic camera rosbag2 -> `cityseg bag` replay (on the argmax head) ->
overlay strip, history plot, val mIoU table and report.md (:mod:`cityseg.demo.report`) in one
output directory.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cityseg.bundle import Bundle
from cityseg.demo.report import write_overlay_strip, write_report
from cityseg.errors import CitysegError
from cityseg.evaluation.run import evaluate_bundle, format_table
from cityseg.export.onnx import export_onnx
from cityseg.fileio import is_own_output, output_marker, write_bytes_atomic, write_json_atomic, write_output_marker
from cityseg.ros.bag.camera_bag import write_camera_bag
from cityseg.ros.bag.replay import replay_bag
from cityseg.synthetic import dataset as synth
from cityseg.training.config import load_train_config, shipped_config
from cityseg.training.train import train


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
    settings = settings or DemoSettings()
    paths = _outputs(Path(out))
    _prepare_output_dir(paths, force)
    timings: dict[str, float] = {}

    def stage(number: int, key: str, text: str, work):
        start = _step(number, text)
        result = work()
        timings[key] = time.perf_counter() - start
        return result

    stage(1, "synthesize", f"generating {settings.train_images}+{settings.val_images} synthetic street scenes",
          lambda: _synthesize(paths, settings))
    stage(2, "train", "training the default model on CPU", lambda: _train(paths, settings))
    parity = stage(3, "export", "exporting ONNX (scores model and argmax head) with parity checks",
                   lambda: _export(paths))
    frames = stage(4, "write_bag", f"writing a synthetic camera rosbag2 ({settings.bag_frames} frames)",
                   lambda: _write_bag(paths, settings))
    summary = stage(5, "replay", "replaying it through `cityseg bag`",
                    lambda: replay_bag(paths.camera_bag, paths.segmented_bag, paths.bundle))
    result = stage(6, "evaluate", "evaluating val mIoU and drawing the overlay strip",
                   lambda: _evaluate(paths, frames, settings))
    _step(7, "writing report.md")
    write_report(paths, result, parity, summary, timings)
    return paths


def _synthesize(paths: DemoOutputs, settings: DemoSettings) -> None:
    synth.write_dataset(paths.data, count=settings.train_images + settings.val_images,
                        size=settings.image_size, seed=settings.seed,
                        splits={"train": settings.train_images, "val": settings.val_images})


def _train(paths: DemoOutputs, settings: DemoSettings) -> None:
    """Train the default model (training_configs/demo.yaml) into run/, copy its bundle and plot."""
    overrides = {"data__root": str(paths.data), "data__cache_dir": str(paths.root / "cache"),
                 **settings.config_overrides}
    if settings.epochs is not None:
        overrides["epochs"] = settings.epochs
    bundle = train(load_train_config(shipped_config("demo.yaml"), **overrides), paths.run, progress=True)
    shutil.copytree(bundle.path, paths.bundle)
    shutil.copyfile(paths.run / "history.png", paths.history)


def _export(paths: DemoOutputs) -> list:
    """The scores model and the argmax head, with their parity reports. The argmax head is what a
    vehicle runs (uint8 class map out); the replay, strip and evaluation pick it as the Segmenter's
    automatic choice, so the demo measures that."""
    return [export_onnx(Bundle.load(paths.bundle)), export_onnx(Bundle.load(paths.bundle), argmax_head=True)]


def _write_bag(paths: DemoOutputs, settings: DemoSettings) -> list[np.ndarray]:
    width, height = settings.bag_size
    frames = [rgb for rgb, _ in synth.drive_frames(settings.bag_frames, height, width, seed=settings.seed)]
    write_camera_bag(paths.camera_bag, frames)
    return frames


def _evaluate(paths: DemoOutputs, frames: list[np.ndarray], settings: DemoSettings):
    result = evaluate_bundle(paths.bundle, paths.data, "val")
    write_bytes_atomic(paths.miou_table, ("# Validation mIoU (synthetic val split)\n\n```\n"
                                          + format_table(result) + "\n```\n").encode())
    write_json_atomic(paths.root / "val_miou.json", result.to_json())
    write_overlay_strip(paths.strip, paths.bundle, frames, settings.strip_frames)
    return result


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

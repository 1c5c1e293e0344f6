"""The demo's report: report.md (what it made, where it is, what to run next) and the overlay strip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from cityseg.bundle import Bundle
from cityseg.fileio import write_bytes_atomic, write_png
from cityseg.inference import Segmenter
from cityseg.inference.backends import open_backend


def write_overlay_strip(path: Path, bundle: Path, frames: list[np.ndarray], count: int) -> None:
    """A PNG with one row per sampled frame: frame | colour mask | overlay."""
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


def write_report(paths, result, parity, summary, timings: dict[str, float]) -> None:
    """report.md: what the demo made (``paths``: its DemoOutputs), where it is, and what to run next
    (``parity``: the export reports, scores model first, then the argmax head)."""
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

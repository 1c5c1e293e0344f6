"""Bytes per frame of the node's raw and compressed outputs, and the encode time, at 2048x1024.

Frames: a short synthetic drive (cityseg.synthetic: rendered Cityscapes-like streets with sensor
noise), 2048x1024. The mask is the scene's ground-truth labelId map (a trained model's mask has
more ragged edges, so its PNG is somewhat larger), the colour mask its Cityscapes palette, the
overlay that colour blended over the frame at alpha 0.5: what the node publishes for a model that
gets the scene right. Each output is measured as the serialized message the node publishes
(cityseg.ros.core.cdr: a sensor_msgs/Image, or a CompressedImage from the very encoder the node runs,
cityseg.ros.core.images.encode_compressed). Confidence is not measured (it needs a scores model).

The last line is JSON: {"<output>": {"raw_bytes", "compressed_bytes", "ratio", "encode_ms"}, ...}.
``--update-doc docs/ROS.md`` writes the table between the ``compressed`` markers there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from cityseg.benchmarking.report import machine_description, update_doc
from cityseg.benchmarking.timing import median_ms
from cityseg.inference import postprocess
from cityseg.labels import class_space
from cityseg.ros.core.cdr import ImageBuffer, compressed_image_bytes
from cityseg.ros.core.images import encode_compressed
from cityseg.ros.core.outputs import BY_SUFFIX, COLOR_MASK, MASK, OVERLAY, compressed_of
from cityseg.synthetic.dataset import drive_frames

HEIGHT, WIDTH = 1024, 2048


def outputs_of(rgb: np.ndarray, labels: np.ndarray, alpha: float) -> dict[str, tuple[np.ndarray, str]]:
    """Raw output -> (pixels, encoding) as the node publishes them for an rgb8 camera."""
    color = postprocess.colorize(labels, class_space("labelid").palette, "RGB")
    return {MASK: (labels, "mono8"), COLOR_MASK: (color, "rgb8"),
            OVERLAY: (postprocess.overlay(rgb, color, alpha), "rgb8")}


def raw_bytes(pixels: np.ndarray, encoding: str) -> int:
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    out = ImageBuffer(1_700_000_000, 0, "camera", pixels.shape[0], pixels.shape[1], encoding, channels)
    out.pixels[...] = pixels
    return len(out.message())


def measure(frames, quality: int, alpha: float, repeats: int) -> dict[str, dict[str, float]]:
    """Mean bytes per frame and median encode ms of every raw output and its compressed copy."""
    sizes: dict[str, list[tuple[int, int]]] = {}
    times: dict[str, list[float]] = {}
    for rgb, labels in frames:
        for raw, (pixels, encoding) in outputs_of(rgb, labels, alpha).items():
            codec = BY_SUFFIX[compressed_of(raw)].codec
            fmt, data = encode_compressed(pixels, codec, quality, encoding)
            message = compressed_image_bytes(1_700_000_000, 0, "camera", fmt, data)
            assert codec != "png" or (cv2.imdecode(data, cv2.IMREAD_UNCHANGED) == pixels).all()
            sizes.setdefault(raw, []).append((raw_bytes(pixels, encoding), len(message)))
            def encode(pixels=pixels, codec=codec, encoding=encoding):
                return encode_compressed(pixels, codec, quality, encoding)
            times.setdefault(raw, []).append(median_ms(encode, repeats, warmup=1))
    return {raw: {"raw_bytes": round(float(np.mean([r for r, _ in s]))),
                  "compressed_bytes": round(float(np.mean([c for _, c in s]))),
                  "ratio": round(float(np.mean([r for r, _ in s]) / np.mean([c for _, c in s])), 1),
                  "encode_ms": round(float(np.median(times[raw])), 2)}
            for raw, s in sizes.items()}


def table(result: dict[str, dict[str, float]], quality: int) -> str:
    lines = ["| output | raw (sensor_msgs/Image) | compressed | codec | ratio | encode |",
             "|---|---|---|---|---|---|"]
    for raw, r in result.items():
        codec = BY_SUFFIX[compressed_of(raw)].codec
        codec = f"JPEG q{quality}" if codec == "jpeg" else "PNG (lossless)"
        lines.append(f"| `~/{raw}` -> `~/{compressed_of(raw)}` | {r['raw_bytes'] / 1e6:.2f} MB | "
                     f"{r['compressed_bytes'] / 1e3:.0f} kB | {codec} | {r['ratio']:.0f}x | {r['encode_ms']:.1f} ms |")
    total_raw = sum(r["raw_bytes"] for r in result.values())
    total = sum(r["compressed_bytes"] for r in result.values())
    lines.append(f"| all three | {total_raw / 1e6:.2f} MB | {total / 1e3:.0f} kB | | {total_raw / total:.0f}x | "
                 f"{sum(r['encode_ms'] for r in result.values()):.1f} ms |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=5, help="frames of the synthetic drive")
    parser.add_argument("--jpeg-quality", type=int, default=80, help="the node's jpeg_quality")
    parser.add_argument("--alpha", type=float, default=0.5, help="the node's overlay_alpha")
    parser.add_argument("--repeats", type=int, default=5, help="encodes per output and frame (median)")
    parser.add_argument("--update-doc", type=Path, help="write the table into this markdown file")
    args = parser.parse_args()
    frames = list(drive_frames(args.frames, HEIGHT, WIDTH, seed=3))
    result = measure(frames, args.jpeg_quality, args.alpha, args.repeats)
    text = table(result, args.jpeg_quality)
    print(f"machine: {machine_description()}, {cv2.getNumThreads()} OpenCV threads")
    print(text)
    if args.update_doc:
        update_doc(args.update_doc, text, f"Measured on {machine_description()} with "
                   f"`python benchmarks/compressed_outputs.py --frames {args.frames}`: mean bytes per "
                   f"2048x1024 frame of the serialized messages, median encode time.", marker="compressed")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

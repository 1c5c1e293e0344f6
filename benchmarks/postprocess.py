"""Postprocess benchmark: ours vs the original study's per-label loop, on one 2048x1024 frame.

Input: a 2048x1024 RGB frame and a 19-class network output of 256x512 (float32 scores).
Both pipelines produce the same three things: a full-resolution class mask, a colour mask and an
alpha-blended overlay.

* ours: threaded argmax -> id LUT -> nearest upsample of the mask; LUT colouring at network
  resolution, then nearest upsample of the colour mask; cv2.addWeighted overlay
  (cityseg.inference.postprocess, what the Segmenter and the ROS node run).
* baseline (the study's approach): np.argmax, nearest upsample of the mask, then a boolean-mask
  loop over every label (`color[mask == id] = label.color`) at full resolution, float blend.

* node: what the ROS node runs per frame for the same three outputs - the same argmax, then
  each output written once into its outgoing sensor_msgs/Image CDR buffer and turned into the
  bytes rclpy publishes (cityseg.ros.core.processor.OutputWriter with RclpyMessages); needs the
  ``ros`` extra. Its ratio to ``ours`` is the cost of message building.

Both are checked to give identical masks and colours before timing. Medians over --repeats runs
after --warmup runs. The last line is machine-readable:
RESULT postprocess_ms=<median> baseline_ms=<median> speedup=<ratio> node_ms=<median> node_ratio=<ratio>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from cityseg.benchmarking.baseline import study_postprocess
from cityseg.benchmarking.report import machine_description, update_doc
from cityseg.benchmarking.timing import median_ms
from cityseg.inference import postprocess
from cityseg.labels import class_space
from cityseg.preprocess import upsample_nearest


def ours(scores: np.ndarray, frame: np.ndarray, palette: np.ndarray, alpha: float):
    classes = postprocess.scores_to_classes(scores)
    height, width = frame.shape[:2]
    mask = upsample_nearest(classes, height, width)
    color = upsample_nearest(postprocess.colorize(classes, palette), height, width)
    return mask, color, postprocess.overlay(frame, color, alpha)


def node_outputs(scores: np.ndarray, frame: np.ndarray, alpha: float):
    """The node's postprocess + message building for mask, colour mask and overlay (None without rclpy)."""
    from cityseg.inference import Segmentation
    from cityseg.ros.core.images import DecodedImage
    from cityseg.ros.core.messages import RclpyMessages
    from cityseg.ros.core.processor import OutputWriter, ProcessorConfig

    try:
        factory = RclpyMessages()  # imports the ROS message packages
    except ImportError:
        return None
    config = ProcessorConfig(overlay_alpha=alpha)
    header, decoded = factory.header(1, 2, "cam"), DecodedImage(frame, "RGB", "rgb8")
    space, wanted = class_space("trainid"), frozenset({"mask", "color_mask", "overlay"})

    def run():
        result = Segmentation(postprocess.scores_to_classes(scores), frame.shape[:2], space)
        return OutputWriter(factory, config, header, decoded, result, frame.shape[:2]).build(wanted)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--update-doc", type=Path, help="write the figures between the postprocess "
                                                        "markers of this doc (docs/PERFORMANCE.md)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1024, 2048, 3), dtype=np.uint8)
    # Smooth, realistic scores: blocky class regions plus noise, so argmax has structure.
    regions = rng.integers(0, 19, (16, 32))
    logits = np.eye(19, dtype=np.float32)[np.kron(regions, np.ones((16, 16), int))] * 3
    scores = logits + rng.random((256, 512, 19), dtype=np.float32)
    palette = class_space("trainid").palette

    mask_a, color_a, _ = ours(scores, frame, palette, args.alpha)
    mask_b, color_b, _ = study_postprocess(scores, frame, palette, args.alpha)
    assert np.array_equal(mask_a, mask_b) and np.array_equal(color_a, color_b), "pipelines disagree"

    classes = postprocess.scores_to_classes(scores)
    color_low = postprocess.colorize(classes, palette)
    color_full = upsample_nearest(color_low, 1024, 2048)
    stages = {
        "argmax (256x512x19)": lambda: postprocess.scores_to_classes(scores),
        "mask upsample": lambda: upsample_nearest(classes, 1024, 2048),
        "colour (LUT, low res)": lambda: postprocess.colorize(classes, palette),
        "colour upsample": lambda: upsample_nearest(color_low, 1024, 2048),
        "overlay": lambda: postprocess.overlay(frame, color_full, args.alpha),
    }
    print(f"machine: {machine_description()}, {cv2.getNumThreads()} OpenCV threads")
    rows = [(name, median_ms(fn, args.repeats, args.warmup)) for name, fn in stages.items()]
    for name, ms in rows:
        print(f"  {name:<24} {ms:7.2f} ms")
    ours_ms = median_ms(lambda: ours(scores, frame, palette, args.alpha), args.repeats, args.warmup)
    base_ms = median_ms(lambda: study_postprocess(scores, frame, palette, args.alpha),
                        max(5, args.repeats // 5), 1)
    node = node_outputs(scores, frame, args.alpha)
    node_ms = median_ms(node, args.repeats, args.warmup) if node else float("nan")
    print(f"ours (mask + colour + overlay at 2048x1024): {ours_ms:.2f} ms")
    print(f"node (same, written into CDR messages):     {node_ms:.2f} ms ({node_ms / ours_ms:.2f}x ours)")
    print(f"study baseline (per-label loop):            {base_ms:.2f} ms")
    if args.update_doc:
        table = "\n".join(["| stage | ms |", "|---|---:|"] + [f"| {n} | {ms:.2f} |" for n, ms in rows]
                          + [f"| **ours, whole postprocess** | **{ours_ms:.2f}** |",
                             f"| the node: same outputs written into their CDR messages | {node_ms:.2f} "
                             f"({node_ms / ours_ms:.2f}×) |",
                             f"| study baseline | {base_ms:.1f} |",
                             f"| speed-up | {base_ms / ours_ms:.1f}× |"])
        update_doc(args.update_doc, table, f"Measured on {machine_description()}; medians of "
                   f"{args.repeats} runs after {args.warmup} warm-up runs.", marker="postprocess")
    print(f"RESULT postprocess_ms={ours_ms:.2f} baseline_ms={base_ms:.2f} speedup={base_ms / ours_ms:.1f} "
          f"node_ms={node_ms:.2f} node_ratio={node_ms / ours_ms:.2f}")

if __name__ == "__main__":
    main()

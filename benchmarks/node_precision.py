"""The node at 2048x1024 on a CPU with a reduced-precision artifact against fp32 ONNX Runtime, one run.

Issue 25's node goal: the frame time (node p50 minus the bare rclpy echo floor, measured in the
same run) with the fastest gated CPU artifact at least 1.4x shorter than with fp32 ONNX Runtime,
and every frame out at a rate fp32 could not hold. The bundle is ``unet_lite`` at 512x1024 with
the demo bundle's trained weights (``--weights-from``; a fully convolutional network takes them at
any input size; random weights where that bundle is missing), exported as ``cityseg export`` does: fp32 ONNX,
argmax head, then ``--precision bf16`` (OpenVINO, gated against fp32 on generated street frames;
``auto`` picks it only where it measured faster than fp32 ONNX Runtime in that export run) and
``--precision int8`` (attempted; random weights make near-tie class maps, so int8 may fail its gate
and is then never picked). The node runs 2048x1024 rgb8 frames at 10 Hz (mask-only subscriber,
shipped DDS profile) with ``backend:=onnxruntime`` and with ``backend:=auto``.

    python benchmarks/node_precision.py [--weights-from BUNDLE] [--data ROOT] [--update-doc docs/PERFORMANCE.md]

The last line printed is JSON: {"export": {...}, "runs": [...], "ratio": ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 2048, 1024
TARGETS = (("echo floor", "messages", "", ""), ("fp32 ONNX Runtime", "", "onnxruntime", "onnx_argmax"),
           ("auto", "", "auto", ""))
"""(row, echo floor kind, node backend, pinned card artifact): the fp32 row pins the fp32 argmax head,
since a named backend would otherwise apply the auto rule to its own precision pairs."""


def make_bundle(root: Path, weights_from: Path | None, data: Path | None = None) -> tuple[Path, dict]:
    """The unet_lite 512x1024 bundle (random weights, or ``weights_from``'s trained ones) with its
    gated precision artifacts (calibrated on ``data``'s train split and gated with ground truth on
    its val split when given); what export printed."""
    from cityseg.benchmarking.fixtures import make_random_bundle

    bundle = (trained_at_size(root, weights_from, 512, 1024) if weights_from
              else make_random_bundle(root, "unet_lite", 512, 1024))
    printed = {}
    cityseg = [sys.executable, "-m", "cityseg"]
    gate = ["--eval-data", str(data), "--eval-split", "val"] if data else []
    calib = (["--calib-data", str(data), "--calib-split", "train"] if data
             else ["--calib-images", str(calibration_images(bundle))])
    for precision, extra in (("bf16", gate), ("int8", calib + gate)):
        started = time.monotonic()
        done = subprocess.run([*cityseg, "export", str(bundle), "--precision", precision, *extra],
                              capture_output=True, text=True)
        printed[precision] = {"exit": done.returncode, "seconds": round(time.monotonic() - started, 1),
                              "output": (done.stdout + done.stderr).strip().splitlines()[-3:]}
        print(f"export --precision {precision}: exit {done.returncode}", *printed[precision]["output"],
              sep="\n  ", flush=True)
    return bundle, printed


def trained_at_size(root: Path, source: Path, height: int, width: int) -> Path:
    """``source``'s trained weights in the same fully convolutional architecture built for a
    ``height`` x ``width`` input (what the network does per pixel does not depend on the input
    size), as a bundle with its fp32 and argmax-head ONNX."""
    from dataclasses import replace

    import keras

    from cityseg.bundle import Artifact, Bundle
    from cityseg.export.onnx import export_onnx, load_keras_model

    trained = Bundle.load(source)
    card = trained.card
    source_model = load_keras_model(trained.artifact_path("keras"))
    config = source_model.get_config()  # the same layers with a bigger input
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_shape"] = [None, height, width, 3]
    model = keras.Model.from_config(config)
    model.set_weights(source_model.get_weights())
    path = root / f"{card.architecture}_{height}x{width}_trained"
    bundle = Bundle.create(path, replace(card, name=f"{card.name}-{height}x{width}", input_height=height,
                                         input_width=width, artifacts={}))
    model.save(path / "model.keras")
    bundle.add_artifact("keras", Artifact("model.keras", "keras", "probabilities"))
    export_onnx(bundle)
    export_onnx(bundle, argmax_head=True)
    return path


def calibration_images(bundle: Path) -> Path:
    """16 generated street frames as PNGs (the calibration set of --precision int8), seeds apart
    from the gate's."""
    import cv2

    from cityseg.bundle import Bundle
    from cityseg.export.parity import parity_frames

    folder = bundle.parent / "calib"
    folder.mkdir(exist_ok=True)
    frames, _ = parity_frames(Bundle.load(bundle).card, count=16, seed=1000)
    for i, rgb in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:02d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder


def run_target(bundle: Path, echo: str, backend: str, artifact: str, index: int) -> dict:
    """One frame-cost scenario of ros_graph.py in its own process and DDS domain."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from ros_graph import run_child

    spec = [WIDTH, HEIGHT, ["mask"], echo] + ([backend, artifact] if backend else [])
    return run_child("--cost-child", spec, bundle, 100 + (os.getpid() + index) % 50, timeout=300,
                     what=echo or backend)


def infer_text(run: dict) -> str:
    infer = run.get("stage_ms", {}).get("infer")
    return "–" if infer is None else f"{infer:.1f} ms"


def table(runs: list[dict]) -> str:
    """The runs as a Markdown table (frame time = p50 - echo floor p50)."""
    rows = ["| node backend | runs on | out / sent | dropped in node | mask p50 / p90 | infer mean | "
            "**frame time** (p50 − echo floor) |", "|" + "---|" * 7]
    for r in runs:
        rows.append(f"| {r['name']} | {r.get('runs_on') or '–'} | {r['out']} / {r['sent']} | {r['node_dropped']} | "
                    f"{r['latency_p50_ms']:.1f} / {r['latency_p90_ms']:.1f} ms | "
                    f"{infer_text(r)} | "
                    f"**{r.get('frame_ms', r['latency_p50_ms']):.1f} ms** |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update-doc", type=Path, help="write the table into this Markdown file")
    parser.add_argument("--weights-from", type=Path, default=REPO / "demo_output" / "bundle",
                        help="a trained unet_lite bundle whose weights the 512x1024 model takes (default: make "
                             "demo's; a missing one means random weights)")
    parser.add_argument("--data", type=Path, help="a dataset in the Cityscapes layout: int8 calibrates on its "
                        "train split and both artifacts are gated with ground truth on its val split "
                        "(default: generated frames, fp32-reference gate)")
    args = parser.parse_args()
    weights = args.weights_from if (args.weights_from / "model.json").is_file() else None
    with tempfile.TemporaryDirectory(prefix="cityseg-node-precision-") as tmp:
        bundle, exported = make_bundle(Path(tmp), weights, args.data)
        runs = []
        for index, (name, echo, backend, artifact) in enumerate(TARGETS):
            runs.append({"name": name, **run_target(bundle, echo, backend, artifact, index)})
            print(f"{name}: p50 {runs[-1]['latency_p50_ms']} ms, {runs[-1]['out']} / {runs[-1]['sent']}", flush=True)
    floor = runs[0]["latency_p50_ms"]
    for r in runs[1:]:
        r["frame_ms"] = round(r["latency_p50_ms"] - floor, 1)
    fp32, auto = runs[1]["frame_ms"], runs[2]["frame_ms"]
    ratio = round(fp32 / auto, 2) if auto > 0 else float("nan")
    text = table(runs) + f"\n\nframe time fp32 ONNX Runtime / auto: **{ratio}×**"
    print(text)
    if args.update_doc:
        from cityseg.benchmarking.report import machine_description, update_doc

        origin = f"the weights of {args.weights_from}" if weights else "random weights"
        origin += f"; calibrated and gated on {args.data}" if args.data else ""
        where = (f"Measured on {machine_description()}: unet_lite 512x1024 ({origin}), {WIDTH}x{HEIGHT} rgb8 "
                 f"@ 10 Hz, mask only (`python benchmarks/node_precision.py --update-doc {args.update_doc}`, "
                 f"{time.strftime('%Y-%m-%d')}).")
        update_doc(args.update_doc, text, where, marker="node-precision")
    print(json.dumps({"export": exported, "runs": runs, "ratio": ratio, "weights": str(weights or "random")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

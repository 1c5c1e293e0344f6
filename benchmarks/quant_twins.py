"""Twins of an imported quantised model side by side: pixel agreement on real frames and CPU latency.

For every ONNX model file of a bundle (the publisher's quantised graph, the float twin, and whatever
`cityseg export --precision` added), on the same frames through the card's preprocessing:
  * pixel agreement of its class ids with the float twin (``onnx``) and with the original
    (``onnx_quantized``), over all frames;
  * per-frame latency (median) on ONNX Runtime and, where installed, OpenVINO, measured in
    alternating rounds so every file sees the same machine state.

    python benchmarks/quant_twins.py --bundle models/coral-deeplab-cityscapes --images CamVid/test \
        --limit 60 --rounds 5

The TFLite interpreter on the publisher's file is one more reference row with --tflite FILE.
Results: docs/MODELS.md ("The pulled Coral model: artifacts, accuracy, latency").
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from cityseg.bundle import Bundle
from cityseg.export.calibration import folder_frames
from cityseg.export.precision import class_runner

REFERENCES = ("onnx", "onnx_quantized")


def model_files(bundle: Bundle) -> list[str]:
    """Card keys of the bundle's scores / ids ONNX files (argmax-head copies of a scores file left out)."""
    keys = [k for k, a in bundle.card.artifacts.items() if a.format == "onnx" and not a.fused]
    return [k for k in keys if not (k.startswith("onnx_argmax_") and k.replace("argmax_", "") in keys)]


def runners(bundle: Bundle, key: str, backends: list[str]) -> dict[str, object]:
    """{'<backend>': batch -> ids} of one artifact (OpenVINO runs an fp32 file in fp32)."""
    artifact = bundle.card.artifacts[key]
    path = bundle.artifact_path(key)
    precision = artifact.precision if artifact.precision in ("fp32", "fp16", "int8") else "fp32"
    return {b: class_runner(path, artifact, bundle.card, backend=b, precision=precision) for b in backends}


def tflite_runner(path: Path):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(str(path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def run(batch: np.ndarray) -> np.ndarray:
        frames = batch if batch.shape[-1] == 3 else batch.transpose(0, 2, 3, 1)
        ids = []
        for frame in frames:
            interpreter.set_tensor(inp["index"], frame[None].astype(inp["dtype"]))
            interpreter.invoke()
            ids.append(interpreter.get_tensor(out["index"])[0])
        return np.stack(ids)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True, help="folder of real frames")
    parser.add_argument("--limit", type=int, default=60, help="frames, spread over the folder")
    parser.add_argument("--rounds", type=int, default=5, help="latency rounds (alternating files)")
    parser.add_argument("--tflite", type=Path, help="the publisher's .tflite: the interpreter as a reference row")
    args = parser.parse_args()

    bundle = Bundle.load(args.bundle)
    card = bundle.card
    frames = folder_frames(args.images, args.limit, minimum=1, option="--images").frames
    batches = [card.preprocess([f]) for f in frames]
    try:
        import openvino  # noqa: F401
        backends = ["onnxruntime", "openvino"]
    except ImportError:
        backends = ["onnxruntime"]
    keys = model_files(bundle)
    runs = {k: runners(bundle, k, backends) for k in keys}
    ids = {k: [runs[k]["onnxruntime"](b) for b in batches] for k in keys}
    if args.tflite:
        reference = tflite_runner(args.tflite)
        ids["tflite"] = [reference(b) for b in batches]
    times = {(k, b): [] for k in keys for b in backends}
    for _ in range(args.rounds):
        for k in keys:
            for b in backends:
                start = time.perf_counter()
                runs[k][b](batches[0])
                times[(k, b)].append(1000 * (time.perf_counter() - start))
    print(f"{len(frames)} frames of {args.images}, {card.input_width}x{card.input_height}; "
          f"latency: median of {args.rounds} alternating rounds, one frame")
    header = "artifact            precision  vs onnx   vs onnx_quantized  " + "  ".join(f"{b} ms" for b in backends)
    print(header)
    for k in [*keys, *(["tflite"] if args.tflite else [])]:
        agreement = [np.mean([np.mean(a == r) for a, r in zip(ids[k], ids[ref])]) if ref in ids else float("nan")
                     for ref in REFERENCES]
        precision = card.artifacts[k].precision if k in card.artifacts else "int8 (TFLite)"
        latency = "  ".join(f"{statistics.median(times[(k, b)]):8.1f}" if (k, b) in times else "       -"
                            for b in backends)
        print(f"{k:<19} {precision:<9} {agreement[0]:7.2%}   {agreement[1]:7.2%}            {latency}")


if __name__ == "__main__":
    main()

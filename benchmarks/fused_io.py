"""Fused I/O vs the unfused path on ONNX Runtime (CPU here): is the graph-side pre/post faster?

The demo-sized model (``training_configs/demo.yaml``: unet_lite, 128x256 input, random weights) is
exported with the project's exporter (model.onnx, model_argmax.onnx) and wrapped with
``export_fused`` for each camera size (default 2048x1024 and 1024x512). For each size, batch-1
medians of one synthetic street frame (RGB uint8) to the uint8 mask at camera resolution:

* unfused: ``Segmenter(artifact="onnx_argmax")`` - CPU resize + normalise, ONNX Runtime, CPU
  nearest upsample (what the node runs today); its stages: preprocess, network, upsample;
* fused: ``Segmenter(artifact=<fused key>)`` - one ONNX Runtime call on the uint8 frame;
* network alone: the argmax head on an already preprocessed batch, so the fused graph's
  pre/postprocessing share is fused - network.

The last line is JSON: {"<W>x<H>": {"unfused_ms", "fused_ms", "network_ms", "fused_prepost_ms",
"unfused_prepost_ms", "speedup"}, ...} with speedup = unfused / fused (> 1: fused is faster).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from cityseg.benchmarking.timing import median_ms
from cityseg.preprocess import upsample_nearest

DEMO_PARAMS = {"base_filters": 8, "depth": 4, "dropout": 0.0, "max_filters": 64}


def demo_bundle(root: Path):
    """The demo's model (random weights) as a bundle with model.onnx and model_argmax.onnx."""
    from cityseg.bundle import Artifact, Bundle, ModelCard
    from cityseg.export.onnx import export_onnx
    from cityseg.labels import class_space
    from cityseg.models import build_model

    space = class_space("trainid")
    model = build_model("unet_lite", (128, 256, 3), space.num_classes, **DEMO_PARAMS)
    card = ModelCard(name="demo-random", architecture="unet_lite", input_height=128, input_width=256,
                     class_space="trainid", class_names=space.names, resize="area")
    bundle = Bundle.create(root / "demo", card)
    model.save(bundle.path / "model.keras")
    bundle.add_artifact("keras", Artifact("model.keras", "keras", "probabilities"))
    export_onnx(bundle)
    export_onnx(bundle, argmax_head=True)
    return bundle


def measure(bundle, camera_size: tuple[int, int], repeats: int, warmup: int) -> dict:
    """Medians (ms) of the unfused and fused paths for one camera size (height, width)."""
    from cityseg.bundle import CameraInput
    from cityseg.export.fused_io import export_fused
    from cityseg.inference import Segmenter
    from cityseg.synthetic.dataset import render_scene

    height, width = camera_size
    key, _ = export_fused(bundle, CameraInput(height, width))
    frame = render_scene(np.random.default_rng(0), height, width)[0]
    unfused = Segmenter(bundle, backend="onnxruntime", artifact="onnx_argmax")
    fused = Segmenter(bundle, backend="onnxruntime", artifact=key)
    agreement = float((unfused.segment(frame).mask == fused.segment(frame).mask).mean())
    batch = unfused.preprocess([frame])
    low = unfused.backend.infer(batch)[0]
    row = {
        "unfused_ms": median_ms(lambda: unfused.segment(frame).mask, repeats, warmup),
        "fused_ms": median_ms(lambda: fused.segment(frame).mask, repeats, warmup),
        "network_ms": median_ms(lambda: unfused.backend.infer(batch), repeats, warmup),
        "preprocess_ms": median_ms(lambda: unfused.preprocess([frame]), repeats, warmup),
        "upsample_ms": median_ms(lambda: upsample_nearest(low, height, width), repeats, warmup),
    }
    row["fused_prepost_ms"] = row["fused_ms"] - row["network_ms"]
    row["unfused_prepost_ms"] = row["unfused_ms"] - row["network_ms"]
    row["speedup"] = row["unfused_ms"] / row["fused_ms"]
    row["mask_agreement"] = agreement
    return {k: round(v, 4) for k, v in row.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", nargs="+", default=["2048x1024", "1024x512"], metavar="WxH")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import onnxruntime

    from cityseg.benchmarking.report import machine_description

    provider = "CUDAExecutionProvider" if "CUDAExecutionProvider" in onnxruntime.get_available_providers() \
        else "CPUExecutionProvider"
    print(f"machine: {machine_description()}; onnxruntime {onnxruntime.__version__} ({provider})")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = demo_bundle(Path(tmp))
        for text in args.cameras:
            width, height = (int(v) for v in text.lower().split("x"))
            results[text] = row = measure(bundle, (height, width), args.repeats, args.warmup)
            print(f"{text}: unfused {row['unfused_ms']:.2f} ms (preprocess {row['preprocess_ms']:.2f}, network "
                  f"{row['network_ms']:.2f}, upsample {row['upsample_ms']:.2f}) | fused {row['fused_ms']:.2f} ms "
                  f"(pre/post in the graph ~{row['fused_prepost_ms']:.2f}) | unfused/fused x{row['speedup']:.2f}",
                  flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()

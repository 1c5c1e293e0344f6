"""What each fit policy costs per frame: one 2048x1024 frame through ``Segmenter.segment`` (and its
full-resolution mask) for ``stretch``, ``letterbox``, ``tiles`` at scale 1 and ``tiles`` at scale 0.5.

Models: the small imported-style ONNX of ``cityseg bench --imported`` (NCHW float input, 19-class
logits at stride 8) at 513x513, and, with ``--tflite``, a real 513x513 model imported from a TFLite
file (e.g. the Coral EdgeTPU DeepLab, uint8 in, class ids out), whose road recall on the synthetic
drive's road pixels is printed too. Frames: ``cityseg.synthetic.dataset.drive_frames(4, 1024, 2048,
seed=3)``; median and minimum over --rounds passes over the 4 frames after one warm-up frame;
ONNX Runtime on the CPU.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

FITS = (("stretch", 1.0), ("letterbox", 1.0), ("tiles", 1.0), ("tiles", 0.5))
ROAD_LABEL_ID, ROAD_TRAIN_ID = 7, 0


def time_fits(source: Path, frames, rounds: int, recall: bool) -> None:
    """Print one line per fit for the bundle at ``source`` (copied, the card's fit changed)."""
    from cityseg.bundle import Bundle
    from cityseg.bundle.card import replace_card
    from cityseg.inference import Segmenter

    for fit, scale in FITS:
        path = source.parent / f"{source.name}-{fit}-{scale:g}"
        shutil.copytree(source, path)
        bundle = Bundle.load(path)
        bundle.card = replace_card(bundle.card, fit=fit, tile_scale=scale)
        bundle.save()
        segmenter = Segmenter(path, backend="onnxruntime")
        _ = segmenter.segment(frames[0][0]).mask  # warm-up
        runs, stages, hit, road = [], [], 0, 0
        for round_ in range(rounds):
            for image, labels in frames:
                start = time.perf_counter()
                result = segmenter.segment(image)
                mask = result.mask
                runs.append((time.perf_counter() - start) * 1e3)
                stages.append(result.timings)
                if round_ == 0:
                    hit += int((mask[labels == ROAD_LABEL_ID] == ROAD_TRAIN_ID).sum())
                    road += int((labels == ROAD_LABEL_ID).sum())
        grid = bundle.card.tile_grid(frames[0][0].shape[:2])
        parts = ", ".join(f"{k} {statistics.median(s[k] for s in stages):.1f}" for k in stages[0])
        line = (f"{fit:9s} scale {scale:<3g} {grid.count if grid else 1} input(s): median "
                f"{statistics.median(runs):6.0f} ms, min {min(runs):6.0f} ms ({parts})")
        print(line + (f", road recall {hit / road:.3f}" if recall else ""), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes over the 4 frames (default 3)")
    parser.add_argument("--tflite", type=Path, help="also a real model: this TFLite file, imported RGB, linear resize")
    args = parser.parse_args()
    from cityseg.acquisition.importer import ImportOptions, import_onnx
    from cityseg.benchmarking.fixtures import make_imported_bundle
    from cityseg.labels import class_space
    from cityseg.synthetic.dataset import drive_frames

    frames = list(drive_frames(4, 1024, 2048, seed=3))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print("small imported-style ONNX (19-class logits at stride 8), 513x513:")
        time_fits(make_imported_bundle(root, 513, 513), frames, args.rounds, recall=False)
        if args.tflite:
            print(f"{args.tflite.name}, 513x513:")
            bundle = import_onnx(args.tflite, root / "real", class_space("trainid"),
                                 ImportOptions(channel_order="RGB", resize="linear"))
            time_fits(bundle.path, frames, args.rounds, recall=True)


if __name__ == "__main__":
    main()

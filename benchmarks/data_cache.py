"""Epoch time of the training data pipeline: decoding PNGs every epoch (cold) vs the uint8 cache (warm).

Writes a synthetic Cityscapes tree at full Cityscapes resolution (2048x1024 by default), then
times one pass over ``make_dataset(..., training=True)``:

* cold:  ``data.cache_dir: null``, every PNG decoded and resized in the epoch;
* build: the first epoch with a cache (decodes once, writes the cache);
* warm:  a later epoch/run that memory-maps the cache (no PNG decoded).

The last line is ``RESULT cold_s=... warm_s=... speedup=...``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def epoch_seconds(samples, cfg) -> float:
    """Wall time of one full pass over the training dataset (dataset construction included)."""
    from cityseg.data.pipeline import make_dataset
    from cityseg.preprocess import Normalization

    start = time.perf_counter()
    for _ in make_dataset(samples, cfg, Normalization(), training=True, progress=False):
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40, help="training images")
    parser.add_argument("--source-size", default="2048x1024", help="WxH of the generated PNGs")
    parser.add_argument("--train-size", default="512x256", help="WxH of the training resolution")
    parser.add_argument("--resize", default="lanczos3", choices=["lanczos3", "area", "bilinear"])
    parser.add_argument("--warm-epochs", type=int, default=3, help="warm epochs to average")
    args = parser.parse_args()

    from cityseg.data import find_samples
    from cityseg.data.config import DataConfig
    from cityseg.synthetic.dataset import write_dataset
    from cityseg.training.config import TrainConfig

    src_w, src_h = (int(v) for v in args.source_size.split("x"))
    train_w, train_h = (int(v) for v in args.train_size.split("x"))
    with tempfile.TemporaryDirectory(prefix="cityseg-bench-") as tmp:
        root = Path(tmp) / "data"
        start = time.perf_counter()
        write_dataset(root, args.count, size=(src_w, src_h), seed=0, splits={"train": 1.0})
        print(f"generated {args.count} synthetic {src_w}x{src_h} scenes in {time.perf_counter() - start:.1f} s")
        samples = find_samples(root, "train")
        megabytes = sum(s.image.stat().st_size for s in samples) / len(samples) / 1e6
        print(f"mean image PNG size {megabytes:.1f} MB")
        import tensorflow as tf  # start TensorFlow before timing anything

        _ = list(tf.data.Dataset.range(2).map(lambda i: i + 1))

        def config(cache_dir):
            data = DataConfig(root=str(root), height=train_h, width=train_w, resize=args.resize,
                              batch_size=8, cache_dir=cache_dir)
            return TrainConfig(data=data)

        cold = epoch_seconds(samples, config(None))
        build = epoch_seconds(samples, config(str(Path(tmp) / "cache")))
        warm = min(epoch_seconds(samples, config(str(Path(tmp) / "cache"))) for _ in range(args.warm_epochs))

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores; "
          f"{args.count} images {src_w}x{src_h} -> {train_w}x{train_h} ({args.resize}), batch 8")
    print(f"cold epoch (no cache, decode every epoch): {cold:.2f} s ({cold / args.count * 1000:.0f} ms/img)")
    print(f"first epoch with cache (decode + write):   {build:.2f} s")
    print(f"warm epoch (memory-mapped cache):          {warm:.3f} s ({warm / args.count * 1000:.1f} ms/img)")
    print(f"RESULT cold_s={cold:.3f} warm_s={warm:.3f} speedup={cold / warm:.1f}")


if __name__ == "__main__":
    main()

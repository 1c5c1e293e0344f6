"""Training throughput (images/s) of the trainer's own step on a real dataset: where the time goes
(the tf.data pipeline alone, the model step alone, both together, as `cityseg train` runs them),
and what the levers give, each variant measured in the same run, in alternating rounds.

Variants (all: the recipe's model, loss, optimizer and augmentation; batch 8):
  baseline   - whole 352x480 frames, Keras' own BatchNormalization path (the issue's baseline)
  full       - whole frames, the fused batch-norm kernel (FusedBatchNormalization, the default)
  crop_kbn   - 256x320 random crops (augment.crop), Keras' own BatchNormalization path
  crop       - crops + fused batch norm: training_configs/camvid.yaml as `cityseg train` runs it
  crop_bf16  - crop, Keras mixed_bfloat16 (AMX / AVX512-BF16 CPUs)
  crop_xla   - crop, jit_compile (XLA)

    python benchmarks/train_throughput.py --config training_configs/camvid.yaml --data-root DIR/CamVid

Prints one table (images/s: median and best over --rounds rounds of --steps steps after a warm-up;
a shared VM's rates can halve for a round, so read the median beside the best) and the ratio of
each variant's median to ``baseline``'s, measured alongside it. Results: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

VARIANTS = ("baseline", "full", "crop_kbn", "crop", "crop_bf16", "crop_xla")
DEFAULT_VARIANTS = ("baseline", "full", "crop_kbn", "crop")  # crop_xla compiles for minutes on 2 cores


def build(cfg, variant: str):
    """(compiled model, training dataset) of ``variant`` built as the trainer builds them."""
    import keras

    from cityseg.data.layouts import make_splits
    from cityseg.data.pipeline import class_pixel_counts, data_space, fit_normalization, make_dataset
    from cityseg.training.losses import class_weights
    from cityseg.training.model_setup import batchnorm_layers, build_and_compile

    crop = None if variant in ("baseline", "full") else cfg.augment.crop
    run_cfg = replace(cfg, augment=replace(cfg.augment, crop=crop))
    space = data_space(cfg.data)
    train = make_splits(cfg.data)["train"]
    weights = class_weights(class_pixel_counts(train, cfg.data), cfg.loss.class_weights).astype("float32")
    keras.config.set_dtype_policy("mixed_bfloat16" if variant == "crop_bf16" else "float32")
    model = build_and_compile(run_cfg, space, steps_per_epoch=1000, class_weights=weights)
    keras.config.set_dtype_policy("float32")
    for layer in batchnorm_layers(model):  # read when the step is traced, i.e. at the first fit
        layer.fused = variant not in ("baseline", "crop_kbn")
    if variant == "crop_xla":
        model.compile(optimizer=model.optimizer, loss=model.loss, jit_compile=True)
    dataset = make_dataset(train, run_cfg, fit_normalization(train, cfg.data), training=True,
                           progress=False).repeat()
    return model, dataset


def images_per_s(model, dataset, steps: int, batch: int) -> float:
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch / (time.perf_counter() - start)


def pipeline_images_per_s(dataset, steps: int, batch: int) -> float:
    """The tf.data pipeline alone (decode from cache, augment, crop, normalise, batch)."""
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return steps * batch / (time.perf_counter() - start)


def model_images_per_s(model, dataset, steps: int, batch: int) -> float:
    """The model's training step alone, on one batch held in memory (no pipeline)."""
    return images_per_s(model, fixed_batch(dataset), steps, batch)


def fixed_batch(dataset):
    """One batch of ``dataset`` repeated from memory: the model step without the pipeline."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensors(next(iter(dataset))).repeat()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from cityseg.training.config import load_train_config

    cfg = load_train_config(args.config, data__root=args.data_root)
    batch = cfg.data.batch_size
    names = args.variants.split(",")
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    built = {v: build(cfg, v) for v in names}
    for model, dataset in built.values():  # warm-up: tracing, XLA compilation
        images_per_s(model, dataset, 2, batch)
    rates: dict[str, list[float]] = {v: [] for v in built}
    for _ in range(args.rounds):
        for variant, (model, dataset) in built.items():
            rates[variant].append(images_per_s(model, dataset, args.steps, batch))
    print(f"{'variant':<10} {'img/s median':>12} {'best':>6} {'vs baseline':>11} "
          f"{'pipeline img/s':>15} {'model img/s':>12}")
    base = statistics.median(rates["baseline"]) if "baseline" in rates else None
    for variant, (model, dataset) in built.items():
        rate = statistics.median(rates[variant])
        ratio = f"{rate / base:11.2f}" if base else f"{'':>11}"
        pipe = pipeline_images_per_s(dataset, args.steps, batch)
        alone = model_images_per_s(model, dataset, args.steps, batch)
        print(f"{variant:<10} {rate:12.2f} {max(rates[variant]):6.2f} {ratio} {pipe:15.1f} {alone:12.2f}")


if __name__ == "__main__":
    main()

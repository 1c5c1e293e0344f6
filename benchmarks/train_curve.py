"""Learning curve of the default model on synthetic street scenes, on CPU, vs chance.

Generates a synthetic Cityscapes tree (cityseg.synthetic.dataset), trains the default model
(``cityseg.models.DEFAULT_MODEL`` with its default parameters) with training_configs/demo.yaml's recipe via
``cityseg.training.train.train``, and records the validation mIoU of every epoch next to two
chance baselines measured on the same validation labels with the same metric:

* majority: predict the most frequent training class everywhere;
* random:   predict a uniformly random class per pixel.

After training, the bundle is also scored with the official Cityscapes evaluation
(``cityseg.evaluation.run.evaluate_bundle``: labelIds, full resolution). Writes ``curve.json`` and
``curve.png`` into --out; the last line is ``RESULT ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]


def chance_mious(train_labels, val_labels, num_classes: int, ignore_index, seed: int = 0) -> dict:
    """mIoU of the majority-class and uniform-random predictors, with the training metric."""
    import numpy as np

    from cityseg.training.metrics import keras_metrics

    valid = train_labels[train_labels != (255 if ignore_index is None else ignore_index)]
    majority = int(np.bincount(valid.ravel(), minlength=num_classes).argmax())
    rng = np.random.default_rng(seed)
    predictors = {"majority": np.full(val_labels.shape, majority),
                  "random": rng.integers(0, num_classes, size=val_labels.shape)}
    results = {}
    for name, predicted in predictors.items():
        miou = [m for m in keras_metrics(num_classes, ignore_index) if m.name == "miou"][0]
        one_hot = np.eye(num_classes, dtype=np.float32)[predicted]
        miou.update_state(val_labels.astype(np.int32), one_hot)
        results[name] = float(miou.result())
    return results


def plot_curve(path: Path, epochs: list[int], val_miou: list[float], chance: dict, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 3.4), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    ax.plot(epochs, val_miou, "-o", markersize=3, label="val mIoU (trained)")
    for (name, value), style in zip(chance.items(), ("--", ":")):
        ax.axhline(value, linestyle=style, color="gray", label=f"chance: {name} ({value:.3f})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation mIoU (19 trainIds)")
    ax.set_ylim(0, max(1e-3, max(val_miou)) * 1.15)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title(title, fontsize="small")
    figure.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "train_curve", help="work/output directory")
    parser.add_argument("--train", type=int, default=160, help="synthetic training images")
    parser.add_argument("--val", type=int, default=40, help="synthetic validation images")
    parser.add_argument("--source-size", default="512x256", help="WxH of the generated PNGs")
    parser.add_argument("--train-size", default="256x128", help="WxH of the training resolution")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="replace a previous --out")
    args = parser.parse_args()

    import shutil

    import numpy as np

    from cityseg.data import find_samples
    from cityseg.data.pipeline import load_arrays
    from cityseg.labels import class_space
    from cityseg.models import DEFAULT_MODEL
    from cityseg.synthetic.dataset import write_dataset
    from cityseg.training.config import load_train_config
    from cityseg.training.train import train

    if args.out.exists() and any(args.out.iterdir()):
        if not args.force:
            raise SystemExit(f"{args.out} is not empty; pass --force to replace it")
        shutil.rmtree(args.out)
    src_w, src_h = (int(v) for v in args.source_size.split("x"))
    train_w, train_h = (int(v) for v in args.train_size.split("x"))
    data_root = args.out / "data"
    start = time.perf_counter()
    write_dataset(data_root, args.train + args.val, size=(src_w, src_h), seed=args.seed,
                  splits={"train": args.train, "val": args.val})
    print(f"generated {args.train}+{args.val} synthetic {src_w}x{src_h} scenes in "
          f"{time.perf_counter() - start:.1f} s", flush=True)

    cfg = load_train_config(REPO / "training_configs" / "demo.yaml", name="train_curve",
                            data__root=str(data_root), data__cache_dir=str(args.out / "cache"),
                            data__height=train_h, data__width=train_w,
                            model__name=DEFAULT_MODEL, model__params={}, epochs=args.epochs,
                            seed=args.seed, tensorboard=False, preview_count=2)
    space = class_space(cfg.data.class_space)
    _, train_labels = load_arrays(find_samples(data_root, "train"), cfg.data, progress=False)
    _, val_labels = load_arrays(find_samples(data_root, "val"), cfg.data, progress=False)
    chance = chance_mious(np.asarray(train_labels), np.asarray(val_labels), space.num_classes,
                          space.ignore_index, args.seed)

    start = time.perf_counter()
    bundle = train(cfg, args.out / "run", progress=True)
    train_seconds = time.perf_counter() - start
    state = json.loads((args.out / "run" / "checkpoints" / "state.json").read_text())
    val_miou = [r["val_miou"] for r in state["history"]]
    epoch_seconds = bundle.card.training["train_seconds"] / len(val_miou)

    official = None
    try:
        from cityseg.evaluation.run import evaluate_bundle

        official = evaluate_bundle(bundle.path, data_root, "val", backend="tensorflow").miou
    except ImportError as exc:  # the evaluation module is optional for this benchmark
        print(f"official evaluation skipped: {exc}")

    import keras

    import cityseg.models  # noqa: F401
    from cityseg.models.profile import count_params

    params = count_params(keras.saving.load_model(bundle.path / "model.keras", compile=False))
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU"
    result = {
        "machine": machine, "model": DEFAULT_MODEL, "params": params,
        "train_size": [train_w, train_h], "train_images": args.train, "val_images": args.val,
        "batch_size": cfg.data.batch_size, "epochs": len(val_miou),
        "train_seconds": round(train_seconds, 1), "seconds_per_epoch": round(epoch_seconds, 1),
        "val_miou": [round(v, 4) for v in val_miou], "best_val_miou": round(max(val_miou), 4),
        "chance_miou": {k: round(v, 4) for k, v in chance.items()},
        "official_val_miou": None if official is None else round(official, 4),
    }
    (args.out / "curve.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_curve(args.out / "curve.png", list(range(1, len(val_miou) + 1)), val_miou, chance,
               f"{DEFAULT_MODEL} ({params / 1e6:.2f}M params), {train_w}x{train_h}, "
               f"{args.train} synthetic images, CPU")
    print(json.dumps(result, indent=2))
    print(f"RESULT best_val_miou={max(val_miou):.4f} chance_majority={chance['majority']:.4f} "
          f"chance_random={chance['random']:.4f} official_val_miou={official} "
          f"train_s={train_seconds:.0f} epochs={len(val_miou)}")


if __name__ == "__main__":
    main()

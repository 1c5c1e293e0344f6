"""`cityseg train`: train a model from a YAML config into a run directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cityseg.errors import CitysegError
from cityseg.training.config import load_train_config
from cityseg.training.distribute import JOIN_TIMEOUT_S
from cityseg.training.train import train


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train a model from a YAML config",
        description="Trains the model of --config into RUN_DIR: checkpoints/, history.csv, "
                    "history.png, previews/, tensorboard/ and bundle/ (the model bundle). "
                    "A killed run continues with --resume.")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="training config (e.g. training_configs/recommended.yaml); with --resume it "
                        "defaults to RUN_DIR/config.yaml")
    p.add_argument("--data-root", type=Path, metavar="DIR",
                   help="Cityscapes root holding leftImg8bit/ and gtFine/ (overrides data.root)")
    p.add_argument("--out", required=True, type=Path, metavar="RUN_DIR", help="run directory")
    p.add_argument("--epochs", type=_positive_int, metavar="N",
                   help="total epochs (overrides the config; with --resume: train up to N)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in RUN_DIR from checkpoints/last.keras; a RUN_DIR that does "
                        "not exist yet (or is empty) starts the run, so the same command starts "
                        "and continues a long background run")
    p.add_argument("--force", action="store_true",
                   help="start over in a non-empty RUN_DIR, deleting the previous run's outputs")
    p.add_argument("--join-timeout", type=_positive_int, metavar="S", default=None,
                   help="distribute: multi_worker only: seconds to wait for every worker of "
                        "TF_CONFIG to start (default 300)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = args.config
    if config is None:
        if not args.resume:
            raise CitysegError("--config FILE is required to start a run (e.g. "
                               "training_configs/demo.yaml); only --resume may omit it")
        config = args.out / "config.yaml"
    overrides = {}
    if args.data_root is not None:
        overrides["data__root"] = str(args.data_root)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    cfg = load_train_config(config, **overrides)
    try:
        bundle = train(cfg, args.out, resume=args.resume, force=args.force, progress=not args.quiet,
                       join_timeout=args.join_timeout or JOIN_TIMEOUT_S)
    except KeyboardInterrupt:
        print(f"cityseg train: interrupted; continue with `cityseg train --out {args.out} --resume`",
              file=sys.stderr)
        raise
    if bundle is not None:
        metrics = bundle.card.metrics
        print(f"best val mIoU {metrics.get('miou', float('nan')):.4f} at epoch "
              f"{metrics.get('best_epoch')}; model bundle: {bundle.path}")
    else:
        print(f"cityseg train: this worker is done; the chief wrote the run to {args.out}")
    return 0

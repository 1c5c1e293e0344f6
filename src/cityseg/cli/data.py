"""`cityseg data check`: read every pair of every split of a training config's data once."""

from __future__ import annotations

import argparse
from pathlib import Path

from cityseg.data.layouts import LAYOUTS


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="check a dataset before training",
                       description="Dataset tools. `cityseg data check --config FILE` reads every "
                                   "image/annotation pair of train, val (and test) once.")
    tools = p.add_subparsers(dest="data_command", metavar="TOOL", required=True)
    check = tools.add_parser(
        "check", help="read every pair of every split once and report what the data holds",
        description="Reads every image and annotation of the config's data (train, val and test "
                    "where the layout has one) and prints images per split, image sizes and the "
                    "pixel share of every class and of void. Exits 2 naming each file on a missing "
                    "or extra partner, a size mismatch, a value that is neither a class nor void, "
                    "an unreadable or empty file, or an empty split. Writes nothing.")
    check.add_argument("--config", required=True, type=Path, metavar="FILE",
                       help="training config whose data: section names layout, label set and root")
    check.add_argument("--data-root", type=Path, metavar="DIR", help="dataset root (overrides data.root)")
    check.add_argument("--layout", choices=LAYOUTS, help="dataset layout (overrides data.layout)")
    check.add_argument("--quiet", action="store_true", help="no progress bars")
    check.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cityseg.config import ConfigError
    from cityseg.data.check import check_dataset, format_report
    from cityseg.training.config import load_train_config

    overrides = {}
    if args.data_root is not None:
        overrides["data__root"] = str(args.data_root)
    if args.layout is not None:
        overrides["data__layout"] = args.layout
    if not args.config.is_file():
        raise ConfigError(f"{args.config}: no such config file (--config)")
    cfg = load_train_config(args.config, **overrides)
    print(format_report(check_dataset(cfg.data, progress=not args.quiet)))
    return 0

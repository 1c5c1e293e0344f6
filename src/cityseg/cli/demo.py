"""`cityseg demo`: the whole product on generated data (what `make demo` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cityseg.cli import positive_int
from cityseg.demo import DemoSettings, run_demo


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="synthetic data -> train -> export -> bag replay -> report",
                       description="Runs every stage of cityseg on generated data in a few minutes "
                                   "on a CPU and leaves the products and a report.md in --out.")
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output directory")
    p.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    p.add_argument("--epochs", type=positive_int, default=None, help="override the demo config's epochs")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    paths = run_demo(args.out, DemoSettings(epochs=args.epochs), force=args.force)
    print()
    print(f"Demo finished. Everything is in {paths.root}/ — start with {paths.report}")
    for label, path in [("model bundle", paths.bundle), ("overlay strip", paths.strip),
                        ("training history", paths.history), ("val mIoU", paths.miou_table),
                        ("segmented bag", paths.segmented_bag)]:
        print(f"  {label:<17} {path}")
    print()
    print("Next:")
    print("  cityseg train --config training_configs/recommended.yaml --data-root /data/cityscapes --out runs/rec")
    print(f"  ros2 launch cityseg segmentation.launch.py model:={paths.bundle.resolve()} image:=/camera/image_raw")
    return 0

"""`cityseg synth`: synthetic street scenes in the exact Cityscapes layout (test and demo data)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cityseg.cli import parse_dimensions
from cityseg.synthetic.dataset import DEFAULT_SIZE, DEFAULT_SPLITS, write_dataset

MAX_SIDE = 8192
"""Largest scene side (4x Cityscapes' 2048): bigger sizes are refused before any memory is taken."""


def parse_size(text: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' -> (width, height), as image sizes are written (2048x1024)."""
    return parse_dimensions(text, "WIDTHxHEIGHT", limit=MAX_SIDE)


def parse_fractions(text: str) -> dict[str, float]:
    """'train=0.7,val=0.15,test=0.15' -> {'train': 0.7, 'val': 0.15, 'test': 0.15}."""
    try:
        pairs = (item.split("=") for item in text.split(",") if item.strip())
        return {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SPLIT=FRACTION,..., e.g. train=0.8,val=0.2") from None


def add_parser(sub) -> None:
    p = sub.add_parser("synth", help="generate synthetic street scenes in Cityscapes layout",
                       description="Writes leftImg8bit/<split>/<city>/*_leftImg8bit.png and "
                                   "gtFine/<split>/<city>/*_gtFine_{labelIds,color}.png, usable "
                                   "wherever a Cityscapes root is expected (--data-root).")
    p.add_argument("--out", required=True, type=Path, help="output folder (the data root)")
    p.add_argument("--count", required=True, type=int, help="number of scenes over all splits")
    p.add_argument("--size", type=parse_size, default=None, metavar="WxH",
                   help="image size (default 1024x512; Cityscapes itself is 2048x1024)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    p.add_argument("--split-fractions", type=parse_fractions, default=None, metavar="SPLIT=F,...",
                   help="share of the scenes per split folder (default train=0.8,val=0.2)")
    p.add_argument("--force", action="store_true", help="write into a folder that already holds a dataset")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import time

    size = args.size or DEFAULT_SIZE
    start = time.perf_counter()
    counts = write_dataset(args.out, args.count, size, args.seed, args.split_fractions or DEFAULT_SPLITS,
                           force=args.force, progress=True)
    summary = ", ".join(f"{split} {n}" for split, n in counts.items())
    print(f"wrote {sum(counts.values())} scenes ({summary}) of {size[0]}x{size[1]} to {args.out} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0

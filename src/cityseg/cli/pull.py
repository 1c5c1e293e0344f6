"""`cityseg pull`: a pretrained model from the registry, downloaded, verified and imported into models/."""

from __future__ import annotations

import argparse
from pathlib import Path

from cityseg.acquisition import registry
from cityseg.acquisition.pull import pull
from cityseg.errors import InputError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pull", help="download and import a pretrained model (cityseg pull --list shows them)",
        description="Downloads NAME's file from its publisher (resuming a broken download), checks its byte "
                    "size and sha256 against the registry, imports it (cityseg import) and runs the import "
                    "check in a staging folder, and only then moves the bundle to --out (default "
                    "models/NAME, where --model NAME finds it). See docs/MODELS.md, 'Pretrained models'.")
    p.add_argument("name", nargs="?", metavar="NAME", help="registry name, e.g. coral-deeplab-cityscapes")
    p.add_argument("--list", action="store_true", help="print the registry's models and exit")
    p.add_argument("--out", type=Path, metavar="BUNDLE", help="bundle directory to write (default: models/NAME)")
    p.add_argument("--from", dest="source", metavar="FILE|URL",
                   help="take the file from here (fetched elsewhere, or a mirror) instead of the publisher's "
                        "URL; the same size and sha256 checks apply")
    p.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.list:
        given = [flag for flag, value in (("NAME", args.name), ("--out", args.out), ("--from", args.source),
                                          ("--force", args.force)) if value]
        if given:
            raise InputError(f"--list only prints the registry; drop {', '.join(given)} (or drop --list to pull)")
        print(registry.table())
        return 0
    if not args.name:
        raise InputError("give the NAME of a model to pull, or --list to see them")
    model = registry.lookup(args.name)

    bundle = pull(model, args.out or Path("models") / model.name, source=args.source, force=args.force)
    card = bundle.card
    from cityseg.cli.import_ import tensorrt_line

    print(tensorrt_line(bundle))
    print(f"wrote {bundle.path}: {card.name}, {card.input_height}x{card.input_width} {card.input_dtype} "
          f"{card.channel_order}, {card.num_classes} classes ({card.space.name}); licence {model.licence}. "
          f"Run it with --model {model.name}" + (" (a bundle outside ./models: give its path)"
                                                 if args.out else ""))
    return 0

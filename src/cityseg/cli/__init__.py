"""`cityseg <command>`: thin argument parsing; each command lives in its own module here.

Every command module defines ``add_parser(subparsers)`` and ``run(args) -> int``. Heavy
libraries are imported inside ``run`` so `cityseg --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading

from cityseg import __version__
from cityseg.errors import CitysegError

COMMANDS = ("synth", "train", "evaluate", "export", "import", "segment", "bag", "fleet", "bench", "demo")
"""Commands, in the order `--help` lists them; each is the module cityseg.cli.<name> (``import``:
``import_``, a keyword)."""


def parse_dimensions(text: str, order: str) -> tuple[int, int]:
    """'1024x512' -> (1024, 512); ``order`` ('WIDTHxHEIGHT' or 'HEIGHTxWIDTH') names the form in errors."""
    try:
        first, second = (int(v) for v in text.lower().split("x"))
        if first <= 0 or second <= 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {order} with positive integers, "
                                         f"e.g. {'1024x512' if order.startswith('W') else '256x512'}") from None
    return first, second


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cityseg", description="Semantic segmentation of street scenes (Cityscapes).")
    parser.add_argument("--version", action="version", version=f"cityseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"cityseg.cli.{'import_' if name == 'import' else name}")
        module.add_parser(sub)
    return parser


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM (what launch, systemd and docker send), so staged
    outputs are cleaned up exactly as on Ctrl-C."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cityseg` console script."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        return int(args.run(args) or 0)
    except CitysegError as exc:
        if args.verbose:
            raise
        print(f"cityseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cityseg {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"cityseg {args.command}: terminated (SIGTERM); partial output removed", file=sys.stderr)
        return 143
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

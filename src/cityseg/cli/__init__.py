"""`cityseg <command>`: thin argument parsing; each command lives in its own module here.

Every command module defines ``add_parser(subparsers)`` and ``run(args) -> int``. Heavy
libraries are imported inside ``run`` so `cityseg --help` stays instant.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import math
import os
import re
import signal
import sqlite3
import sys
import threading

from cityseg import __version__
from cityseg.errors import CitysegError

COMMANDS = ("synth", "data", "train", "evaluate", "export", "import", "pull", "segment", "bag", "fleet", "bench",
            "demo")
"""Commands, in the order `--help` lists them; each is the module cityseg.cli.<name> (``import``:
``import_``, a keyword)."""


def parse_dimensions(text: str, order: str, limit: int | None = None) -> tuple[int, int]:
    """'1024x512' -> (1024, 512); ``order`` ('WIDTHxHEIGHT' or 'HEIGHTxWIDTH') names the form in errors;
    ``limit``: the largest side accepted (checked here, before anything is allocated)."""
    try:
        first, second = (int(v) for v in text.lower().split("x"))
        if first <= 0 or second <= 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {order} with positive integers, "
                                         f"e.g. {'1024x512' if order.startswith('W') else '256x512'}") from None
    if limit is not None and max(first, second) > limit:
        raise argparse.ArgumentTypeError(f"{text!r} is too large: each side must be at most {limit} pixels")
    return first, second


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def finite_float(text: str) -> float:
    """An argparse type: a finite number (NaN and infinity refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


_OS_FIXES = {
    errno.ENOSPC: "the disk is full; free space or write elsewhere, then run again",
    errno.EDQUOT: "the disk quota is used up; free space or write elsewhere, then run again",
    errno.EROFS: "it is on a read-only file system; choose a writable location",
    errno.EACCES: "choose a location you may write to, or fix its permissions",
    errno.EPERM: "choose a location you may write to, or fix its permissions",
    errno.ENOTDIR: "a part of the path is a file, not a directory; choose another path",
    errno.EISDIR: "it is a directory where a file is expected; choose a file path",
    errno.EEXIST: "it already exists; remove it or choose another path",
    errno.ENOENT: "check the path",
}


def describe_failure(exc: BaseException) -> str:
    """'<what>: <problem>; <fix>' for an OSError, UnicodeDecodeError, sqlite3 error or MemoryError
    that reached the CLI."""
    if isinstance(exc, OSError):
        what = exc.filename if exc.filename is not None else "a file operation"
        problem = exc.strerror or str(exc) or type(exc).__name__
        fix = _OS_FIXES.get(exc.errno, "check the path and the disk")
        return f"{what}: {problem}; {fix}"
    if isinstance(exc, UnicodeDecodeError):
        return (f"input text: not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                "re-save the file as UTF-8")
    if isinstance(exc, sqlite3.Error):  # rosbag2's sqlite3 storage
        full = "full" in str(exc)
        return (f"the sqlite3 bag being written: {exc}; "
                + ("free space or write elsewhere, then run again" if full else "check the output location"))
    if isinstance(exc, MemoryError):
        return "memory: ran out of memory; use a smaller size, count or batch"
    return f"{type(exc).__name__}: {exc}"


def _strip_prefix(message: str, command: str) -> str:
    """A message that already names the command ('cityseg fleet: ...') is not prefixed twice."""
    return re.sub(rf"^cityseg {re.escape(command)}:( error:)? ", "", message)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cityseg", description="Semantic segmentation of street scenes (Cityscapes).")
    parser.add_argument("--version", action="version", version=f"cityseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of any error (otherwise one line, exit 2)")
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
        if args.verbose or args.debug:
            raise
        print(f"cityseg {args.command}: error: {_strip_prefix(str(exc), args.command)}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError, MemoryError, sqlite3.Error) as exc:
        if args.debug:
            raise
        print(f"cityseg {args.command}: error: {describe_failure(exc)} (--debug shows the traceback)",
              file=sys.stderr)
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

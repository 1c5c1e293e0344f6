"""Writing a bundle without losing anything the user had: `cityseg import` and `cityseg pull`.

The new bundle is written into a hidden staging folder beside its destination
(``.<name>.<tag>-staging``) and swapped in only when complete (:func:`staged_bundle`). Before any
work, :func:`check_destination` refuses a destination that holds what the command must not touch:
a folder that is not a bundle, a bundle without ``--force``, a symbolic link, or the very file the
command reads. ``--force`` replaces only the old bundle's own files (:func:`own_files`); every
other file in the folder stays. A failure removes the staging folder and every folder the command
created for the destination.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cityseg.bundle.card import CARD_FILE
from cityseg.errors import BundleError, InputError

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".json"
"""``<engine>.json``: a TensorRT engine's sidecar (:mod:`cityseg.tensorrt.engine_cache`), the bundle's own."""
TIMING_CACHE_GLOB = "timing.*.cache"
"""TensorRT timing caches the converter writes into a bundle, the bundle's own."""


def staging_dir(out: Path, tag: str) -> Path:
    """The hidden folder a ``tag`` command ('import', 'pull') writes the bundle ``out`` in."""
    out = Path(out)
    return out.parent / f".{out.name}.{tag}-staging"


def _inside(relative: str) -> bool:
    lexical = os.path.normpath(relative)
    return not (Path(relative).is_absolute() or lexical == ".." or lexical.startswith(".." + os.sep))


def own_files(root: Path) -> set[str]:
    """The files in ``root`` that belong to the bundle there, relative to it: the card, the artifacts
    it lists, their sidecars and the TensorRT timing caches. The card is read as plain JSON, so a
    bundle with a corrupt or outdated card can still be replaced; no card: nothing is the bundle's."""
    root = Path(root)
    if not (root / CARD_FILE).is_file():
        return set()
    owned = {CARD_FILE}
    try:
        artifacts = json.loads((root / CARD_FILE).read_text()).get("artifacts") or {}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        artifacts = {}
    for entry in artifacts.values() if isinstance(artifacts, dict) else ():
        relative = entry.get("path") if isinstance(entry, dict) else None
        if isinstance(relative, str) and relative and _inside(relative):
            owned.add(os.path.normpath(relative))
            if entry.get("format") == "tensorrt":
                owned.add(os.path.normpath(relative) + SIDECAR_SUFFIX)
    owned.update(p.name for p in root.glob(TIMING_CACHE_GLOB))
    return {f for f in owned if (root / f).is_file() or f == CARD_FILE}


def check_destination(out: Path, *, force: bool, inputs: Iterable[Path] = (), flag: str = "--out") -> None:
    """Refuse, before anything is read or converted, a destination ``out`` whose files the command
    must not replace: one holding an input, a symbolic link, a file, a folder that is not a bundle
    (even with --force), or a bundle without ``force``."""
    out = Path(out)
    if out.is_symlink():
        raise InputError(f"{flag} {out}: is a symbolic link (to {os.readlink(out)}); give the folder it "
                         "points to, or another path")
    if out.exists() and not out.is_dir():
        raise InputError(f"{flag} {out}: is a file, not a folder; choose a new folder for the bundle")
    target = out.resolve()
    for given in inputs:
        source = Path(given).resolve()
        if source == target or target in source.parents:
            raise InputError(f"{given}: lies inside {flag} {out}, which the new bundle would replace; copy "
                             "the file out of that folder first, or choose another " + flag)
    if not out.exists():
        return
    if (out / CARD_FILE).exists():
        if not force:
            raise BundleError(f"{out}: a model bundle already exists there; choose another {flag} or pass "
                              "--force to replace it")
        return
    held = sorted(p.name for p in out.iterdir())
    if held:
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise BundleError(f"{out}: exists and is not a model bundle (it holds {shown}); choose a new or "
                          f"empty folder for {flag} (--force only replaces a bundle)")


def _make_parents(folder: Path, flag: str, out: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the folders created, deepest first."""
    created = []
    for parent in [folder, *folder.parents]:
        if parent.exists():
            break
        created.append(parent)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(created)
        raise InputError(f"{flag} {out}: cannot create its folder {exc.filename or folder} "
                         f"({exc.strerror or exc}); choose a location you may write to") from None
    return created


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (something else was put there meanwhile), or gone


@contextmanager
def staged_bundle(out: Path, *, force: bool, inputs: Iterable[Path] = (), tag: str = "import",
                  flag: str = "--out") -> Iterator[Path]:
    """Yield an empty staging folder to write the bundle ``out`` into; when the block ends without
    an error, swap it in (:func:`swap_in`). On any error nothing at ``out`` has changed, and the
    staging folder and every folder made for ``out`` are removed. Anything written into the staging
    folder that the card does not list (downloads, scratch files) is dropped, not swapped in."""
    out = Path(out) if Path(out).name not in ("", "..") else Path(os.path.abspath(out))  # `--out .`
    inputs = [Path(p) for p in inputs]
    check_destination(out, force=force, inputs=inputs, flag=flag)
    created = _make_parents(out.parent, flag, out)
    staging = staging_dir(out, tag)
    done = False
    try:
        shutil.rmtree(staging, ignore_errors=True)  # left by a run that was killed
        try:
            staging.mkdir()
        except OSError as exc:
            raise InputError(f"{flag} {out}: cannot write beside it in {out.parent} ({exc.strerror or exc}); "
                             "choose a location you may write to") from None
        yield staging
        swap_in(staging, out, inputs=inputs)
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done:
            _remove_empty(created)


def swap_in(staging: Path, out: Path, *, inputs: Iterable[Path] = ()) -> None:
    """Move the complete bundle in ``staging`` to ``out``: a rename when ``out`` is new; else the
    old bundle's card is removed first (a half-replaced bundle never looks complete), the new files
    are moved in, the old bundle's files the new one does not have are deleted, and the new card
    comes last. Files in ``out`` that are not the old bundle's own are kept, and never replaced."""
    staging, out = Path(staging), Path(out)
    new = own_files(staging)
    if CARD_FILE not in new:
        raise BundleError(f"{staging}: the staged bundle has no {CARD_FILE}; nothing was replaced")
    for entry in staging.iterdir():  # downloads and scratch files of the command
        if entry.name not in {Path(f).parts[0] for f in new}:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    if not out.exists():
        os.replace(staging, out)
        return
    check_destination(out, force=True, inputs=inputs)  # nothing changed there while we worked
    old = own_files(out)
    foreign = sorted(f for f in new if f not in old and (out / f).exists())
    if foreign:
        raise BundleError(f"{out / foreign[0]}: is not a file of the bundle there, and the new bundle has a "
                          "file of that name; move it away or choose another --out (nothing was replaced)")
    (out / CARD_FILE).unlink(missing_ok=True)
    for relative in sorted(new - {CARD_FILE}):
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / relative, out / relative)
    for relative in sorted(old - new):
        (out / relative).unlink(missing_ok=True)
    os.replace(staging / CARD_FILE, out / CARD_FILE)
    kept = sorted(p.name for p in out.iterdir() if p.name not in {Path(f).parts[0] for f in new})
    if kept:
        log.info("%s: kept %d file(s) that are not the bundle's own: %s", out, len(kept), ", ".join(kept[:5]))

"""File helpers: atomic writes and image reading/writing with actionable errors."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from cityseg.errors import CitysegError, InputError


def _default_file_mode() -> int:
    """The mode a plain open() would give a new file under this process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    A crash or exception leaves the previous file (if any) untouched and no partial file behind.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix,
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_file():
            os.chmod(tmp, _FILE_MODE)  # mkstemp creates 0600; give the file its usual permissions
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_file(path: str | os.PathLike, what: str, *, empty_ok: bool = True) -> Path:
    """``path`` as a Path if it is a regular file; InputError saying what it is instead (missing, a
    directory, or - unless ``empty_ok`` - an empty file), ``what`` naming the expected file."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a file; give the {what} file itself")
    if not p.is_file():
        raise InputError(f"{p}: no such {what} file; check the path")
    if not empty_ok and p.stat().st_size == 0:
        raise InputError(f"{p}: empty file (0 bytes), not a usable {what} file; copy it again or give another")
    return p


def check_writable_location(path: str | os.PathLike, option: str) -> None:
    """Before a long run: InputError unless ``path`` (a file to write later) can be created: its
    nearest existing ancestor is a directory this process may write to."""
    p = Path(path).absolute()
    ancestor = p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{option} {path}: {ancestor} is a file, not a directory; choose another path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot write in {ancestor} (read-only or no permission); "
                         "choose a writable location")


def read_image(path: str | os.PathLike, *, grayscale: bool = False) -> np.ndarray:
    """Read an 8-bit image file: BGR uint8 HxWx3 (or HxW with ``grayscale``).

    Raises InputError naming the file when it is missing, not an image, or empty.
    """
    p = require_file(path, "image")
    raw = np.fromfile(p, dtype=np.uint8)
    if raw.size == 0:
        raise InputError(f"{p}: the file is empty; it is not an image")
    flags = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR
    image = cv2.imdecode(raw, flags)
    if image is None or image.size == 0:
        raise InputError(f"{p}: cannot decode it as an image (PNG, JPEG, ...); is it an image file?")
    return image


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel label PNG (e.g. ``*_gtFine_labelIds.png``) as uint8 HxW."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such label file; check the path")
    image = cv2.imdecode(np.fromfile(p, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise InputError(f"{p}: cannot decode it as a label PNG")
    if image.ndim != 2:
        raise InputError(f"{p}: a label image must have one channel, found {image.shape[2]}; "
                         "use the *_labelIds.png / *_trainIds.png files, not the colour ones")
    if image.dtype != np.uint8:
        raise InputError(f"{p}: a label image must be 8-bit, found {image.dtype}")
    return image


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Encode ``image`` (HxW or HxWx3 BGR uint8) as PNG and write it atomically."""
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise InputError(f"{path}: OpenCV could not encode an image of shape {image.shape} "
                         f"and dtype {image.dtype} as PNG")
    write_bytes_atomic(path, encoded.tobytes())


# ------------------------------------------------------------------------------------------
# Outputs a command owns: --force replaces only those; staged writes that clean up after themselves
# ------------------------------------------------------------------------------------------

def output_marker(command: str) -> str:
    """The file a command writes into each output directory it makes (``.cityseg-bag``), so a
    later ``--force`` can tell its own output from anything else."""
    return f".cityseg-{command}"


def is_own_output(path: str | os.PathLike, command: str) -> bool:
    """True if ``path`` is a real directory (not a link) holding ``command``'s marker."""
    p = Path(path)
    return p.is_dir() and not p.is_symlink() and (p / output_marker(command)).is_file()


def check_replaceable(path: str | os.PathLike, command: str, force: bool, *, what: str = "output") -> bool:
    """The one ``--force`` rule: True if ``path`` exists and is an earlier output of ``command``
    (so it may be replaced), False if nothing is there; CitysegError naming it otherwise."""
    p = Path(path)
    if not (p.exists() or p.is_symlink()):
        return False
    if not force:
        raise CitysegError(f"{p} already exists; choose another {what} path or pass --force to replace "
                           f"an earlier `cityseg {command}` output there")
    if not is_own_output(p, command):
        kind = "a directory" if p.is_dir() and not p.is_symlink() else "a file" if p.is_file() else "a link"
        raise CitysegError(f"{p} is {kind} that `cityseg {command}` did not write (no "
                           f"{output_marker(command)} in it); --force only replaces an earlier "
                           f"`cityseg {command}` output - choose another {what} path")
    return True


def write_output_marker(directory: str | os.PathLike, command: str) -> None:
    """Mark ``directory`` as ``command``'s output (see :func:`check_replaceable`)."""
    (Path(directory) / output_marker(command)).write_text(
        f"written by `cityseg {command}`; `cityseg {command} --force` may replace this directory\n")


def _staging_suffix(command: str) -> str:
    return f".cityseg-{command}-partial"


_OWNER = "owner.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear_stale_partials(target: str | os.PathLike, command: str) -> list[Path]:
    """Remove what an interrupted ``command`` left while writing ``target``
    (``.<name>.<random>.cityseg-<command>-partial`` whose owning process is gone); returns them."""
    import glob
    import re
    import shutil

    t = Path(target)
    suffix = _staging_suffix(command)
    pattern = re.compile(rf"\.{re.escape(t.name)}\.[a-z0-9_]{{8}}{re.escape(suffix)}")
    removed = []
    for stale in t.parent.glob(f".{glob.escape(t.name)}.*{suffix}"):
        if not pattern.fullmatch(stale.name) or stale.is_symlink() or not stale.is_dir():
            continue
        try:
            owner = int((stale / _OWNER).read_text())
        except (OSError, ValueError):
            owner = None
        if owner is not None and owner != os.getpid() and _alive(owner):
            continue  # another run is writing it now
        shutil.rmtree(stale, ignore_errors=True)
        removed.append(stale)
    return removed


@contextlib.contextmanager
def staged_output(target: str | os.PathLike, command: str, force: bool = False) -> Iterator[Path]:
    """Yield a fresh path ``<staging>/<name>`` beside ``target`` for ``command`` to write a directory
    into; on success mark it as ``command``'s output and move it to ``target`` (replacing an earlier
    output of ``command`` only, see :func:`check_replaceable`). Any exception (Ctrl-C, SIGTERM via
    the CLI) removes the staging; a later run removes stale staging its interrupted runs left."""
    import shutil

    t = Path(target)
    t.parent.mkdir(parents=True, exist_ok=True)
    clear_stale_partials(t, command)
    check_replaceable(t, command, force)
    staging = Path(tempfile.mkdtemp(prefix=f".{t.name}.", suffix=_staging_suffix(command), dir=t.parent))
    try:
        (staging / _OWNER).write_text(str(os.getpid()))
        staged = staging / t.name  # rosbags names the storage file after the directory
        yield staged
        staged.mkdir(exist_ok=True)
        write_output_marker(staged, command)
        if check_replaceable(t, command, force):
            os.replace(t, staging / f"{t.name}.replaced")
        os.replace(staged, t)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

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

from cityseg.errors import InputError


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


def read_image(path: str | os.PathLike, *, grayscale: bool = False) -> np.ndarray:
    """Read an 8-bit image file: BGR uint8 HxWx3 (or HxW with ``grayscale``).

    Raises InputError naming the file when it is missing, not an image, or empty.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file; check the path")
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

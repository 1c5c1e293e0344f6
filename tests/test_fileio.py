"""Atomic writes and image reading with actionable errors."""

import os

import cv2
import numpy as np
import pytest

from cityseg.errors import InputError
from cityseg.fileio import atomic_path, read_image, read_label_png, write_bytes_atomic, write_png


def test_atomic_writes_get_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    write_bytes_atomic(tmp_path / "card.json", b"{}")
    assert (tmp_path / "card.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.keras"
    target.write_bytes(b"good")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_png_roundtrip_and_label_checks(tmp_path):
    mask = np.arange(34, dtype=np.uint8).reshape(2, 17)
    write_png(tmp_path / "x_labelIds.png", mask)
    assert np.array_equal(read_label_png(tmp_path / "x_labelIds.png"), mask)
    color = np.zeros((2, 17, 3), np.uint8)
    write_png(tmp_path / "x_color.png", color)
    assert read_image(tmp_path / "x_color.png").shape == (2, 17, 3)
    with pytest.raises(InputError, match="must have one channel"):
        read_label_png(tmp_path / "x_color.png")
    cv2.imwrite(str(tmp_path / "deep.png"), np.zeros((2, 2), np.uint16))
    with pytest.raises(InputError, match="must be 8-bit"):
        read_label_png(tmp_path / "deep.png")


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="nope.png: no such image file"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "adir.png").mkdir()
    with pytest.raises(InputError, match="adir.png: is a directory, not a file"):
        read_image(tmp_path / "adir.png")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(InputError, match="text.png: cannot decode"):
        read_image(tmp_path / "text.png")

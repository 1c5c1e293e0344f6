"""Fixtures for the data tests: tiny Cityscapes trees written as real PNG files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cityseg.fileio import write_png


def write_pair(root: Path, split: str, city: str, key: str, image_rgb: np.ndarray,
               label_ids: np.ndarray | None, label_city: str | None = None) -> None:
    """Write one image (and its labelIds PNG unless None) in Cityscapes layout."""
    write_png(root / "leftImg8bit" / split / city / f"{key}_leftImg8bit.png",
              cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if label_ids is not None:
        write_png(root / "gtFine" / split / (label_city or city) / f"{key}_gtFine_labelIds.png", label_ids)


def flat_pair(value: int, height: int = 16, width: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """An image whose every pixel is ``value`` and a label whose every pixel is ``value`` too."""
    return np.full((height, width, 3), value, np.uint8), np.full((height, width), value, np.uint8)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A small synthetic Cityscapes tree: 6 train + 2 val scenes of 128x64."""
    from cityseg.data.synth import write_dataset

    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, 8, size=(128, 64), seed=3, splits={"train": 0.75, "val": 0.25})
    return root


class TreeWriter:
    """Helpers handed to tests by the ``tree`` fixture."""

    write_pair = staticmethod(write_pair)
    flat_pair = staticmethod(flat_pair)


@pytest.fixture
def tree() -> type[TreeWriter]:
    return TreeWriter

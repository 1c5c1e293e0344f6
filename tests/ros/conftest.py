"""Fixtures of the ROS tests: a real palette-classifier ONNX bundle and painted frames."""

from __future__ import annotations

import numpy as np
import pytest

from support import make_palette_bundle, painted_scene

FRAME_SIZE = (128, 256)
"""Frames are twice the bundle's 64x128 input, block edges on even pixels: area downscaling
keeps every block pure, so the palette classifier's mask at input resolution is exact."""


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    return make_palette_bundle(tmp_path_factory.mktemp("bundle") / "palette", "trainid", 64, 128)


@pytest.fixture(scope="session")
def labelid_bundle(tmp_path_factory):
    return make_palette_bundle(tmp_path_factory.mktemp("bundle") / "palette_labelid", "labelid", 64, 128)


@pytest.fixture
def scene() -> tuple[np.ndarray, np.ndarray]:
    """(RGB frame, trainId mask) at FRAME_SIZE."""
    return painted_scene(*FRAME_SIZE, space_name="trainid", seed=3)

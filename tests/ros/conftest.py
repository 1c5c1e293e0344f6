"""Fixtures of the ROS tests: a real palette-classifier ONNX bundle and painted frames.

Every ROS 2 participant these tests create (in this process or in a node process it starts)
lives in a private, loopback-only graph: a domain id of this run's own, discovery limited to
this host, and the shipped large-images Fast DDS profile - set here, before rclpy starts.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from cityseg.benchmarking.ros_probe import graph_environment
from cityseg.ros.live.dds_profile import PROFILE_FILE

from support import make_palette_bundle, painted_scene

PROFILE = Path(__file__).resolve().parents[2] / "config" / PROFILE_FILE
GRAPH_ENV = graph_environment(100 + os.getpid() % 100, str(PROFILE))
os.environ.clear()
os.environ.update(GRAPH_ENV)

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


@pytest.fixture(scope="module")
def graph():
    """The environment of the private graph (set above), with rclpy initialised for the module's
    probes; the node processes get this environment."""
    rclpy = pytest.importorskip("rclpy", reason="needs rclpy: `pip install -e .[ros]` or a sourced ROS 2")
    rclpy.init()
    yield dict(os.environ)
    rclpy.try_shutdown()

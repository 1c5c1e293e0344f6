"""Fixtures of the fleet tests: a palette-classifier bundle and one local Ray.

Ray starts once per test module (2 CPUs, so 2 workers; a small object store) and the fleet
command, run in this process, uses it as it is.
"""

from __future__ import annotations

import logging
import os

import pytest

from cityseg.fleet.run import LOOPBACK_VARIABLE

from support import make_palette_bundle

os.environ.setdefault(LOOPBACK_VARIABLE, "0")  # a local Ray on 127.0.0.1 only, as cityseg fleet starts it


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    return make_palette_bundle(tmp_path_factory.mktemp("bundle") / "palette", "trainid", 64, 128)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             log_to_driver=False, object_store_memory=80 * 1024 * 1024, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()

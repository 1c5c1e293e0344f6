"""Fixtures of the fleet tests: a palette-classifier bundle and one local Ray.

Ray starts once per test module (2 CPUs, so 2 workers; a small object store) and the fleet
command, run in this process, uses it as it is.
"""

from __future__ import annotations

import logging

import pytest

from support import make_palette_bundle


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    return make_palette_bundle(tmp_path_factory.mktemp("bundle") / "palette", "trainid", 64, 128)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    from cityseg.fleet.run import LOCAL_NODE_IP
    ray.init(address="local", _node_ip_address=LOCAL_NODE_IP, num_cpus=2, include_dashboard=False,
             log_to_driver=False, object_store_memory=80 * 1024 * 1024, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()

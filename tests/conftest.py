"""Suite-wide pytest options: slow tests run only with --runslow (`make test` passes it)."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# `import support` from any test directory. Loaded by path rather than by putting tests/ on sys.path:
# the test folders mirror the package (tests/tensorrt/, ...), and tests/ on sys.path would make
# `import tensorrt` find tests/tensorrt as a namespace package where TensorRT is not installed.
_spec = importlib.util.spec_from_file_location("support", Path(__file__).with_name("support.py"))
support = sys.modules["support"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(support)
_spec = importlib.util.spec_from_file_location("tflite_models", Path(__file__).with_name("tflite_models.py"))
sys.modules["tflite_models"] = importlib.util.module_from_spec(_spec)  # small TFLite models, built by TF
_spec.loader.exec_module(sys.modules["tflite_models"])


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (minutes-long end-to-end runs)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow end-to-end test: run with --runslow (make test does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)

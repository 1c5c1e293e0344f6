"""The runtime path loads no converter and no acquisition module: a process that imports the node
(its frame processor, fusion and tf2 lookup), every backend and the TensorRT runtime, and segments a
frame on ONNX Runtime (and OpenVINO where installed), has no cityseg.export / cityseg.acquisition
module loaded. .importlinter states the same rule statically (`make lint`)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from support import make_palette_bundle

RUNTIME = ["cityseg.ros.live.main", "cityseg.ros.live.node", "cityseg.ros.live.fusion", "cityseg.ros.live.tf_lookup",
           "cityseg.ros.core.processor", "cityseg.ros.bag.replay", "cityseg.inference.backends.onnxruntime",
           "cityseg.inference.backends.openvino", "cityseg.inference.backends.tensorrt", "cityseg.tensorrt.runtime",
           "cityseg.tensorrt.engine_cache"]

CODE = """
import importlib, json, sys
import numpy as np
from cityseg.bundle import Bundle
from cityseg.inference import Segmenter
bundle, backends, modules = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
for name in modules:
    importlib.import_module(name)
for backend in backends:
    Segmenter(Bundle.load(bundle), backend=backend).segment(np.zeros((64, 128, 3), np.uint8))
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("cityseg.export", "cityseg.acquisition")))))
"""


def test_running_the_node_and_the_backends_loads_no_converter(tmp_path):
    if importlib.util.find_spec("rclpy") is None:
        pytest.skip("needs rclpy (the ros extra)")
    bundle = make_palette_bundle(tmp_path / "b")
    backends = ["onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    out = subprocess.run([sys.executable, "-c", CODE, str(bundle.path), ",".join(backends), ",".join(RUNTIME)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_probe_sees_a_converter_module_when_one_is_loaded(tmp_path):
    """The check above can fail: loading the importer shows up in the same probe."""
    bundle = make_palette_bundle(tmp_path / "b")
    out = subprocess.run([sys.executable, "-c", CODE, str(bundle.path), "onnxruntime",
                          "cityseg.acquisition.importer"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "cityseg.acquisition.importer" in json.loads(out.stdout.strip().splitlines()[-1])

"""OpenVINO on the CPU: compile a bundle's ONNX with a precision hint, a latency hint and bounded threads.

Shared by the converter (gate and latency of bf16 / int8 on OpenVINO at export) and the ``openvino``
inference backend, which uses it without importing the converter. OpenVINO is imported inside.

* fp32 and int8 (Q/DQ) ONNX run with ``INFERENCE_PRECISION_HINT=f32``: the int8 graph's quantized
  ops run as int8 kernels (VNNI where the CPU has it), everything else in fp32 - never an
  unasked-for reduced precision;
* bf16 runs the fp32 ONNX with ``INFERENCE_PRECISION_HINT=bf16``, only where the CPU reports BF16
  in ``OPTIMIZATION_CAPABILITIES``;
* ``PERFORMANCE_HINT=LATENCY``, one stream, ``INFERENCE_NUM_THREADS`` = the cores this process may
  use (``CITYSEG_OPENVINO_THREADS`` lowers it), no CPU pinning (the cores are shared with
  postprocessing and the ROS executor, as with ONNX Runtime's no-spinning setting);
* a dynamic batch is fixed to one frame (given ``frame_shape``): OpenVINO's CPU plugin cannot compile
  some graphs with a dynamic batch (fast_scnn's channel shuffle), and a latency-hinted CPU request
  runs one frame anyway; larger batches are split into calls of one frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cityseg.errors import BackendUnavailable

PRECISION_HINTS = {"fp32": "f32", "int8": "f32", "fp16": "f16", "bf16": "bf16"}
THREADS_ENV = "CITYSEG_OPENVINO_THREADS"


def unavailable_reason() -> str | None:
    """Why OpenVINO cannot run here (None when it can)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "openvino is not installed (pip install 'cityseg[openvino]')"
    return None


def cpu_capabilities() -> tuple[str, ...]:
    """The CPU plugin's OPTIMIZATION_CAPABILITIES (e.g. FP32, BF16, INT8); empty without OpenVINO."""
    if unavailable_reason():
        return ()
    import openvino as ov

    return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def cpu_has_bf16() -> bool:
    return "BF16" in cpu_capabilities()


def thread_count() -> int:
    """The cores this process may use, at most ``CITYSEG_OPENVINO_THREADS`` when set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = os.environ.get(THREADS_ENV, "")
    return max(1, min(cores, int(limit))) if limit.isdigit() and int(limit) > 0 else cores


class OpenVinoRunner:
    """One compiled ONNX model on the CPU: ``infer_all(batch)`` -> {output name: array}."""

    def __init__(self, path: Path, precision: str = "fp32", frame_shape: tuple[int, ...] | None = None):
        reason = unavailable_reason()
        if reason:
            raise BackendUnavailable(f"OpenVINO cannot run {path}: {reason}")
        if precision == "bf16" and not cpu_has_bf16():
            raise BackendUnavailable(f"{path}: bf16 needs a CPU that reports BF16 to OpenVINO (AVX512_BF16 "
                                     f"or AMX); this one reports {', '.join(cpu_capabilities())} - run the "
                                     "fp32 or int8 artifact instead")
        import openvino as ov
        import openvino.properties.hint as hints

        self.path, self.precision = Path(path), precision
        core = ov.Core()
        config = {hints.performance_mode: hints.PerformanceMode.LATENCY,
                  hints.inference_precision: PRECISION_HINTS[precision],
                  "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": thread_count(), "ENABLE_CPU_PINNING": False}
        self.thread_count = config["INFERENCE_NUM_THREADS"]
        try:
            model = core.read_model(str(self.path))
            if frame_shape is not None and model.input(0).get_partial_shape()[0].is_dynamic:
                model.reshape({model.input(0): [1, *frame_shape]})  # one frame per request (see module doc)
            self.compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as exc:
            raise BackendUnavailable(f"{self.path}: OpenVINO cannot compile this model ({exc}); run it on "
                                     "onnxruntime instead") from None
        self.request = self.compiled.create_infer_request()
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self.input_shape = self.compiled.input(0).get_partial_shape()

    def infer_all(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        results = self.request.infer({0: np.ascontiguousarray(batch)})
        return {name: np.asarray(results[output]) for name, output in zip(self.output_names, self.compiled.outputs)}

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """The first output."""
        return self.infer_all(batch)[self.output_names[0]]

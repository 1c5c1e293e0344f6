"""Latency of a bundle's precision variants on the CPU backends, measured at export (one frame).

The figures go on the card (``details['latency_ms']``, keys ``<backend>:<precision>``) so the
``auto`` backend choice can prefer a gated reduced-precision artifact only where it measured faster
than fp32 ONNX Runtime on this machine. ONNX Runtime runs with the inference backend's settings
(all graph optimisations, no spinning threads); OpenVINO with :mod:`cityseg.inference.openvino_runtime`'s.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cityseg.inference import openvino_runtime as ov_runtime
from cityseg.inference.onnxruntime_session import cpu_session_options

REPEATS = 7
WARMUP = 2


def median_ms(run, batch: np.ndarray, repeats: int = REPEATS, warmup: int = WARMUP) -> float:
    for _ in range(warmup):
        run(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(batch)
        times.append(1000 * (time.perf_counter() - start))
    return round(float(np.median(times)), 2)


def onnxruntime_session(path: Path, exact_int8: bool = False):
    """A CPU session configured like the inference backend's."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), sess_options=cpu_session_options(exact_int8),
                                providers=["CPUExecutionProvider"])


def onnxruntime_call(path: Path, exact_int8: bool = False):
    session = onnxruntime_session(path, exact_int8)
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})


def measure(card, files: dict[str, Path], precision: str, repeats: int = REPEATS,
            exact_int8: bool = False) -> dict[str, float]:
    """{'onnxruntime:fp32': ms, 'onnxruntime:<precision>': ms, 'openvino:...': ms} for one frame;
    ``files``: precision -> ONNX file (bf16 runs the fp32 file on OpenVINO). OpenVINO rows only where
    it is installed (and, for bf16, where the CPU reports BF16)."""
    rng = np.random.default_rng(0)
    batch = (rng.integers(0, 256, (1, *card.input_shape), dtype=np.uint8) if card.input_dtype == "uint8"
             else rng.uniform(-1, 1, (1, *card.input_shape)).astype(np.float32))
    timings = {}
    for name, path in files.items():
        exact = exact_int8 and name == "int8"  # as the backend will run it
        timings[f"onnxruntime:{name}"] = median_ms(onnxruntime_call(path, exact), batch, repeats)
    if ov_runtime.unavailable_reason() is None:
        for name, path in files.items():
            if name != "fp16":  # OpenVINO's CPU plugin runs fp16 ONNX in fp32: nothing to learn
                runner = ov_runtime.OpenVinoRunner(path, "fp32", card.input_shape)
                timings[f"openvino:{name}"] = median_ms(runner.infer, batch, repeats)
        if precision == "bf16":
            runner = ov_runtime.OpenVinoRunner(files["fp32"], "bf16", card.input_shape)
            timings["openvino:bf16"] = median_ms(runner.infer, batch, repeats)
    return timings

"""OpenVINO backend: the bundle's fp32 or int8 (Q/DQ) ONNX on the CPU, or the fp32 ONNX in bf16.

Compiled by :mod:`cityseg.inference.openvino_runtime` (latency hint, one stream, threads bounded to the
cores this process may use, the precision hint of the card entry: bf16 only for an ``onnx_bf16``
entry, which the CPU must report BF16 for). A dynamic batch is compiled for one frame, so larger
batches run frame by frame (``max_batch`` 1).
"""

from __future__ import annotations

import numpy as np

from cityseg.bundle import Bundle
from cityseg.errors import BundleError
from cityseg.inference import openvino_runtime
from cityseg.inference.backends.base import Backend


class OpenVinoBackend(Backend):
    name = "openvino"
    format = "onnx"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return openvino_runtime.unavailable_reason()

    def __init__(self, bundle: Bundle, artifact_key: str):
        super().__init__(bundle, artifact_key)
        self.runner = openvino_runtime.OpenVinoRunner(self.path, self.artifact.precision,
                                                      self.artifact.frame_shape(bundle.card))
        shape = self.runner.input_shape
        expected = self.artifact.frame_shape(bundle.card)
        dims = [d.get_length() if d.is_static else None for d in shape] if shape.rank.is_static else []
        if len(dims) != 4 or any(got is not None and got != want for got, want in zip(dims[1:], expected)):
            raise BundleError(f"{self.path}: model input {dims} does not match the card's "
                              f"{'x'.join(map(str, expected))}; the ONNX belongs to another model - re-export it")
        self.fixed_batch = dims[0]
        confidence = self.artifact.confidence
        names = self.runner.output_names
        if confidence and confidence not in names:
            raise BundleError(f"{self.path}: the card names confidence output {confidence!r}, the model has {names}")
        self.primary = next(n for n in names if n != confidence)

    @property
    def max_batch(self) -> int | None:
        return self.fixed_batch

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = self.runner.infer_all(batch)
        confidence = self.artifact.confidence
        return outputs[self.primary], (outputs[confidence] if confidence else None)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch)[0]

    def describe(self) -> str:
        return f"{self.name} ({self.path.name}, CPU, {self.artifact.precision}, {self.runner.thread_count} threads)"

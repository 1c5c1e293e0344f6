"""TensorRT backend: runs the bundle's engine on the GPU (TensorRT 10 + cuda-python).

Before loading, the engine's sidecar is checked against this GPU, this TensorRT and the bundle's
ONNX. If the engine was built elsewhere, a matching sibling engine in the bundle is used, or the
engine is rebuilt from the ONNX (minutes, once; set CITYSEG_TENSORRT_REBUILD=0 to refuse instead;
the converter is imported only then). The rules are :mod:`cityseg.tensorrt.engine_cache`, the
runtime :mod:`cityseg.tensorrt.runtime`. The engine then runs with one execution context on one
CUDA stream, from pinned host buffers, with the batch size set per call (the engine's optimisation
profile bounds it; larger batches are split). Argmax-head engines return uint8 class maps, so one
byte per pixel leaves the GPU.
"""

from __future__ import annotations

import numpy as np

from cityseg.bundle import Bundle
from cityseg.errors import BundleError
from cityseg.inference.backends.base import Backend
from cityseg.tensorrt import engine_cache
from cityseg.tensorrt import runtime as tensorrt_runtime


def rebuild_engine(bundle: Bundle, preferred: str) -> str:
    """The converter's :func:`cityseg.export.tensorrt_build.rebuild_engine`, imported only when an engine
    built for another GPU must be rebuilt, so running engines never loads the exporter."""
    # lazy: the converter (onnx, parity), loaded only to rebuild; the one ignore of .importlinter
    from cityseg.export.tensorrt_build import rebuild_engine as converter_rebuild

    return converter_rebuild(bundle, preferred)


class TensorRTBackend(Backend):
    name = "tensorrt"
    format = "tensorrt"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return tensorrt_runtime.runtime_unavailable_reason()

    def __init__(self, bundle: Bundle, artifact_key: str, *, rebuild: bool | None = None):
        if rebuild is None:
            rebuild = engine_cache.rebuild_allowed_by_env()
        key = engine_cache.resolve_engine(bundle, artifact_key, tensorrt_runtime.current_platform(),
                                          rebuild=rebuild, build=rebuild_engine)
        super().__init__(bundle, key)
        self.runner = tensorrt_runtime.EngineRunner.from_file(self.path)
        self._check_engine()

    def _check_engine(self) -> None:
        card = self.bundle.card
        expected = self.artifact.frame_shape(card)
        if self.runner.frame_shape != expected:
            raise BundleError(f"{self.path}: the engine takes {self.runner.frame_shape} frames, the card "
                              f"declares {expected}; the engine belongs to another model - rebuild it "
                              "with `cityseg export --tensorrt --force`")
        confidence = self.artifact.confidence
        if confidence and confidence not in self.runner.output_names:
            raise BundleError(f"{self.path}: the card names confidence output {confidence!r}, the engine has "
                              f"{self.runner.output_names}; rebuild it with `cityseg export --tensorrt --force`")
        self.primary = next(n for n in self.runner.output_names if n != confidence)

    @property
    def max_batch(self) -> int:
        """The engine profile's maximum batch (`cityseg export --tensorrt --max-batch N`)."""
        return self.runner.max_batch

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch)[0]

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = self.runner.infer_all(np.ascontiguousarray(batch, dtype=self.runner.input_dtype))
        confidence = self.artifact.confidence
        return outputs[self.primary], (outputs[confidence] if confidence else None)

    def describe(self) -> str:
        details = self.artifact.details
        return (f"{self.name} ({self.path.name}, {details.get('gpu_name', 'GPU')}, "
                f"{self.artifact.precision}, batch {self.runner.min_batch}-{self.runner.max_batch})")

    def close(self) -> None:
        self.runner.close()

"""The converter: Keras bundle -> ONNX (tf2onnx) -> TensorRT engine, each checked for parity.

* :mod:`cityseg.export.onnx` - :func:`export_onnx` (model.onnx / model_argmax.onnx).
* :mod:`cityseg.export.parity` - run source and export on the same frames, compare.
* :mod:`cityseg.export.tensorrt_compat` - static check for ONNX that TensorRT 10 cannot parse.
* :mod:`cityseg.export.fused_io` / :mod:`cityseg.export.fused` - fused-I/O graphs (uint8 frame in,
  mask out).
* :mod:`cityseg.export.precision` - int8 (Q/DQ) / fp16 ONNX and bf16 records (the names:
  :mod:`cityseg.bundle.precision`), each through :mod:`cityseg.export.gate` (the accuracy gate) on
  :mod:`cityseg.export.calibration` frames; :mod:`cityseg.export.latency` measures the variants on
  the CPU runtimes for the card.
* :mod:`cityseg.export.tensorrt_build` - strongly typed engine build from the fp32/fp16/int8 ONNX,
  parity, card entry; engine names, sidecars and rebuild-or-refuse rules are
  :mod:`cityseg.tensorrt.engine_cache`, the engine runner :mod:`cityseg.tensorrt.runtime`.

It runs models through the runtimes of :mod:`cityseg.inference` (ONNX Runtime session options,
OpenVINO) and never the other way round: the runtime path loads no module of this package (the
import-linter contracts in .importlinter). Models cityseg did not train come in through
:mod:`cityseg.acquisition`. TensorFlow, tf2onnx, onnxruntime and TensorRT are imported inside the
functions that need them.
"""

from cityseg.export.errors import EngineMismatch, ExportError, ParityError
from cityseg.export.onnx import export_onnx
from cityseg.export.parity import ParityReport

__all__ = ["EngineMismatch", "ExportError", "ParityError", "ParityReport", "export_onnx"]

"""The converter: Keras bundle -> ONNX (tf2onnx) -> TensorRT engine, each checked for parity.

* :mod:`cityseg.export.onnx` - :func:`export_onnx` (model.onnx / model_argmax.onnx).
* :mod:`cityseg.export.parity` - run source and export on the same frames, compare.
* :mod:`cityseg.export.tensorrt_compat` - static check for ONNX that TensorRT 10 cannot parse.
* :mod:`cityseg.export.importer` - ``cityseg import``: the converter's inverse, a bundle for an ONNX
  model cityseg did not train (checked like an export: parity, TensorRT compatibility).
* :mod:`cityseg.export.precision` - int8 (Q/DQ) / fp16 ONNX and bf16 records, each through
  :mod:`cityseg.export.gate` (the accuracy gate) on :mod:`cityseg.export.calibration` frames;
  :mod:`cityseg.export.latency` and :mod:`cityseg.export.openvino_runtime` (shared with the backend).
* :mod:`cityseg.tensorrt.build` - strongly typed engine build from the fp32/fp16/int8 ONNX, parity,
  card entry; engine names, sidecars and rebuild-or-refuse rules are
  :mod:`cityseg.tensorrt.engine_cache`, the engine runner :mod:`cityseg.tensorrt.runtime` (shared
  with the TensorRT inference backend).

TensorFlow, tf2onnx, onnxruntime and TensorRT are imported inside the functions that need them.
"""

from cityseg.export.errors import EngineMismatch, ExportError, ParityError
from cityseg.export.onnx import export_onnx
from cityseg.export.parity import ParityReport

__all__ = ["EngineMismatch", "ExportError", "ParityError", "ParityReport", "export_onnx"]

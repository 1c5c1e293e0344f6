"""The converter: Keras bundle -> ONNX (tf2onnx) -> TensorRT engine, each checked for parity.

* :mod:`cityseg.export.onnx` - :func:`export_onnx` (model.onnx / model_argmax.onnx).
* :mod:`cityseg.export.parity` - run source and export on the same frames, compare.
* :mod:`cityseg.export.tensorrt_compat` - static check for ONNX that TensorRT 10 cannot parse.
* :mod:`cityseg.export.importer` - ``cityseg import``: the converter's inverse, a bundle for an ONNX
  model cityseg did not train (checked like an export: parity, TensorRT compatibility).
* :mod:`cityseg.tensorrt.build` - engine build (FP32/FP16/INT8), parity, the card entry; engine
  names, sidecars and rebuild-or-refuse rules are :mod:`cityseg.tensorrt.engine_cache`, the engine runner
  :mod:`cityseg.tensorrt.runtime` (shared with the TensorRT inference backend).
* :mod:`cityseg.tensorrt.calibration` - INT8 calibration images, batches and calibrator.

TensorFlow, tf2onnx, onnxruntime and TensorRT are imported inside the functions that need them.
"""

from cityseg.export.errors import EngineMismatch, ExportError, ParityError
from cityseg.export.onnx import export_onnx
from cityseg.export.parity import ParityReport

__all__ = ["EngineMismatch", "ExportError", "ParityError", "ParityReport", "export_onnx"]

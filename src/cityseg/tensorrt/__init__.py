"""The TensorRT engine runtime (TensorRT and CUDA themselves are imported lazily): what a vehicle
that only runs engines loads.

* :mod:`cityseg.tensorrt.engine_cache` - engine file names, sidecars, rebuild-or-refuse rules
  (plain Python).
* :mod:`cityseg.tensorrt.runtime` - CUDA buffers and the engine runner.

Building an engine is the converter's job (:mod:`cityseg.export.tensorrt_build`, strongly typed
from the fp32/fp16/int8 ONNX, parity, the card entry). The TensorRT backend imports it only when
an engine built for another GPU has to be rebuilt (it hands ``engine_cache.resolve_engine`` the
converter's ``rebuild_engine``): the one declared exception of the layers contract (.importlinter).
"""

"""Everything TensorRT, in one package (TensorRT and CUDA themselves are imported lazily).

* :mod:`cityseg.tensorrt.engine_cache` - engine file names, sidecars, rebuild-or-refuse rules
  (plain Python).
* :mod:`cityseg.tensorrt.runtime` - CUDA buffers and the engine runner.
* :mod:`cityseg.tensorrt.build` - the converter: strongly typed build from the fp32/fp16/int8 ONNX, parity, the card
  entry; builds on :mod:`cityseg.export` (ONNX, parity).

Inference imports ``engine_cache`` and ``runtime``; the TensorRT backend imports ``build`` only
when an engine built for another GPU has to be rebuilt (it hands ``engine_cache.resolve_engine``
the converter's ``rebuild_engine``), so nothing in this package imports upwards or in a ring.
"""

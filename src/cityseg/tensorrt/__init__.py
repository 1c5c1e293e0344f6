"""Everything TensorRT, in one package (TensorRT and CUDA themselves are imported lazily).

* :mod:`cityseg.tensorrt.compat` - static check for ONNX that TensorRT 10 cannot parse (run by
  every ONNX export and import; needs only ``onnx``).
* :mod:`cityseg.tensorrt.engine_cache` - engine file names, sidecars, rebuild-or-refuse rules
  (plain Python).
* :mod:`cityseg.tensorrt.runtime` - CUDA buffers and the engine runner.
* :mod:`cityseg.tensorrt.build` - the converter: strongly typed build from the fp32/fp16/int8 ONNX, parity, the card
  entry; builds on :mod:`cityseg.export` (ONNX, parity).

Inference imports ``engine_cache`` and ``runtime``, never ``build``: the one way up is
:func:`cityseg.tensorrt.engine_cache.converter_rebuild`, which imports ``build`` only when an
engine built for another GPU has to be rebuilt.
"""

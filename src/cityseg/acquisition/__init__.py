"""Model acquisition: bundles for models cityseg did not train.

* :mod:`cityseg.acquisition.importer` - ``cityseg import``: a bundle for an ONNX (or TFLite) model,
  checked like an export (a trial run, parity, TensorRT compatibility).
* :mod:`cityseg.acquisition.tflite` - TFLite -> ONNX (tf2onnx), for the importer.
* :mod:`cityseg.acquisition.registry` - the pretrained models ``cityseg pull`` knows.
* :mod:`cityseg.acquisition.pull` - ``cityseg pull``: fetch (or take ``--from``) and import one.

Builds on the converter (:mod:`cityseg.export`: parity, TensorRT compatibility); nothing on the
runtime path imports it.
"""

"""cityseg: semantic segmentation of street scenes, from Cityscapes training to a ROS 2 node.

The package reads top-down as a one-way pipeline::

    errors -> labels -> fileio -> config -> preprocess -> fusion -> bundle (card, directory, outputs)
           -> data -> synthetic -> models -> training -> export -> tensorrt -> inference
           -> evaluation -> ros -> fleet -> benchmarking -> demo -> cli

``config`` is the typed-YAML loader every config goes through; it holds no schema (each lives
with its reader: ``data.config``, ``training.config``, ``ros.live.params``, ``bundle.card``).
``bundle`` is the model card and the bundle directory, and ``bundle.outputs`` reads any model
output (layout, kind, stride) as class scores for both the converter's parity check and the
Segmenter. ``export`` is the converter (ONNX, parity, fused I/O, the ONNX-only TensorRT
compatibility check); ``tensorrt`` builds engines on it and holds what the TensorRT backend runs
(``engine_cache``, ``runtime``); the backend imports the engine builder only to rebuild an engine
made for another GPU. ``preprocess`` holds the resizes both directions use (frame to network
input, mask back to the frame). ``fusion`` is ROS-free geometry (camera models, extrinsics, LiDAR
point labelling, the bird's-eye grid) on numpy and OpenCV alone, low enough that the synthetic
3-D street renders and scans through its camera models; ``ros`` wires it into the bag tool.

Nothing lower imports anything higher, lazy imports included (tests/test_layers.py checks it);
TensorFlow, TensorRT and rclpy are imported lazily.
"""

__version__ = "0.1.0"

"""cityseg: semantic segmentation of street scenes, from Cityscapes training to a ROS 2 node.

The package reads top-down as a one-way pipeline (docs/ARCHITECTURE.md draws it)::

    errors -> labels -> fileio -> config -> preprocess -> fusion -> bundle (card, directory,
           precision, raw_output) -> data -> synthetic -> models -> training -> tensorrt
           -> inference -> export -> acquisition -> evaluation -> ros -> fleet -> benchmarking
           -> demo -> cli

``config`` is the typed-YAML loader every config goes through; it holds no schema (each lives
with its reader: ``data.config``, ``training.config``, ``ros.live.params``, ``bundle.card``).
``bundle`` is the model card and the bundle directory; ``bundle.precision`` the one precision
vocabulary; ``bundle.raw_output`` reads any model output (layout, kind, stride) as class scores
for both the converter's parity check and the Segmenter. The runtime path is ``tensorrt`` (the
engine runner and engine cache) and ``inference`` (the Segmenter, its backends and their
runtimes: ONNX Runtime session options, OpenVINO). ``export`` is the converter (ONNX, parity,
fused I/O, precision variants and their gate, the TensorRT engine build, the ONNX-only TensorRT
compatibility check); ``acquisition`` brings in models cityseg did not train (import, TFLite,
the pull registry). ``preprocess`` holds the resizes both directions use (frame to network input,
mask back to the frame). ``fusion`` is LiDAR fusion end to end, ROS-free (camera models,
extrinsics, point labelling, the bird's-eye grid, and the runners and queue that drive them), low
enough that the synthetic 3-D street renders and scans through its camera models; ``ros``
converts its messages for the node and the bag tool.

Nothing lower imports anything higher, lazy imports included (tests/test_layers.py and the
import-linter contracts in .importlinter check it; the one declared exception: the TensorRT
backend loads the converter only to rebuild an engine built for another GPU). A function-local
import of the package's own modules keeps a heavy optional dependency (TensorFlow/Keras,
TensorRT, rclpy, Ray, onnxruntime, OpenVINO) off a light path, and says which.
"""

__version__ = "0.1.0"

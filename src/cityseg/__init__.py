"""cityseg: semantic segmentation of street scenes, from Cityscapes training to a ROS 2 node.

The package reads top-down as a one-way pipeline::

    labels -> preprocess -> bundle (card, directory, outputs) -> data -> synthetic -> models
           -> training -> export -> tensorrt -> bundle.importer -> inference -> evaluation -> ros
           -> benchmarking / demo -> cli

``bundle`` is the model card and the bundle directory, and ``bundle.outputs`` reads any model
output (layout, kind, stride) as class scores for both the converter's parity check and the
Segmenter; ``bundle.importer`` bundles an ONNX cityseg did not train (it runs the model, so it
sits above export and tensorrt, and ``cityseg.bundle`` does not import it).
``tensorrt`` holds everything TensorRT: the converter (``build``, ``compat``) and
what the TensorRT inference backend uses (``engine_cache``: engine names, sidecars,
rebuild-or-refuse; ``runtime``: CUDA buffers, the engine runner); inference never imports the
converter, except ``engine_cache.converter_rebuild``, which imports it only when an engine built
for another GPU must be rebuilt. ``synthetic`` writes the layout ``data`` reads; its
``camera_bag`` module alone builds on ``ros`` (message encoders, rosbag I/O) to write camera
bags, and nothing in ``ros`` imports ``synthetic``.

Nothing lower imports anything higher; TensorFlow, TensorRT and rclpy are imported lazily.
"""

__version__ = "0.1.0"

"""cityseg: semantic segmentation of street scenes, from Cityscapes training to a ROS 2 node.

The package reads top-down as a one-way pipeline::

    labels -> preprocess -> bundle -> scores -> engine_cache -> tensorrt_runtime -> data -> synthetic
           -> models -> training -> export -> importer -> inference -> evaluate -> ros -> bench / demo -> cli

``engine_cache`` (TensorRT engine names, sidecars, rebuild-or-refuse) and ``tensorrt_runtime``
(CUDA buffers, the engine runner) sit low so that both the converter and the TensorRT inference
backend use them, and inference never imports the converter. The one call upwards is
``engine_cache.resolve_engine`` loading the converter by name (``ENGINE_BUILDER``), only when an
engine built for another GPU must be rebuilt. ``synthetic`` writes the layout ``data`` reads;
its ``camera_bag`` module alone builds on ``ros`` (message encoders, rosbag I/O) to write
camera bags, and nothing in ``ros`` imports ``synthetic``.
``scores`` reads any model output (layout, kind, stride) as class scores for both the converter's
parity check and the Segmenter; ``importer`` bundles an ONNX cityseg did not train.

Nothing lower imports anything higher; TensorFlow, TensorRT and rclpy are imported lazily.
"""

__version__ = "0.1.0"

"""cityseg: semantic segmentation of street scenes, from Cityscapes training to a ROS 2 node.

The package reads top-down as a one-way pipeline::

    labels -> preprocess -> bundle -> engine_cache -> tensorrt_runtime -> data -> models
           -> training -> export -> inference -> evaluate -> ros -> bench / demo -> cli

``engine_cache`` (TensorRT engine names, sidecars, rebuild-or-refuse) and ``tensorrt_runtime``
(CUDA buffers, the engine runner) sit low so that both the converter and the TensorRT inference
backend use them; inference never imports the converter (it loads it by name only to rebuild an
engine built for another GPU).

Nothing lower imports anything higher; TensorFlow, TensorRT and rclpy are imported lazily.
"""

__version__ = "0.1.0"

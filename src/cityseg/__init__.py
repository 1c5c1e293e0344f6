"""cityseg: semantic segmentation of street scenes, from Cityscapes training to a ROS 2 node.

The package reads top-down as a one-way pipeline::

    labels -> preprocess -> bundle -> data -> models -> training -> export -> inference
           -> evaluate -> ros -> bench / demo -> cli

Nothing lower imports anything higher; TensorFlow, TensorRT and rclpy are imported lazily.
"""

__version__ = "0.1.0"

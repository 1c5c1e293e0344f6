"""ROS 2 integration: the segmentation node and offline bag replay.

Read in this order. ROS-free, tested without ROS: ``outputs`` (the node's name and its output
topics, the one table everything reads), ``images`` (message <-> ndarray, every encoding),
``messages`` (message factories for rclpy and rosbags), ``processor`` (FrameProcessor: one
message in, the output messages out), ``params`` (node parameters), ``worker`` (latest-frame-wins
thread), ``diagnostics`` (rates, latencies, levels), ``upstream`` (frames lost before the node,
from stamp gaps), ``middleware`` (the Fast DDS profile for large images), ``bagio`` and ``bag``
(rosbag I/O and offline replay with rosbags). With rclpy: ``node`` (the thin adapter run as
``segmentation_node``) and ``probe`` (a camera and an output recorder around a real node
process, for tests and benchmarks).
"""

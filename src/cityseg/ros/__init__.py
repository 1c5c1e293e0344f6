"""ROS 2 integration: the segmentation node and offline bag replay.

Everything per frame lives in ROS-free modules - ``images`` (message <-> ndarray), ``messages``
(message factories), ``processor`` (FrameProcessor), ``worker`` (latest-frame-wins thread),
``diagnostics`` (rates and latencies), ``params`` (node parameters) - so it is tested without ROS.
``node`` is the thin rclpy adapter (rclpy imported inside) and ``bag`` replays recorded bags
with rosbags.
"""

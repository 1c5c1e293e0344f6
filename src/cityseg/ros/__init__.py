"""ROS 2 integration: the segmentation node and offline bag replay.

Read in this order. ROS-free, tested without ROS: ``outputs`` (the node's name and its output
topics, the one table everything reads), ``images`` (message <-> ndarray, every encoding),
``cdr`` (Image / CompressedImage as CDR bytes: read as views, written in one buffer), ``messages``
(message factories for rclpy and rosbags), ``processor`` (FrameProcessor: messages in, the
output messages out, one frame or a batch of cameras), ``params`` (node parameters), ``worker``
(latest-frame-wins thread), ``batcher`` (the same for a camera rig, batched), ``diagnostics``
(rates, latencies, levels, per camera), ``upstream`` (frames lost before the node, from stamp
gaps), ``heap`` (warm memory for frame buffers), ``middleware`` (the Fast DDS profile for large
images), ``bagio``, ``bagbatch``, ``bagsummary`` and ``bag`` (rosbag I/O and offline replay with
rosbags), ``camera_bag`` (frames written as a camera or rig rosbag2, for the demo and tests),
``launch_plan`` (what the launch files start, as data). With rclpy: ``camera_io`` (one camera's
subscriptions and publishers), ``lifecycle`` (the lifecycle state machine's bridge) and ``node``
(the lifecycle node run as ``segmentation_node``). The probe around a real node process for tests and benchmarks is
:mod:`cityseg.benchmarking.ros_probe`.
"""

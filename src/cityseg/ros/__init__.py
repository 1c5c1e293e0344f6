"""ROS 2 integration: the segmentation node and offline bag replay, two runners over one per-frame path.

Read in this order:

* ``core`` (ROS-free, tested without ROS): ``outputs`` (the node's name and its output topics, the
  one table everything reads), ``images`` (message <-> ndarray, every encoding), ``cdr``
  (Image / CompressedImage as CDR bytes: read as views, written in one buffer), ``messages``
  (message factories for rclpy and rosbags), ``processor`` (FrameProcessor: decode -> segment ->
  build outputs, one frame or a batch of cameras), ``fusion_messages`` (PointCloud2, OccupancyGrid
  and TF in and out), ``fusion_runner`` (labelled clouds and grids from the masks, for both runners)
  and ``stamped_fusion`` (the same with transforms looked up at each sensor's stamp, and the
  camera-only ground grid, one per rig frame).
* ``live`` (the node on rclpy): ``params`` (node parameters), ``inference_worker`` (the
  latest-frame-wins inference thread: one camera is a rig of one, batched), ``diagnostics``
  (rates, latencies, levels, per camera), ``upstream_loss`` (frames lost before the node, from stamp gaps),
  ``frame_memory`` (warm memory for frame buffers), ``dds_profile`` (the Fast DDS profile for large
  images), ``launch_plan`` (what the launch files start, as data), ``camera_io`` (one camera's
  subscriptions and publishers), ``fusion`` (the node's cloud topic and its thread), ``rcl_args``
  (rcl's argument errors as one line), ``node`` (the rclpy lifecycle node, a ``LifecycleNode``
  subclass) and ``main`` (its ``segmentation_node`` entry point).
* ``bag`` (offline, rosbags): ``rosbag_io``, ``batches``, ``summary``, ``fusion`` (a bag's clouds
  and ``/tf_static``), ``replay`` (``cityseg bag``), and ``camera_bag`` / ``lidar_bag`` (frames, and
  LiDAR rigs, written as a driver would record them, for the demo and the tests).

``core`` imports neither ``live`` nor ``bag``, and ``bag`` does not import ``live`` (checked by
tests/test_layers.py). The probe around a real node process for tests and benchmarks is
:mod:`cityseg.benchmarking.ros_probe`.
"""

"""ROS 2 integration: the segmentation node and offline bag replay, two runners over one per-frame path.

Read in this order:

* ``core`` (ROS-free, tested without ROS): ``outputs`` (the node's name and its output topics, the
  one table everything reads), ``images`` (message <-> ndarray, every encoding), ``cdr``
  (Image / CompressedImage as CDR bytes: read as views, written in one buffer), ``messages``
  (message factories for rclpy and rosbags), ``processor`` (FrameProcessor: decode -> segment ->
  build outputs, one frame or a batch of cameras) and ``tf_messages`` (/tf and /tf_static in and
  out). The fusion itself (queue, time matching, labelling, grids) is :mod:`cityseg.fusion`; ROS
  only converts its messages (PointCloud2 and OccupancyGrid through the message factories).
* ``live`` (the node on rclpy): ``params`` (node parameters), ``inference_worker`` (the
  latest-frame-wins inference thread: one camera is a rig of one, batched), ``diagnostics``
  (rates, latencies, levels, per camera), ``upstream_loss`` (frames lost before the node, from stamp gaps),
  ``frame_memory`` (warm memory for frame buffers), ``dds_profile`` (the Fast DDS profile for large
  images), ``launch_plan`` (what the launch files start, as data), ``camera_io`` (one camera's
  subscriptions and publishers), ``fusion`` (the node's cloud topic, its publishers and the fusion
  queue's wiring), ``tf_lookup`` (tf2 transforms for the fusion), ``rcl_args``
  (rcl's argument errors as one line), ``node`` (the rclpy lifecycle node, a ``LifecycleNode``
  subclass) and ``main`` (its ``segmentation_node`` entry point).
* ``bag`` (offline, rosbags): ``rosbag_io``, ``batches``, ``summary``, ``fusion`` (a bag's clouds,
  ``/tf_static`` and ``/tf`` into the fusion runners, their outputs into the bag), ``replay``
  (``cityseg bag``), and ``camera_bag`` / ``lidar_bag`` (frames, and LiDAR rigs, written as a
  driver would record them, for the demo and the tests).

``core`` imports neither ``live`` nor ``bag``, and ``bag`` does not import ``live`` (checked by
tests/test_layers.py). The probe around a real node process for tests and benchmarks is
:mod:`cityseg.benchmarking.ros_probe`.
"""

"""LiDAR fusion end to end, ROS-free: labelling the points of a cloud with the cameras' masks and
building a bird's-eye semantic grid. Geometry: PointCloud2 layouts (cloud), camera models (camera),
extrinsics and /tf buffers (extrinsics), labelling with occlusion (labelling), the grid (grid).
Orchestration: what is asked (config: FusionConfig, one builder from the node's parameters), what
the runners are fed and the node's queue (feed), labelled clouds by time matching (runner), the
camera-only ground grid per rig frame (ground_grid). Used by the node and the bag tool, which only
convert messages; imports nothing from cityseg.ros."""

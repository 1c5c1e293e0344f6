"""ROS-free geometry for labelling LiDAR points with the cameras' masks and building a bird's-eye
semantic grid: PointCloud2 layouts (cloud), camera models (camera), static extrinsics
(extrinsics), labelling with occlusion (labelling), the grid (grid). Used by the node and the bag
tool; imports nothing from cityseg.ros."""

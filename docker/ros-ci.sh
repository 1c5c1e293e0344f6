#!/usr/bin/env bash
# Build cityseg in a ROS 2 workspace and run its ROS tests with real rclpy and launch_ros.
#
# In the image of docker/Dockerfile:   docker run --rm --shm-size=1g cityseg-ros
# On a machine with ROS 2 Jazzy:       WS=~/ros_ws docker/ros-ci.sh   (cityseg in $WS/src/cityseg)
#
# cityseg's own CI runs the node with rclpy from PyPI (make test); this adds launch_ros, vision_msgs
# and a full ROS 2 install.
set -euo pipefail
WS=${WS:-/ws}
source "/opt/ros/${ROS_DISTRO:-jazzy}/setup.bash"
cd "$WS"

colcon build --packages-select cityseg --event-handlers console_cohesion+
source install/setup.bash

# What `colcon build` installed: node executable, launch files, params file, ament index entry.
python3 src/cityseg/tests/tools/check_colcon_install.py install
ros2 pkg executables cityseg | grep -q segmentation_node
ros2 launch cityseg segmentation.launch.py --show-args >/dev/null

# The ROS tests (message handling, bag replay, launch files, and the rclpy node end to end).
colcon test --packages-select cityseg --event-handlers console_cohesion+ \
    --pytest-args tests/ros -p no:cacheprovider
colcon test-result --verbose

"""Launch one cityseg segmentation node for one camera.

    ros2 launch cityseg segmentation.launch.py model:=/models/unet_lite namespace:=front

subscribes /front/image_raw (+ /front/camera_info) and publishes /front/segmentation/{mask,
color_mask, overlay, camera_info, label_info}. The node is a lifecycle node that configures and
activates itself (autostart:=false leaves that to a lifecycle manager). Several cameras: one
process for the rig with multi_camera.launch.py, or this file once per camera in its namespace.
The parameters (params_file plus the overrides given here) are validated before the node
starts. The node gets the Fast DDS profile for large images (config/fastdds_large_images.xml)
unless dds_profile says otherwise. What is started for each argument combination is decided by
cityseg.ros.live.launch_plan.single_camera (tests start the installed node from the same function).
"""

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from cityseg.ros.live.launch_plan import SINGLE_CAMERA_ARGUMENTS, lifecycle_node, single_camera
from launch import LaunchDescription


def _segmentation_node(context):
    args = {name: LaunchConfiguration(name).perform(context) for name, _, _ in SINGLE_CAMERA_ARGUMENTS}
    return [lifecycle_node(single_camera(args, get_package_share_directory("cityseg")))]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in SINGLE_CAMERA_ARGUMENTS]
        + [OpaqueFunction(function=_segmentation_node)])

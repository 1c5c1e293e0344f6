"""Example: one segmentation node per camera, each in its own namespace (no topic collisions).

    ros2 launch cityseg multi_camera.launch.py model:=/models/unet_lite

camera <c> is read from /<c>/image_raw and /<c>/camera_info; its outputs are
/<c>/segmentation/{mask,color_mask,overlay,camera_info,label_info}. Copy this file and edit
CAMERAS for your vehicle.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

CAMERAS = ("front", "left", "right")


def generate_launch_description():
    single = os.path.join(get_package_share_directory("cityseg"), "launch", "segmentation.launch.py")
    shared = {name: LaunchConfiguration(name)
              for name in ("model", "backend", "params_file", "use_sim_time", "dds_profile")}
    cameras = [
        GroupAction([IncludeLaunchDescription(
            PythonLaunchDescriptionSource(single),
            launch_arguments={**shared, "namespace": camera, "image": f"/{camera}/image_raw",
                              "camera_info": f"/{camera}/camera_info"}.items())])
        for camera in CAMERAS
    ]
    return LaunchDescription([
        DeclareLaunchArgument("model", description="model bundle directory (required)"),
        DeclareLaunchArgument("backend", default_value="", description="empty: as in params_file"),
        DeclareLaunchArgument("params_file", default_value="", description="empty: the installed default"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="true for bag replay"),
        DeclareLaunchArgument("dds_profile", default_value="",
                              description="empty: the installed large-images Fast DDS profile; none: defaults"),
        *cameras,
    ])

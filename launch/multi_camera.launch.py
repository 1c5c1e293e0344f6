"""Every camera of the vehicle: one segmentation process with one model (batched), or one per camera.

    ros2 launch cityseg multi_camera.launch.py model:=/models/unet_lite cameras:=[front,left,right]

camera <c> is read from /<c>/image_raw and /<c>/camera_info; its outputs are
/<c>/segmentation/{mask,color_mask,overlay,confidence,camera_info,label_info} either way, so
consumers do not change. one_process:=true (default) starts one lifecycle node (/segmentation,
`cameras` parameter: one model, frames of all cameras batched through it); one_process:=false
starts segmentation.launch.py's node once per camera (a process, a model and a runtime each). The
Fast DDS profile is handled as in segmentation.launch.py. What is started for each argument
combination is decided by cityseg.ros.live.launch_plan.rig (tests start the installed node from it).
"""

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from cityseg.ros.live.launch_plan import RIG_ARGUMENTS, lifecycle_node, rig
from launch import LaunchDescription


def _rig(context):
    args = {name: LaunchConfiguration(name).perform(context) for name, _, _ in RIG_ARGUMENTS}
    return [lifecycle_node(plan) for plan in rig(args, get_package_share_directory("cityseg"))]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in RIG_ARGUMENTS]
        + [OpaqueFunction(function=_rig)])

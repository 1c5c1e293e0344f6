"""Launch one cityseg segmentation node for one camera.

    ros2 launch cityseg segmentation.launch.py model:=/models/unet_lite namespace:=front

subscribes /front/image_raw (+ /front/camera_info) and publishes /front/segmentation/{mask,
color_mask, overlay, camera_info, label_info}. The node is a lifecycle node that configures and
activates itself (autostart:=false leaves that to a lifecycle manager). Several cameras: one
process for the rig with multi_camera.launch.py, or this file once per camera in its namespace.
The parameters (params_file plus the overrides given here) are validated before the node
starts. The node gets the Fast DDS profile for large images (config/fastdds_large_images.xml)
unless dds_profile says otherwise.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from launch import LaunchDescription

ARGUMENTS = (
    ("model", "", "model bundle directory; empty: the params file's `model`"),
    ("image", "image_raw", "input image topic; relative names resolve in the namespace"),
    ("camera_info", "camera_info", "input CameraInfo topic; relative names resolve in the namespace"),
    ("namespace", "camera", "namespace of the node: outputs are /<namespace>/segmentation/*"),
    ("backend", "", "auto, tensorrt, onnxruntime or tensorflow; empty: as in params_file"),
    ("params_file", "", "ROS 2 parameters YAML; empty: the installed config/segmentation.yaml"),
    ("use_sim_time", "false", "true when replaying a bag with `ros2 bag play --clock`"),
    ("input_compressed", "", "true: subscribe to <image>/compressed; empty: as in params_file"),
    ("autostart", "", "true: configure and activate at once; false: wait for a lifecycle manager "
                      "(ros2 lifecycle set / Nav2's lifecycle manager); empty: as in params_file (true)"),
    ("dds_profile", "", "Fast DDS XML profile for the node; empty: the installed "
                        "config/fastdds_large_images.xml unless FASTRTPS/FASTDDS_DEFAULT_PROFILES_FILE is "
                        "already set; none: the middleware's defaults"),
)


def _flag(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def _segmentation_node(context):
    from cityseg.ros.middleware import PROFILE_FILE, profile_environment
    from cityseg.ros.outputs import NODE_EXECUTABLE, NODE_NAME, node_fqn
    from cityseg.ros.params import check_params_file

    arg = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    config_dir = os.path.join(get_package_share_directory("cityseg"), "config")
    params_file = arg["params_file"] or os.path.join(config_dir, "segmentation.yaml")
    overrides = {}
    if arg["model"]:  # empty: keep the params file's model
        overrides["model"] = arg["model"]
    if arg["backend"]:
        overrides["backend"] = arg["backend"]
    for flag in ("input_compressed", "autostart"):
        if arg[flag]:
            overrides[flag] = _flag(arg[flag])
    check_params_file(params_file, overrides, node_fqn(arg["namespace"]))  # fail here, naming the file, not in the node
    dds_env = profile_environment(arg["dds_profile"], os.path.join(config_dir, PROFILE_FILE))
    image = arg["image"].rstrip("/")
    return [LifecycleNode(  # a managed node: launch_ros' ChangeState events and lifecycle managers drive it
        package="cityseg", executable=NODE_EXECUTABLE, name=NODE_NAME,
        namespace=arg["namespace"], output="screen", emulate_tty=True, additional_env=dds_env,
        parameters=[params_file, {**overrides, "use_sim_time": _flag(arg["use_sim_time"])}],
        remappings=[("image", image), ("image/compressed", f"{image}/compressed"),
                    ("camera_info", arg["camera_info"])],
    )]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS]
        + [OpaqueFunction(function=_segmentation_node)])

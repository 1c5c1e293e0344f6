"""Every camera of the vehicle: one segmentation process with one model (batched), or one per camera.

    ros2 launch cityseg multi_camera.launch.py model:=/models/unet_lite cameras:=[front,left,right]

camera <c> is read from /<c>/image_raw and /<c>/camera_info; its outputs are
/<c>/segmentation/{mask,color_mask,overlay,confidence,camera_info,label_info} either way, so
consumers do not change. one_process:=true (default) starts one lifecycle node (/segmentation,
`cameras` parameter: one model, frames of all cameras batched through it); one_process:=false
includes segmentation.launch.py once per camera (a process, a model and a runtime each). The Fast
DDS profile is handled as in segmentation.launch.py.
"""

import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from launch import LaunchDescription

CAMERAS = ("front", "left", "right")
"""The default rig (the `cameras` launch argument overrides it)."""
ARGUMENTS = (
    ("model", "", "model bundle directory; empty: the params file's `model`"),
    ("cameras", "[front, left, right]",
     "camera names (default: CAMERAS): camera c reads /c/image_raw, publishes /c/segmentation/*"),
    ("one_process", "true", "true: one process, one model, batched across cameras; false: one process per camera"),
    ("backend", "", "auto, tensorrt, onnxruntime or tensorflow; empty: as in params_file"),
    ("params_file", "", "ROS 2 parameters YAML; empty: the installed config/segmentation.yaml"),
    ("use_sim_time", "false", "true when replaying a bag with `ros2 bag play --clock`"),
    ("input_compressed", "", "true: subscribe to /<c>/image_raw/compressed; empty: as in params_file"),
    ("autostart", "", "false: wait for a lifecycle manager; empty: as in params_file (true)"),
    ("dds_profile", "", "Fast DDS XML profile; empty: the installed config/fastdds_large_images.xml unless "
                        "FASTRTPS/FASTDDS_DEFAULT_PROFILES_FILE is set; none: the middleware's defaults"),
)


def _flag(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def _cameras(text: str) -> list:
    cameras = yaml.safe_load(text)
    if isinstance(cameras, str):
        cameras = [cameras]
    if not isinstance(cameras, list) or not cameras or not all(isinstance(c, str) for c in cameras):
        raise ValueError(f"cameras: expected a list of names like [front, left], got {text!r}")
    return cameras


def _rig(context):
    from cityseg.ros.middleware import PROFILE_FILE, profile_environment
    from cityseg.ros.outputs import NODE_EXECUTABLE, NODE_NAME, node_fqn
    from cityseg.ros.params import check_params_file

    arg = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    cameras = _cameras(arg["cameras"])
    if not _flag(arg["one_process"]):
        return _one_process_per_camera(arg, cameras)
    config_dir = os.path.join(get_package_share_directory("cityseg"), "config")
    params_file = arg["params_file"] or os.path.join(config_dir, "segmentation.yaml")
    overrides = {"cameras": cameras}
    for name in ("model", "backend"):
        if arg[name]:
            overrides[name] = arg[name]
    for name in ("input_compressed", "autostart"):
        if arg[name]:
            overrides[name] = _flag(arg[name])
    check_params_file(params_file, overrides, node_fqn(""))  # fail here, naming the file, not in the node
    dds_env = profile_environment(arg["dds_profile"], os.path.join(config_dir, PROFILE_FILE))
    return [LifecycleNode(
        package="cityseg", executable=NODE_EXECUTABLE, name=NODE_NAME, namespace="", output="screen",
        emulate_tty=True, additional_env=dds_env,
        parameters=[params_file, {**overrides, "use_sim_time": _flag(arg["use_sim_time"])}],
    )]


def _one_process_per_camera(arg: dict, cameras: list) -> list:
    single = os.path.join(get_package_share_directory("cityseg"), "launch", "segmentation.launch.py")
    shared = {name: arg[name] for name in ("model", "backend", "params_file", "use_sim_time", "dds_profile",
                                          "input_compressed", "autostart")}
    return [GroupAction([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(single),
        launch_arguments={**shared, "namespace": camera, "image": f"/{camera}/image_raw",
                          "camera_info": f"/{camera}/camera_info"}.items())])
        for camera in cameras]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS]
        + [OpaqueFunction(function=_rig)])

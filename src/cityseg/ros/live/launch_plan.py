"""What the launch files start, as plain data: the node's namespace, params files, overrides,
remappings and environment for each launch-argument combination. No launch_ros.

``launch/segmentation.launch.py`` and ``launch/multi_camera.launch.py`` read their arguments,
call :func:`single_camera` or :func:`rig` and turn each :class:`NodeLaunch` into a launch_ros
``LifecycleNode`` (:func:`lifecycle_node`). Tests call the same functions and start the installed
node with :meth:`NodeLaunch.ros_arguments` — what launch_ros passes on the command line — so they
cannot drift from the launch files. The parameters are validated here, before any node starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cityseg.config import ConfigError
from cityseg.ros.core.outputs import NODE_EXECUTABLE, NODE_NAME, node_fqn
from cityseg.ros.live.dds_profile import PROFILE_FILE, profile_environment
from cityseg.ros.live.params import check_params_file

Argument = tuple[str, str, str]
"""(name, default, description) of one launch argument."""

_COMMON: tuple[Argument, ...] = (
    ("model", "", "model bundle directory; empty: the params file's `model`"),
    ("backend", "", "auto, tensorrt, onnxruntime, openvino or tensorflow; empty: as in params_file"),
    ("params_file", "", "ROS 2 parameters YAML; empty: the installed config/segmentation.yaml"),
    ("use_sim_time", "false", "true when replaying a bag with `ros2 bag play --clock`"),
    ("autostart", "", "true: configure and activate at once; false: wait for a lifecycle manager "
                      "(ros2 lifecycle set / Nav2's lifecycle manager); empty: as in params_file (true)"),
    ("dds_profile", "", "Fast DDS XML profile for the node; empty: the installed "
                        "config/fastdds_large_images.xml unless FASTRTPS/FASTDDS_DEFAULT_PROFILES_FILE is "
                        "already set; none: the middleware's defaults"),
)
SINGLE_CAMERA_ARGUMENTS: tuple[Argument, ...] = (
    ("image", "image_raw", "input image topic; relative names resolve in the namespace"),
    ("camera_info", "camera_info", "input CameraInfo topic; relative names resolve in the namespace"),
    ("namespace", "camera", "namespace of the node: outputs are /<namespace>/segmentation/*"),
    ("input_compressed", "", "true: subscribe to <image>/compressed; empty: as in params_file"),
    *_COMMON,
)
"""The arguments of segmentation.launch.py."""
RIG_CAMERAS = ("front", "left", "right")
"""The default rig of multi_camera.launch.py (its `cameras` argument overrides it)."""
RIG_ARGUMENTS: tuple[Argument, ...] = (
    ("cameras", "[" + ", ".join(RIG_CAMERAS) + "]",
     "camera names: camera c reads /c/image_raw, publishes /c/segmentation/*"),
    ("one_process", "true", "true: one process, one model, batched across cameras; false: one process per camera"),
    ("input_compressed", "", "true: subscribe to /<c>/image_raw/compressed; empty: as in params_file"),
    *_COMMON,
)
"""The arguments of multi_camera.launch.py."""


@dataclass(frozen=True)
class NodeLaunch:
    """One segmentation_node process as a launch file starts it."""

    namespace: str
    params_file: str
    overrides: dict[str, Any]
    """Parameters given after the params file (launch_ros writes them to a `/**` params file)."""
    remappings: tuple[tuple[str, str], ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    """Added to the environment (the Fast DDS profile)."""
    name: str = NODE_NAME
    executable: str = NODE_EXECUTABLE

    @property
    def fqn(self) -> str:
        return node_fqn(self.namespace, self.name)

    def overrides_yaml(self) -> str:
        """The overrides as the params file launch_ros writes for a parameters dict."""
        return yaml.safe_dump({"/**": {"ros__parameters": self.overrides}}, default_flow_style=False)

    def ros_arguments(self, overrides_file: str | os.PathLike) -> list[str]:
        """The ``--ros-args`` launch_ros gives the executable; ``overrides_file`` holds :meth:`overrides_yaml`."""
        args = ["--ros-args", "-r", f"__node:={self.name}", "-r", f"__ns:=/{self.namespace.strip('/')}",
                "--params-file", self.params_file, "--params-file", str(overrides_file)]
        for source, target in self.remappings:
            args += ["-r", f"{source}:={target}"]
        return args


def _flag(name: str, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ConfigError(f"launch argument {name}: expected true or false, got {text!r}")
    return text.lower() == "true"


def _overrides(args: dict[str, str]) -> dict[str, Any]:
    """The parameter overrides that non-empty launch arguments ask for (empty: as in the params file)."""
    overrides: dict[str, Any] = {name: args[name] for name in ("model", "backend") if args.get(name)}
    overrides.update({name: _flag(name, args[name]) for name in ("input_compressed", "autostart") if args.get(name)})
    return overrides


def _with_defaults(args: dict[str, str], declared: tuple[Argument, ...]) -> dict[str, str]:
    unknown = sorted(set(args) - {name for name, _, _ in declared})
    if unknown:
        raise ConfigError(f"unknown launch argument(s) {', '.join(unknown)}")
    return {name: args.get(name, default) for name, default, _ in declared}


def _node(args: dict[str, str], share_dir: str | os.PathLike, namespace: str, overrides: dict[str, Any],
          remappings: tuple[tuple[str, str], ...] = (), environ: Mapping[str, str] = os.environ) -> NodeLaunch:
    config_dir = Path(share_dir) / "config"
    params_file = args["params_file"] or str(config_dir / "segmentation.yaml")
    check_params_file(params_file, overrides, node_fqn(namespace))  # fail here, naming the file, not in the node
    env = profile_environment(args["dds_profile"], config_dir / PROFILE_FILE, environ)
    overrides = {**overrides, "use_sim_time": _flag("use_sim_time", args["use_sim_time"])}
    return NodeLaunch(namespace, params_file, overrides, remappings, env)


def single_camera(args: dict[str, str], share_dir: str | os.PathLike,
                  environ: Mapping[str, str] = os.environ) -> NodeLaunch:
    """The node segmentation.launch.py starts for launch arguments ``args`` (missing ones: defaults);
    ``share_dir``: the installed share/cityseg; ``environ``: the launching shell's environment."""
    args = _with_defaults(args, SINGLE_CAMERA_ARGUMENTS)
    image = args["image"].rstrip("/")
    remappings = (("image", image), ("image/compressed", f"{image}/compressed"), ("camera_info", args["camera_info"]))
    return _node(args, share_dir, args["namespace"], _overrides(args), remappings, environ)


def parse_cameras(text: str) -> list[str]:
    """The `cameras` launch argument (``[front, left]`` or one name) as a list of names."""
    cameras = yaml.safe_load(text)
    if isinstance(cameras, str):
        cameras = [cameras]
    if not isinstance(cameras, list) or not cameras or not all(isinstance(c, str) for c in cameras):
        raise ConfigError(f"launch argument cameras: expected a list of names like [front, left], got {text!r}")
    return cameras


def rig(args: dict[str, str], share_dir: str | os.PathLike,
        environ: Mapping[str, str] = os.environ) -> list[NodeLaunch]:
    """The node(s) multi_camera.launch.py starts: one for the rig, or one per camera (one_process:=false)."""
    args = _with_defaults(args, RIG_ARGUMENTS)
    cameras = parse_cameras(args["cameras"])
    if _flag("one_process", args["one_process"]):
        return [_node(args, share_dir, "", {"cameras": cameras, **_overrides(args)}, environ=environ)]
    single = {name: value for name, value in args.items() if name not in ("cameras", "one_process")}
    return [single_camera({**single, "namespace": camera, "image": f"/{camera}/image_raw",
                           "camera_info": f"/{camera}/camera_info"}, share_dir, environ) for camera in cameras]


def lifecycle_node(plan: NodeLaunch):
    """The launch_ros LifecycleNode action for ``plan`` (needs launch_ros)."""
    from launch_ros.actions import LifecycleNode

    return LifecycleNode(package="cityseg", executable=plan.executable, name=plan.name,
                         namespace=plan.namespace, output="screen", emulate_tty=True,
                         additional_env=plan.env, parameters=[plan.params_file, plan.overrides],
                         remappings=list(plan.remappings))

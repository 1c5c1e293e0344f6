"""The installed node started exactly as the launch files start it, over real rclpy and Fast DDS.

What each launch file starts for an argument combination comes from the launch files' own
functions (cityseg.ros.live.launch_plan); the node is the colcon-installed executable, given the
installed params file and the overrides file launch_ros writes, with the same remappings and
environment. Each node must reach its lifecycle state and publish a mask for a frame sent to it.
"""

from __future__ import annotations

import signal

import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy", reason="needs rclpy: `pip install -e .[ros]` (ROS 2 Jazzy wheels) "
                                            "or a sourced ROS 2")
pytest.importorskip("lifecycle_msgs.srv", reason="needs lifecycle_msgs (ros-jazzy-lifecycle-msgs)")

from lifecycle_msgs.msg import Transition  # noqa: E402

from cityseg.benchmarking.ros_probe import NodeProcess, Probe, wait_until  # noqa: E402
from cityseg.ros.core.images import encode_compressed, encode_rgb  # noqa: E402
from cityseg.ros.live.dds_profile import PROFILE_VARIABLES  # noqa: E402
from cityseg.ros.live.launch_plan import NodeLaunch, rig, single_camera  # noqa: E402

from support import REPO, ColconInstall, Lifecycle, colcon_install, painted_scene  # noqa: E402

SHIPPED_PARAMS_FILES = sorted(p.name for p in (REPO / "config").glob("*.yaml") if "ros__parameters" in p.read_text())


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> ColconInstall:
    return colcon_install(tmp_path_factory.mktemp("colcon"))


@pytest.fixture
def user_environment(graph):
    """The launching shell's environment: the private graph, no Fast DDS profile of the user's own.
    (This process keeps its profile: Fast DDS reads the profile variables once per process.)"""
    return {k: v for k, v in graph.items() if k not in PROFILE_VARIABLES}


def start(plan: NodeLaunch, installed: ColconInstall, environment: dict, tmp_path) -> NodeProcess:
    """The installed executable with what launch_ros gives it for ``plan``."""
    overrides = tmp_path / f"launch_params_{plan.fqn.strip('/').replace('/', '_')}.yaml"
    overrides.write_text(plan.overrides_yaml())
    command = [str(installed.node_executable), *plan.ros_arguments(overrides)]
    return NodeProcess(plan.namespace, {}, env={**installed.environment(environment), **plan.env}, command=command)


def send_frame(probe: Probe, rgb, index: int, compressed: bool = False) -> None:
    header = probe.msgs.header(1_700_000_000 + index, 0, "cam")
    if compressed:
        probe.publish(probe.msgs.compressed_image(header, *encode_compressed(rgb, "png")))
    else:
        probe.publish(probe.msgs.image(header, encode_rgb(rgb, "rgb8")))


def serve_a_frame(probe: Probe, node: NodeProcess, compressed: bool = False) -> None:
    """Frames until the node's mask for one of them arrives (so a first frame sent before the node
    saw our subscription does not matter: no need to wait for its diagnostics)."""
    rgb, _ = painted_scene(128, 256, space_name="trainid", seed=4)
    assert probe.wait_connected(30.0, seen_by_node=False), node.output
    for index in range(20):
        send_frame(probe, rgb, index, compressed)
        if wait_until(lambda: probe.count("mask") > 0, 1.0):
            return
    raise AssertionError(f"no mask from {node.command}:\n{node.output}")


def stop(node: NodeProcess) -> None:
    code, _ = node.stop(signal.SIGINT)
    assert code == 0 and "Traceback" not in node.output, node.output


def run_single_camera(args: dict, installed, environment, tmp_path, compressed: bool = False,
                      expect_state: str = "active") -> NodeLaunch:
    plan = single_camera(args, installed.share, environment)
    node = start(plan, installed, environment, tmp_path)
    probe = Probe(plan.namespace, compressed=compressed, image_topic="image_raw", outputs=frozenset({"mask"}))
    try:
        lifecycle = Lifecycle(probe, plan.fqn)
        assert wait_until(lambda: lifecycle.state() == expect_state, 30.0), node.output
        if expect_state == "unconfigured":
            assert lifecycle.set(Transition.TRANSITION_CONFIGURE), node.output
            assert lifecycle.set(Transition.TRANSITION_ACTIVATE), node.output
        serve_a_frame(probe, node, compressed)
    finally:
        probe.close()
        stop(node)
    return plan


@pytest.mark.parametrize("params_file", SHIPPED_PARAMS_FILES)
def test_every_shipped_params_file_starts_the_node(params_file, installed, user_environment, bundle, tmp_path):
    args = {"model": str(bundle.path), "params_file": str(installed.share / "config" / params_file)}
    run_single_camera(args, installed, user_environment, tmp_path)


def test_single_camera_defaults(installed, user_environment, bundle, tmp_path):
    plan = run_single_camera({"model": str(bundle.path)}, installed, user_environment, tmp_path)
    assert plan.params_file == str(installed.share / "config" / "segmentation.yaml")
    assert set(plan.env) == set(PROFILE_VARIABLES)  # the installed large-images profile


def test_single_camera_autostart_false_waits_unconfigured(installed, user_environment, bundle, tmp_path):
    run_single_camera({"model": str(bundle.path), "autostart": "false"}, installed, user_environment, tmp_path,
                      expect_state="unconfigured")


def test_single_camera_compressed_input(installed, user_environment, bundle, tmp_path):
    run_single_camera({"model": str(bundle.path), "input_compressed": "true"}, installed, user_environment,
                      tmp_path, compressed=True)


def test_single_camera_without_dds_profile(installed, user_environment, bundle, tmp_path):
    plan = run_single_camera({"model": str(bundle.path), "dds_profile": "none"}, installed, user_environment,
                             tmp_path)
    assert plan.env == {}


@pytest.mark.parametrize("one_process", ["true", "false"])
def test_rig_of_two_cameras(one_process, installed, user_environment, bundle, tmp_path):
    plans = rig({"model": str(bundle.path), "cameras": "[front,left]", "one_process": one_process}, installed.share,
                user_environment)
    assert len(plans) == (1 if one_process == "true" else 2)
    nodes = [start(plan, installed, user_environment, tmp_path) for plan in plans]
    cameras = ("front", "left")
    node_of = dict(zip(cameras, nodes * 2 if len(nodes) == 1 else nodes))
    probes = {camera: Probe(camera, image_topic="image_raw", outputs=frozenset({"mask"}), name=f"probe_{camera}")
              for camera in cameras}
    try:
        for plan, node in zip(plans, nodes):
            lifecycle = Lifecycle(probes["front"], plan.fqn)
            assert wait_until(lambda lc=lifecycle: lc.state() == "active", 30.0), node.output
        for camera, probe in probes.items():
            serve_a_frame(probe, node_of[camera])
    finally:
        for probe in probes.values():
            probe.close()
        for node in nodes:
            stop(node)


def ros2_launch(launch_file: str, args: dict, environment: dict) -> NodeProcess:
    command = ["ros2", "launch", "cityseg", launch_file, *(f"{k}:={v}" for k, v in args.items())]
    return NodeProcess("", {}, env=environment, command=command)


@pytest.mark.parametrize("launch_file, args, cameras", [
    ("segmentation.launch.py", {"namespace": "front"}, ["front"]),
    ("multi_camera.launch.py", {"cameras": "[front,left]"}, ["front", "left"]),
    ("multi_camera.launch.py", {"cameras": "[front,left]", "one_process": "false"}, ["front", "left"]),
])
def test_ros2_launch_for_real(launch_file, args, cameras, user_environment, bundle):
    """`ros2 launch` itself (docker/ros-ci.sh: a sourced ROS 2 with launch_ros and this package built)."""
    import shutil

    pytest.importorskip("launch_ros", reason="launch_ros is a ROS 2 package (not on PyPI); this runs in "
                                             "docker/ros-ci.sh with a sourced ROS 2")
    if shutil.which("ros2") is None:
        pytest.skip("the ros2 command line (ros2cli) is not installed")
    image = {"image": "image_raw"} if launch_file == "segmentation.launch.py" else {}
    launched = ros2_launch(launch_file, {"model": str(bundle.path), **image, **args}, user_environment)
    probes = {c: Probe(c, image_topic="image_raw", outputs=frozenset({"mask"}), name=f"probe_{c}") for c in cameras}
    try:
        for probe in probes.values():
            serve_a_frame(probe, launched)
    finally:
        for probe in probes.values():
            probe.close()
        launched.stop(signal.SIGINT, timeout=20.0)

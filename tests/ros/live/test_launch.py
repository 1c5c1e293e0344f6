"""Launch files: compiled and checked statically here; loaded for real where launch_ros exists."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SINGLE = REPO / "launch" / "segmentation.launch.py"
MULTI = REPO / "launch" / "multi_camera.launch.py"
EXPECTED_ARGUMENTS = {"model", "image", "camera_info", "namespace", "backend", "params_file",
                      "use_sim_time", "input_compressed", "dds_profile", "autostart"}


def parse(path: Path) -> ast.Module:
    source = path.read_text()
    compile(source, str(path), "exec")  # a syntax error fails here
    return ast.parse(source)


def constant(tree: ast.Module, name: str):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"no module-level {name} assignment")


def keywords(tree: ast.Module, func: str) -> list[dict[str, object]]:
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == func]
    return [{k.arg: (k.value.value if isinstance(k.value, ast.Constant) else k.value) for k in c.keywords}
            for c in calls]


def strings(tree: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_single_camera_launch_declares_its_arguments():
    from cityseg.ros.live.launch_plan import SINGLE_CAMERA_ARGUMENTS

    tree = parse(SINGLE)
    assert "SINGLE_CAMERA_ARGUMENTS" in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert {name for name, _, _ in SINGLE_CAMERA_ARGUMENTS} == EXPECTED_ARGUMENTS
    assert all(description for _, _, description in SINGLE_CAMERA_ARGUMENTS)
    assert dict((n, d) for n, d, _ in SINGLE_CAMERA_ARGUMENTS)["use_sim_time"] == "false"
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


def test_launch_files_start_what_launch_plan_decides():
    """Both launch files hand every argument to cityseg.ros.live.launch_plan and wrap its result in a
    LifecycleNode of the installed executable; the tests start the node from the same functions."""
    from cityseg.ros.core.outputs import NODE_EXECUTABLE, NODE_NAME

    for path, planner in ((SINGLE, "single_camera"), (MULTI, "rig")):
        names = {n.id for n in ast.walk(parse(path)) if isinstance(n, ast.Name)}
        assert {planner, "lifecycle_node"} <= names, path
    assert (NODE_EXECUTABLE, NODE_NAME) == ("segmentation_node", "segmentation")
    setup = (REPO / "setup.py").read_text()
    assert re.search(r'"segmentation_node = cityseg\.ros\.live\.main:main"', setup)
    assert (REPO / "config" / "segmentation.yaml").is_file()


def test_launch_plan_of_one_camera(tmp_path):
    from cityseg.ros.live.launch_plan import single_camera

    share = tmp_path / "share"
    (share / "config").mkdir(parents=True)
    for name in ("segmentation.yaml", "fastdds_large_images.xml"):
        (share / "config" / name).write_text((REPO / "config" / name).read_text())
    plan = single_camera({"model": "/m", "namespace": "front", "image": "/cam/image_raw/"}, share)
    assert plan.fqn == "/front/segmentation" and plan.overrides == {"model": "/m", "use_sim_time": False}
    assert dict(plan.remappings) == {"image": "/cam/image_raw", "image/compressed": "/cam/image_raw/compressed",
                                     "camera_info": "camera_info"}
    node_source = parse(REPO / "src" / "cityseg" / "ros" / "live" / "camera_io.py")  # where the node subscribes
    assert set(dict(plan.remappings)) <= strings(node_source)
    args = plan.ros_arguments("/tmp/over.yaml")
    assert args[:5] == ["--ros-args", "-r", "__node:=segmentation", "-r", "__ns:=/front"]
    assert ["--params-file", str(share / "config" / "segmentation.yaml"), "--params-file", "/tmp/over.yaml"] \
        == args[5:9]
    assert yaml.safe_load(plan.overrides_yaml()) == {"/**": {"ros__parameters": plan.overrides}}


def test_launch_plan_refuses_bad_arguments(tmp_path):
    from cityseg.config import ConfigError
    from cityseg.ros.live.launch_plan import rig, single_camera

    share = tmp_path / "share"
    (share / "config").mkdir(parents=True)
    (share / "config" / "segmentation.yaml").write_text((REPO / "config" / "segmentation.yaml").read_text())
    with pytest.raises(ConfigError, match="autostart: expected true or false"):
        single_camera({"model": "/m", "autostart": "yes please", "dds_profile": "none"}, share)
    with pytest.raises(ConfigError, match="cameras: expected a list"):
        rig({"model": "/m", "cameras": "{a: 1}", "dds_profile": "none"}, share)
    with pytest.raises(ConfigError, match="model is required"):  # the params file has no model
        single_camera({"dds_profile": "none"}, share)


def test_multi_camera_launch_one_process_or_one_per_camera(tmp_path):
    from cityseg.ros.live.launch_plan import RIG_ARGUMENTS, RIG_CAMERAS, rig

    assert len(RIG_CAMERAS) >= 2 and len(set(RIG_CAMERAS)) == len(RIG_CAMERAS)
    names = {name for name, _, _ in RIG_ARGUMENTS}
    assert {"model", "cameras", "one_process"} <= names and names - {"cameras", "one_process"} <= EXPECTED_ARGUMENTS
    defaults = dict((n, d) for n, d, _ in RIG_ARGUMENTS)
    assert defaults["one_process"] == "true" and defaults["cameras"] == "[" + ", ".join(RIG_CAMERAS) + "]"
    share = tmp_path / "share"
    (share / "config").mkdir(parents=True)
    (share / "config" / "segmentation.yaml").write_text((REPO / "config" / "segmentation.yaml").read_text())
    (one,) = rig({"model": "/m", "dds_profile": "none"}, share)
    assert one.fqn == "/segmentation" and one.overrides["cameras"] == list(RIG_CAMERAS)
    per_camera = rig({"model": "/m", "dds_profile": "none", "one_process": "false"}, share)
    assert [p.fqn for p in per_camera] == [f"/{c}/segmentation" for c in RIG_CAMERAS]
    assert dict(per_camera[0].remappings)["image"] == f"/{RIG_CAMERAS[0]}/image_raw"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_description_with_real_launch_ros():
    pytest.importorskip("launch_ros", reason="launch_ros is a ROS 2 package (not on PyPI); this runs in "
                                             "docker/ros-ci.sh with a sourced ROS 2")
    from launch.actions import DeclareLaunchArgument

    description = _load(SINGLE).generate_launch_description()
    names = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert names == EXPECTED_ARGUMENTS

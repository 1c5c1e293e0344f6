"""Launch files: compiled and checked statically here; loaded for real where launch_ros exists."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
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
    tree = parse(SINGLE)
    arguments = constant(tree, "ARGUMENTS")
    assert {name for name, _, _ in arguments} == EXPECTED_ARGUMENTS
    assert all(description for _, _, description in arguments)
    assert dict((n, d) for n, d, _ in arguments)["use_sim_time"] == "false"
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


def test_single_camera_launch_starts_the_installed_node():
    tree = parse(SINGLE)
    from cityseg.ros.outputs import NODE_EXECUTABLE, NODE_NAME

    (node,) = keywords(tree, "LifecycleNode")
    assert node["package"] == "cityseg"
    assert (node["executable"].id, node["name"].id) == ("NODE_EXECUTABLE", "NODE_NAME")  # the one definition
    assert (NODE_EXECUTABLE, NODE_NAME) == ("segmentation_node", "segmentation")
    setup = (REPO / "setup.py").read_text()
    assert re.search(r'"segmentation_node = cityseg\.ros\.node:main"', setup)
    assert "PROFILE_FILE" in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}  # large-images profile
    assert {"config", "segmentation.yaml", "cityseg"} <= strings(tree)  # default params file
    assert (REPO / "config" / "segmentation.yaml").is_file()


def test_launch_remappings_match_the_node_topics():
    tree = parse(SINGLE)
    (node,) = keywords(tree, "LifecycleNode")
    remapped = {pair.elts[0].value for pair in node["remappings"].elts}
    assert remapped == {"image", "image/compressed", "camera_info"}
    node_source = parse(REPO / "src" / "cityseg" / "ros" / "camera_io.py")  # where the node subscribes
    assert remapped <= strings(node_source)


def test_multi_camera_launch_one_process_or_one_per_camera():
    tree = parse(MULTI)
    cameras = constant(tree, "CAMERAS")
    assert len(cameras) >= 2 and len(set(cameras)) == len(cameras)
    assert "segmentation.launch.py" in strings(tree)  # one_process:=false includes it per camera
    names = {name for name, _, _ in constant(tree, "ARGUMENTS")}
    assert {"model", "cameras", "one_process"} <= names and names - {"cameras", "one_process"} <= EXPECTED_ARGUMENTS
    assert dict((n, d) for n, d, _ in constant(tree, "ARGUMENTS"))["one_process"] == "true"
    (node,) = keywords(tree, "LifecycleNode")  # one process: the same executable, the cameras parameter
    assert (node["executable"].id, node["name"].id) == ("NODE_EXECUTABLE", "NODE_NAME")
    default = dict((n, d) for n, d, _ in constant(tree, "ARGUMENTS"))["cameras"]
    assert default == "[" + ", ".join(cameras) + "]"


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

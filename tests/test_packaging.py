"""Packaging: package.xml is a real format-3 manifest, setup.py serves pip and colcon alike."""

import ast
import re
from pathlib import Path

from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_parses_with_catkin_pkg():
    package = parse_package(str(ROOT / "package.xml"))
    assert package.package_format == 3 and package.name == "cityseg"
    assert package.get_build_type() == "ament_python"
    exec_depends = {d.name for d in package.exec_depends}
    assert {"rclpy", "sensor_msgs", "vision_msgs", "diagnostic_msgs", "launch_ros",
            "python3-numpy", "python3-opencv"} <= exec_depends


def test_versions_agree():
    package = parse_package(str(ROOT / "package.xml"))
    setup_py = (ROOT / "setup.py").read_text()
    assert f'version="{package.version}"' in setup_py
    init = (ROOT / "src/cityseg/__init__.py").read_text()
    assert f'__version__ = "{package.version}"' in init


def test_every_ros_message_package_the_code_imports_is_declared():
    package = parse_package(str(ROOT / "package.xml"))
    declared = {d.name for d in package.exec_depends}
    used = set()
    for path in (ROOT / "src/cityseg/ros").glob("*.py"):
        used |= set(re.findall(r"from (\w+_msgs)\.msg import", path.read_text()))
    for path in (ROOT / "launch").glob("*.py"):
        used |= {m for m in re.findall(r"^\s*(?:from|import) (launch_ros|launch)\b", path.read_text(), re.M)}
    assert used and used <= declared, used - declared


def test_setup_installs_ros_entry_points():
    tree = ast.parse((ROOT / "setup.py").read_text())
    text = ast.unparse(tree)
    for needle in ("share/ament_index/resource_index/packages", "launch/*.launch.py", "config/*.yaml",
                   "segmentation_node = cityseg.ros.node:main", "cityseg = cityseg.cli:main"):
        assert needle in text
    assert (ROOT / "resource/cityseg").is_file()
    assert "install_scripts=$base/lib/cityseg" in (ROOT / "setup.cfg").read_text()
    assert (ROOT / "launch/segmentation.launch.py").is_file()
    assert (ROOT / "config/segmentation.yaml").is_file()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in ci and "colcon" in (ROOT / "Makefile").read_text()

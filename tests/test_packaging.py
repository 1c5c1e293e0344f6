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
                   "segmentation_node = cityseg.ros.live.main:main", "cityseg = cityseg.cli:main"):
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


def test_viewer_configs_parse_name_real_topics_and_are_installed():
    """config/cityseg.rviz and config/cityseg.foxglove.json (not opened in rviz2 or Foxglove here: no display)."""
    import json

    import yaml

    from cityseg.ros.core.outputs import BY_SUFFIX, output_topic

    rviz = yaml.safe_load((ROOT / "config/cityseg.rviz").read_text())
    displays = rviz["Visualization Manager"]["Displays"]
    rviz_topics = {d["Topic"]["Value"] for d in displays if d["Class"] == "rviz_default_plugins/Image"}
    foxglove = json.loads((ROOT / "config/cityseg.foxglove.json").read_text())
    panels = foxglove["configById"]
    fox_topics = {c["imageMode"]["imageTopic"] for key, c in panels.items() if key.startswith("Image!")}
    assert any(key.startswith("DiagnosticSummary!") for key in panels)
    assert set(json.dumps(foxglove["layout"]).split('"')) >= set(panels)  # every panel is laid out
    for topics in (rviz_topics, fox_topics):  # the launch file's default namespace, compressed outputs
        assert topics == {output_topic("/camera", s) for s in ("overlay/compressed", "color_mask/compressed")}
        assert all(BY_SUFFIX[t.split("/segmentation/")[1]].codec for t in topics)
    setup_py = (ROOT / "setup.py").read_text()
    assert 'glob("config/*.rviz")' in setup_py and 'glob("config/*.json")' in setup_py
    required = (ROOT / "tests/tools/check_colcon_install.py").read_text()
    assert "share/cityseg/config/cityseg.rviz" in required and "share/cityseg/config/cityseg.foxglove.json" in required

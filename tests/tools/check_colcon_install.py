"""Check that `colcon build` put the ROS 2 entry points where `ros2 launch/run` look for them."""

import sys
from pathlib import Path

REQUIRED = (
    "cityseg/share/cityseg/package.xml",
    "cityseg/share/cityseg/launch/segmentation.launch.py",
    "cityseg/share/cityseg/config/segmentation.yaml",
    "cityseg/share/cityseg/config/fastdds_large_images.xml",
    "cityseg/share/cityseg/config/cityseg.rviz",
    "cityseg/share/cityseg/config/cityseg.foxglove.json",
    "cityseg/share/cityseg/models/README.md",
    "cityseg/share/ament_index/resource_index/packages/cityseg",
    "cityseg/lib/cityseg/segmentation_node",
    "cityseg/lib/cityseg/cityseg",
)


def main(install: str) -> int:
    root = Path(install)
    missing = [p for p in REQUIRED if not (root / p).exists()]
    for path in REQUIRED:
        print(("MISSING " if path in missing else "ok      ") + path)
    if missing:
        print(f"colcon install tree {root} lacks {len(missing)} required file(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

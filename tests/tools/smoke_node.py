"""CI's last check: the installed node started the way README tells a user to start it.

    python tests/tools/smoke_node.py INSTALL_BASE [MODEL]

runs ``INSTALL_BASE/cityseg/lib/cityseg/segmentation_node --ros-args --params-file
INSTALL_BASE/cityseg/share/cityseg/config/segmentation.yaml -p model:=MODEL`` (MODEL: a
``make demo`` bundle, or the test suite's palette bundle built here) in a private, loopback-only
ROS 2 graph, and waits for it to reach ``active``. Exit 0 when it does; else 1, with the node's
last log line.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cityseg.benchmarking.ros_probe import NodeProcess, graph_environment  # noqa: E402

from support import ColconInstall, make_palette_bundle  # noqa: E402

READY_WITHIN_S = 60.0


def main(install_base: str, model: str | None = None) -> int:
    installed = ColconInstall(Path(install_base) / "cityseg")
    with tempfile.TemporaryDirectory() as tmp:
        model = model or str(make_palette_bundle(Path(tmp) / "palette").path)
        params_file = installed.share / "config" / "segmentation.yaml"
        command = [str(installed.node_executable), "--ros-args", "--params-file", str(params_file),
                   "-p", f"model:={model}"]
        env = installed.environment(graph_environment(200 + os.getpid() % 30, str(installed.share / "config"
                                                                                   / "fastdds_large_images.xml")))
        node = NodeProcess("", {}, env=env, command=command)
        started = time.monotonic()
        active = node.wait_for_output(": active: segmenting", READY_WITHIN_S)
        code, _ = node.stop()
    lines = node.output.strip().splitlines() or ["(no output)"]
    if not active or code != 0:
        print(f"smoke check FAILED: {' '.join(command)}\n  not active within {READY_WITHIN_S:.0f} s "
              f"(exit {code}); last log line: {lines[-1]}", file=sys.stderr)
        return 1
    print(f"smoke check ok: the installed segmentation_node with the installed segmentation.yaml reached active "
          f"in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

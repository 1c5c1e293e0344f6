"""Cost of one camera-only bird's-eye grid (``grid_from_masks``): a 250x250 grid at 0.2 m, the
masks of 1, 3 and 6 cameras of the synthetic street at 2048x1024 (masks at network resolution
1024x512), range 30 m. Prints the median and minimum of --repeat runs per camera count; the last
line is machine-readable: RESULT cams1_ms=... cams3_ms=... cams6_ms=...
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from cityseg.fusion.camera import CameraModel
from cityseg.fusion.grid import GROUND_CLASSES, GridSpec, cost_table, grid_from_masks
from cityseg.fusion.labelling import CameraMask
from cityseg.labels import class_space
from cityseg.ros.bag.lidar_bag import street_rig
from cityseg.ros.core.messages import CameraInfoValues
from cityseg.synthetic.scene3d import render_labels


def measure(cameras: int, repeat: int) -> tuple[float, float]:
    """(median, min) ms of one grid from ``cameras`` cameras' masks."""
    classes = [(c.id, c.name) for c in class_space("labelid").classes]
    costs, ground = cost_table(classes), [i for i, name in classes if name in GROUND_CLASSES]
    rig = street_rig(seed=1, cameras=cameras, width=2048, height=1024)
    network = CameraModel.from_camera_info(CameraInfoValues.pinhole(512, 1024, hfov_deg=90.0))
    masks = [CameraMask(c.model, c.pose.inverse(), render_labels(rig.scene, network, c.pose)) for c in rig.cameras]
    spec = GridSpec("base_link", 0.2, 250, 250, -25.0, -25.0)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        grid_from_masks(spec, masks, ground, costs, 30.0)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    results = {}
    for cameras in (1, 3, 6):
        median, best = measure(cameras, args.repeat)
        results[cameras] = median
        print(f"{cameras} camera(s): median {median:.1f} ms, min {best:.1f} ms")
    print("RESULT " + " ".join(f"cams{k}_ms={v:.1f}" for k, v in results.items()))


if __name__ == "__main__":
    main()

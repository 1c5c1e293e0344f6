"""LiDAR fusion benchmark: a ~120k-point cloud labelled with 1, 3 and 6 cameras at 2048x1024.

Input: the synthetic 3-D street (cityseg.synthetic.scene3d) scanned by a 64-beam LiDAR with
0.192-degree azimuth steps (64 x 1875 = 120,000 rays, NaN kept where no return), cameras around
the roof with ground-truth masks (rendered at 256x128 and nearest-upsampled to 2048x1024, the size
the node's masks have at output_scale 1).

Stages, each timed on its own (medians over --repeats after --warmup):
* projection: every camera's float32 frustum cull of the cloud, then the float64 transform and
  distortion model of the points left (project_cloud, as label_points does it); the line above
  the table compares CameraModel.project with cv2.projectPoints on one camera's full cloud;
* occlusion: the z-buffer and window test (visible) for every camera;
* labelling: cityseg.fusion.labelling.label_points end to end (projection, occlusion, overlap rule);
* message: the labelled cloud's bytes (write_labelled) and its PointCloud2 CDR (rosbags);
* grid: the 250x250 bird's-eye grid from the labelled points.
The last line is machine-readable: RESULT cameras=<n> total_ms=<labelling+message+grid> ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from cityseg.benchmarking.report import machine_description, update_doc
from cityseg.benchmarking.timing import median_ms
from cityseg.fusion.camera import CameraModel, pixel_index
from cityseg.fusion.cloud import read_xyz, write_labelled
from cityseg.fusion.extrinsics import Transform
from cityseg.fusion.grid import GridSpec, cost_table, grid_from_cloud
from cityseg.fusion.labelling import (
    CameraMask,
    OcclusionConfig,
    cloud_points,
    label_points,
    mask_focal,
    project_cloud,
    visible,
)
from cityseg.labels import class_space
from cityseg.ros.core.messages import CameraInfoValues, RosbagsMessages
from cityseg.synthetic.lidar import LidarSpec, scan, velodyne_cloud
from cityseg.synthetic.scene3d import camera_pose, make_street, render_labels

W, H = 2048, 1024
YAWS = [0, 70, -70, 180, 130, -130]


def rig(cameras: int, scene, lidar: Transform) -> list[CameraMask]:
    info = CameraInfoValues.pinhole(H, W, hfov_deg=90.0)
    out = []
    for yaw in YAWS[:cameras]:
        model = CameraModel.from_camera_info(info)
        pose = camera_pose(1.2 * np.cos(np.radians(yaw)), 0.6 * np.sin(np.radians(yaw)), 1.6, yaw)
        small = render_labels(scene, model, pose, (256, 128))
        mask = cv2.resize(small, (W, H), interpolation=cv2.INTER_NEAREST)
        out.append(CameraMask(model, pose.inverse() @ lidar, mask))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--update-doc", type=Path, help="write the table between the fusion markers of this doc")
    args = parser.parse_args()
    scene = make_street(np.random.default_rng(0))
    lidar = Transform(np.eye(3), np.array([0.0, 0.0, 1.9]))
    s = scan(scene, lidar, LidarSpec(beams=64, lower_deg=-24.0, upper_deg=4.0, azimuth_step_deg=0.192))
    layout, data, _ = velodyne_cloud(s)
    xyz = read_xyz(layout, data)
    print(f"machine: {machine_description()}; cloud: {len(xyz)} points ({layout.point_step}-byte Velodyne layout)")
    factory = RosbagsMessages()
    header = factory.header(1, 0, "lidar")
    classes = [(c.id, c.name) for c in class_space("labelid").classes]
    costs, spec = cost_table(classes), GridSpec("base_link", 0.2, 250, 250, -25.0, -25.0)
    occlusion = OcclusionConfig()
    pts64 = xyz.astype(np.float64)
    one = rig(1, scene, lidar)[0]
    in_cam = one.cloud_to_camera.apply(pts64)
    front = in_cam[:, 2] > 0.05
    own_ms = median_ms(lambda: one.model.project(in_cam), args.repeats, args.warmup)
    cv_ms = median_ms(lambda: cv2.projectPoints(in_cam[front], np.zeros(3), np.zeros(3), one.model.k,
                                                one.model.dist), args.repeats, args.warmup)
    print(f"projection of {len(xyz)} points, one camera: ours {own_ms:.2f} ms, cv2.projectPoints {cv_ms:.2f} ms "
          f"(on the {front.sum()} in front)")
    rows = []
    for n in (1, 3, 6):
        cams = rig(n, scene, lidar)

        points = cloud_points(xyz)

        def project(cams=cams, points=points):  # as label_points does it: float32 cull, float64 projection
            return [project_cloud(xyz, points, c.model, c.cloud_to_camera) for c in cams]

        projections = project()

        def occlude(cams=cams, projections=projections):
            for c, (_, u, v, depth) in zip(cams, projections):
                row, col = pixel_index(u, v, c.model.image_size, c.mask.shape)
                visible(row, col, depth, c.mask.shape, occlusion, mask_focal(c.model, c.mask.shape))

        labels = label_points(xyz, cams, occlusion)

        def message(labels=labels):
            out_layout, out_data = write_labelled(layout, data, labels.label, labels.confidence, labels.camera)
            return factory.serialize(factory.point_cloud(header, out_layout, out_data))

        def grid(labels=labels):
            return grid_from_cloud(spec, xyz, labels.label, costs, lidar)  # as the node and the bag tool do

        t = {"projection": median_ms(project, args.repeats, args.warmup),
             "occlusion": median_ms(occlude, args.repeats, args.warmup),
             "labelling": median_ms(lambda cams=cams: label_points(xyz, cams, occlusion), args.repeats, args.warmup),
             "message": median_ms(message, args.repeats, args.warmup),
             "grid": median_ms(grid, args.repeats, args.warmup)}
        t["total"] = t["labelling"] + t["message"] + t["grid"]
        labelled = int((labels.label != 255).sum())
        rows.append((n, t, labelled))
        print(f"{n} camera(s): " + ", ".join(f"{k} {v:.1f} ms" for k, v in t.items()) + f"; {labelled} labelled")
        print(f"RESULT cameras={n} total_ms={t['total']:.2f} labelling_ms={t['labelling']:.2f} "
              f"message_ms={t['message']:.2f} grid_ms={t['grid']:.2f}")
    if args.update_doc:
        table = ["| cameras | projection | occlusion | labelling (all) | message | grid | total per cloud | "
                 "points labelled |", "|---|---|---|---|---|---|---|---|"]
        table += [f"| {n} | {t['projection']:.1f} ms | {t['occlusion']:.1f} ms | {t['labelling']:.1f} ms | "
                  f"{t['message']:.1f} ms | {t['grid']:.1f} ms | **{t['total']:.1f} ms** | {labelled} / {len(xyz)} |"
                  for n, t, labelled in rows]
        update_doc(args.update_doc, "\n".join(table),
                   f"Measured on {machine_description()}; {len(xyz)}-point cloud, 2048x1024 masks, medians of "
                   f"{args.repeats} runs (`python benchmarks/fusion.py --update-doc docs/PERFORMANCE.md`). "
                   f"Projection of one camera: ours {own_ms:.1f} ms, cv2.projectPoints {cv_ms:.1f} ms.",
                   marker="fusion")


if __name__ == "__main__":
    main()

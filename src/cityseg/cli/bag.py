"""`cityseg bag`: segment every image of a recorded bag into a new rosbag2 (no ROS needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cityseg.cli import finite_float, non_negative_float, positive_float, positive_int
from cityseg.errors import CitysegError
from cityseg.fileio import write_json_atomic
from cityseg.fusion.config import FusionConfig
from cityseg.inference.backends import BACKEND_CHOICES
from cityseg.labels import ID_SPACES
from cityseg.ros.bag.replay import replay_bag
from cityseg.ros.bag.rosbag_io import topic_namespace
from cityseg.ros.core.outputs import (
    COMPRESSED_OUTPUTS,
    IMAGE_OUTPUTS,
    LABEL_INFO,
    NODE_NAME,
    OUTPUTS,
    PER_FRAME,
    SWITCHABLE,
    check_outputs,
    node_fqn,
)
from cityseg.ros.live.params import check_params_file, load_node_params

ALL_TOPICS = ",".join(o.suffix for o in OUTPUTS)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bag", help="replay a rosbag through the segmentation node's processing, offline",
        description="Reads a rosbag2 (sqlite3 or mcap) or ROS 1 bag, segments every Image or "
                    "CompressedImage of every camera (or of the --image-topic ones) exactly as "
                    "segmentation_node does, frames of different cameras batched, and writes a "
                    f"rosbag2 with <namespace>/{NODE_NAME}/{{{ALL_TOPICS}}}, keeping bag "
                    "timestamps, header stamps and QoS profiles. --params-file takes the node's own "
                    "parameters YAML, so the replay is what the node would publish.")
    p.add_argument("input", type=Path, metavar="INPUT", help="rosbag2 directory or ROS 1 .bag file")
    p.add_argument("output", type=Path, metavar="OUTPUT", help="rosbag2 directory to create")
    add_replay_options(p, copy_target="OUTPUT", several_image_topics=True)
    p.add_argument("--json", type=Path, metavar="SUMMARY", help="write the summary as JSON here")
    p.add_argument("--force", action="store_true", help="replace OUTPUT (and SUMMARY) if they exist")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def add_replay_options(p, copy_target: str, several_image_topics: bool = False) -> None:
    """The replay's options, shared by `cityseg bag` and `cityseg fleet`: model, node parameters,
    topics, outputs and storage; ``several_image_topics``: --image-topic may be repeated."""
    p.add_argument("--model", help="model bundle: a directory, or a name looked up in ./models, "
                                   "$CITYSEG_MODELS, the installed share dir (default: the params file's "
                                   "`model`)")
    p.add_argument("--params-file", type=Path, metavar="YAML",
                   help="the node's ROS 2 parameters file (e.g. config/segmentation.yaml): outputs, "
                        "output_scale, overlay_alpha, id_space, mono16_max, backend, model and the fusion's "
                        "(points_topic, extrinsics_file, grid_frame ...) are taken from it, validated and "
                        "applied as the node does; the flags below override it")
    if several_image_topics:
        p.add_argument("--image-topic", action="append", metavar="TOPIC",
                       help="image topic to segment; repeat it for several cameras (default: every Image "
                            "and CompressedImage topic of the bag, batched across cameras)")
    else:
        p.add_argument("--image-topic", help="image topic to segment (default: every image topic of the bag)")
    p.add_argument("--camera-info-topic",
                   help="CameraInfo topic of a single camera (default: each camera's <namespace>/camera_info, "
                        "or with one camera the only one)")
    p.add_argument("--copy-input", action="store_true",
                   help=f"also copy every input message to {copy_target}")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="output storage")
    p.add_argument("--backend", choices=BACKEND_CHOICES, help="default: auto (or the params file's)")
    p.add_argument("--artifact", help="the bundle's model file to run, by its card key (e.g. onnx_argmax or a "
                                      "fused-I/O graph); default: the params file's, else the automatic pick")
    p.add_argument("--id-space", choices=("auto", *ID_SPACES),
                   help="ids written in the mask (default: auto = labelid for Cityscapes models, else "
                        "the bundle's own label set)")
    p.add_argument("--alpha", type=finite_float, help="overlay opacity of the colour mask, 0-1 (default 0.5)")
    add_fusion_options(p)
    p.add_argument("--outputs",
                   help=f"comma-separated outputs to write, from {','.join(PER_FRAME)} (default: the raw "
                        f"outputs the node enables; the compressed ones, {','.join(COMPRESSED_OUTPUTS)}, "
                        f"only when named here: e.g. mask/compressed,overlay/compressed records a drive "
                        f"small; {LABEL_INFO} is always written)")


def add_fusion_options(p) -> None:
    """Labelled LiDAR clouds and the bird's-eye grid (docs/FUSION.md)."""
    g = p.add_argument_group("LiDAR fusion (docs/FUSION.md)")
    g.add_argument("--points-topic", metavar="TOPIC",
                   help="PointCloud2 topic to label with the cameras' masks: writes <ns>/segmentation/points")
    g.add_argument("--extrinsics", type=Path, metavar="YAML",
                   help="static transforms (parent, child, translation, rotation) instead of the bag's /tf_static")
    g.add_argument("--sync-tolerance-ms", type=non_negative_float,
                   help="a camera's mask is used for a cloud when stamped within this of it (default 50)")
    g.add_argument("--points-drop-labels", metavar="NAMES",
                   help="comma-separated class names whose points are left out of the cloud (e.g. sky,road)")
    g.add_argument("--fixed-frame", metavar="FRAME",
                   help="a frame that does not move with the vehicle (e.g. odom): with the bag's /tf, each "
                        "sensor's pose is looked up at its own stamp through it (ego motion compensated)")
    g.add_argument("--tf-tolerance-ms", type=non_negative_float, default=100.0,
                   help="a /tf lookup this far outside the transform's samples takes the nearest one; "
                        "farther, the transform is missing (default 100)")
    g.add_argument("--grid-frame", metavar="FRAME",
                   help="also write <ns>/segmentation/grid and grid/labels in this frame (e.g. base_link); "
                        "without --points-topic: the camera-only grid of the masks' ground classes")
    g.add_argument("--grid-range", type=positive_float, metavar="M",
                   help="camera-only grid: cells up to this far from a camera (default 30)")
    g.add_argument("--grid-resolution", type=positive_float, metavar="M",
                   help="metres per grid cell (default 0.2)")
    g.add_argument("--grid-cells", type=positive_int, help="cells per side of the square grid (default 250)")
    g.add_argument("--grid-costs", metavar="NAME:COST,...",
                   help="grid costs by class name on top of the defaults (road 0, sidewalk 20, obstacles 100, "
                        "unknown -1), e.g. sidewalk:50,vegetation:-1")
    g.add_argument("--grid-origin", type=grid_origin, metavar="X,Y",
                   help="corner of cell (0, 0) in the grid frame (default: the frame's origin at the centre)")


def grid_origin(text: str) -> tuple[float, float]:
    """An argparse type: 'X,Y' -> two finite numbers (metres)."""
    parts = text.split(",")
    try:
        if len(parts) == 2:
            return finite_float(parts[0]), finite_float(parts[1])
    except argparse.ArgumentTypeError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not X,Y: two finite numbers in metres, e.g. -25,-25")


FUSION_FLAGS = {"points_topic": "points_topic", "extrinsics": "extrinsics_file", "fixed_frame": "fixed_frame",
                "sync_tolerance_ms": "sync_tolerance_ms", "points_drop_labels": "points_drop_labels",
                "grid_frame": "grid_frame", "grid_resolution": "grid_resolution", "grid_cells": "grid_cells",
                "grid_costs": "grid_costs", "grid_range": "grid_range"}
"""Fusion flag (argparse dest) -> the node parameter it sets on top of the params file."""


def fusion_parameters(args: argparse.Namespace) -> dict:
    """The node parameters the fusion flags given set (comma lists as the node's string arrays)."""
    out = {}
    for dest, name in FUSION_FLAGS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if dest in ("points_drop_labels", "grid_costs"):
            value = tuple(v.strip() for v in value.split(",") if v.strip())
        out[name] = str(value) if dest == "extrinsics" else value
    return out


def fusion_config(args: argparse.Namespace, settings):
    """The replay's FusionConfig: the node's parameters ``settings`` (the params file with the flags on
    top, :func:`node_settings`) through the node's own builder, FusionConfig.from_params, plus the bag
    tool's --tf-tolerance-ms and --grid-origin; labelled clouds with a points topic, the camera-only
    grid with a grid frame alone; None with neither."""
    if not settings.points_topic and not settings.grid_frame:
        for flag in ("extrinsics", "fixed_frame"):
            if getattr(args, flag, None):
                raise CitysegError(f"--{flag.replace('_', '-')} needs --points-topic or --grid-frame")
        return None
    try:
        return FusionConfig.from_params(settings, tf_tolerance_ms=args.tf_tolerance_ms,
                                        grid_origin=args.grid_origin or None)
    except ValueError as exc:
        raise CitysegError(f"fusion options: {exc}") from None


def parse_outputs(text: str) -> set[str]:
    """'mask,overlay' -> {'mask', 'overlay'}; unknown names are an error."""
    chosen = {name.strip() for name in text.split(",") if name.strip()}
    try:
        return set(check_outputs(chosen, where="--outputs"))
    except ValueError as exc:
        raise CitysegError(f"{exc} (image outputs: {', '.join(IMAGE_OUTPUTS)})") from None


def node_settings(args: argparse.Namespace, command: str = "cityseg bag"):
    """The node's parameters for this replay: the params file (if any) with the flags on top."""
    flags = {"model": args.model, "backend": args.backend, "artifact": args.artifact, "id_space": args.id_space,
             "overlay_alpha": args.alpha}
    if args.fixed_frame and args.extrinsics is not None:
        raise CitysegError("--fixed-frame needs the bag's /tf (moving frames); --extrinsics holds static "
                           "transforms only: drop one of them")
    overrides = {name: value for name, value in flags.items() if value is not None} | fusion_parameters(args)
    if args.outputs is not None:
        chosen = parse_outputs(args.outputs)
        overrides.update({o.param: o.suffix in chosen for o in SWITCHABLE})
    else:  # a replay builds every enabled output for every frame (no subscriber gates it)
        overrides.update({o.param: False for o in SWITCHABLE if o.suffix in COMPRESSED_OUTPUTS})
    if args.params_file is not None:
        node = None  # every section of the file, unless the camera (hence the node's namespace) is known
        images = [args.image_topic] if isinstance(args.image_topic, str) else args.image_topic or []
        if len(images) == 1:
            node = node_fqn(topic_namespace(images[0]))
        return check_params_file(str(args.params_file), overrides, node)
    if "model" not in overrides:
        raise CitysegError(f"{command}: --model is required (or a --params-file that sets `model`)")
    return load_node_params(overrides, where=f"{command} options")


def run(args: argparse.Namespace) -> int:
    settings = node_settings(args)
    if args.json is not None and args.json.exists() and not args.force:
        raise CitysegError(f"{args.json} already exists; pass --force to overwrite it or choose another --json")
    try:
        summary = replay_bag(args.input, args.output, settings.model, image_topic=args.image_topic,
                             camera_info_topic=args.camera_info_topic, copy_input=args.copy_input,
                             force=args.force, backend=settings.backend, progress=not args.no_progress,
                             storage=args.storage, config=settings.processor_config(),
                             fusion=fusion_config(args, settings))
    except OSError as exc:  # the storage plugin's write (a full disk) names no file: it is OUTPUT
        if exc.filename is None:
            exc.filename = str(args.output)
        raise
    print(summary.format())
    if args.json is not None:
        write_json_atomic(args.json, summary.to_json())
        print(f"summary written to {args.json}")
    return 0

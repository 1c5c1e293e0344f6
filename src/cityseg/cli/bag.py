"""`cityseg bag`: segment every image of a recorded bag into a new rosbag2 (no ROS needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cityseg.inference.backends import BACKEND_CHOICES
from cityseg.labels import ID_SPACES

OUTPUT_CHOICES = ("mask", "color_mask", "overlay", "camera_info")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bag", help="replay a rosbag through the segmentation node's processing, offline",
        description="Reads a rosbag2 (sqlite3 or mcap) or ROS 1 bag, segments every Image or "
                    "CompressedImage of one topic exactly as segmentation_node does, and writes a "
                    "rosbag2 with <namespace>/segmentation/{mask,color_mask,overlay,camera_info,"
                    "label_info}, keeping bag timestamps, header stamps and QoS profiles.")
    p.add_argument("input", type=Path, metavar="INPUT", help="rosbag2 directory or ROS 1 .bag file")
    p.add_argument("output", type=Path, metavar="OUTPUT", help="rosbag2 directory to create")
    p.add_argument("--model", required=True, type=Path,
                   help="model bundle: a directory, or a name looked up in ./models, "
                        "$CITYSEG_MODELS, the installed share dir")
    p.add_argument("--image-topic", help="image topic (needed when the bag has several)")
    p.add_argument("--camera-info-topic",
                   help="CameraInfo topic (default: <namespace>/camera_info, or the only one)")
    p.add_argument("--copy-input", action="store_true", help="also copy every input message to OUTPUT")
    p.add_argument("--json", type=Path, metavar="SUMMARY", help="write the summary as JSON here")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="output storage")
    p.add_argument("--backend", default="auto", choices=BACKEND_CHOICES)
    p.add_argument("--id-space", choices=ID_SPACES, default="labelid", help="ids written in the mask")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the colour mask (0-1)")
    p.add_argument("--outputs", default=",".join(OUTPUT_CHOICES),
                   help=f"comma-separated outputs to write (default: all of {','.join(OUTPUT_CHOICES)}; "
                        "label_info is always written)")
    p.add_argument("--force", action="store_true", help="replace OUTPUT (and SUMMARY) if they exist")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def parse_outputs(text: str) -> set[str]:
    """'mask,overlay' -> {'mask', 'overlay'}; unknown names are an error."""
    from cityseg.errors import CitysegError

    chosen = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(chosen - set(OUTPUT_CHOICES))
    if unknown:
        raise CitysegError(f"--outputs: unknown output(s) {', '.join(unknown)}; choose from "
                           f"{', '.join(OUTPUT_CHOICES)}")
    if not chosen & {"mask", "color_mask", "overlay"}:
        raise CitysegError("--outputs must include at least one of mask, color_mask, overlay")
    return chosen


def run(args: argparse.Namespace) -> int:
    from cityseg.errors import CitysegError
    from cityseg.fileio import write_json_atomic
    from cityseg.ros.bag import replay_bag
    from cityseg.ros.processor import ProcessorConfig

    outputs = parse_outputs(args.outputs)
    if args.json is not None and args.json.exists() and not args.force:
        raise CitysegError(f"{args.json} already exists; pass --force to overwrite it or choose another --json")
    try:
        config = ProcessorConfig(publish_mask="mask" in outputs, publish_color="color_mask" in outputs,
                                 publish_overlay="overlay" in outputs,
                                 publish_camera_info="camera_info" in outputs,
                                 overlay_alpha=args.alpha, id_space=args.id_space)
    except ValueError as exc:
        raise CitysegError(f"--alpha: {exc}") from None
    summary = replay_bag(args.input, args.output, args.model, image_topic=args.image_topic,
                         camera_info_topic=args.camera_info_topic, copy_input=args.copy_input,
                         force=args.force, backend=args.backend, progress=not args.no_progress,
                         storage=args.storage, config=config)
    print(summary.format())
    if args.json is not None:
        write_json_atomic(args.json, summary.to_json())
        print(f"summary written to {args.json}")
    return 0

"""`cityseg fleet`: segment many bags on Ray (local by default), each as `cityseg bag` would."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cityseg.cli import positive_float
from cityseg.cli.bag import add_replay_options, fusion_config, node_settings
from cityseg.fleet.plan import ReplayOptions, collect_bags
from cityseg.fleet.run import FleetConfig, import_ray, run_fleet
from cityseg.fleet.summary import SUMMARY_FILE, format_summary


def add_parser(sub) -> None:
    p = sub.add_parser(
        "fleet", help="segment many bags on a Ray cluster (a local one by default)",
        description="Segments every bag given (rosbag2 directories or ROS 1 .bag files; directories "
                    "are searched for bags) exactly as `cityseg bag` does, on Ray workers that load the "
                    "model once. Each bag becomes OUT/<bag name>/, written under a temporary name and "
                    "renamed when complete; OUT/fleet.json summarises the run. A rerun skips the bags "
                    "whose output is complete for the same model, parameters and input. The bags and "
                    "OUT must be readable (OUT writable) by every worker at the same path (shared "
                    "storage). Exit status 1 when any bag failed. Needs the `fleet` extra (Ray).")
    p.add_argument("bags", nargs="*", type=Path, metavar="BAG",
                   help="rosbag2 directory, ROS 1 .bag file, or a directory searched for them")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory of the output bags")
    p.add_argument("--manifest", type=Path, metavar="FILE",
                   help="text file of bag paths, one a line (# comments; relative to the file)")
    add_replay_options(p, copy_target="each output bag")
    p.add_argument("--workers", type=_positive_int, metavar="N",
                   help="Ray actors segmenting bags (default: as many as the cluster's CPUs/GPUs fit)")
    p.add_argument("--cpus-per-worker", type=positive_float, default=1.0, metavar="C", help="default 1")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                   help="GPUs per worker on GPU clusters (default 0); e.g. 1 with --backend tensorrt")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster to join, e.g. ray://head:10001 or head:6379 (default: $RAY_ADDRESS, "
                        "else a local Ray sized to this machine)")
    p.add_argument("--force", action="store_true",
                   help="segment every bag again, replacing existing outputs")
    p.add_argument("--json", action="store_true", help="print the summary (fleet.json) to stdout as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    import_ray(args.address)  # say how to install it before anything else
    settings = node_settings(args, command="cityseg fleet")
    bags = collect_bags(args.bags, args.manifest, args.out)
    options = ReplayOptions(model=settings.model, backend=settings.backend,
                            config=settings.processor_config(), storage=args.storage,
                            image_topic=args.image_topic, camera_info_topic=args.camera_info_topic,
                            copy_input=args.copy_input, fusion=fusion_config(args, settings))
    config = FleetConfig(args.out, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                         gpus_per_worker=args.gpus_per_worker, address=args.address, force=args.force,
                         progress=not args.no_progress)
    summary = run_fleet(bags, options, config)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print(format_summary(summary))
        print(f"summary written to {args.out / SUMMARY_FILE}")
    return 1 if summary["totals"]["failed"] else 0

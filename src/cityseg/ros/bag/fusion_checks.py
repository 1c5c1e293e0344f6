"""What keeps a replay's fusion from exiting 0 with an empty result: the ``--fixed-frame`` checked
against the bag's /tf before the replay, a tally of what was written (messages per topic, points
labelled, grid cells known), and a refusal when nothing was labelled."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cityseg.errors import InputError
from cityseg.fusion.cloud import UNKNOWN, CloudLayout


def tf_frames(reader, tf_topics: dict[str, str], kind: str = "dynamic") -> set[str]:
    """Every frame named (parent or child) in the bag's /tf ('dynamic') or /tf_static ('static')."""
    conns = [c for c in reader.connections if tf_topics.get(c.topic) == kind]
    frames: set[str] = set()
    for conn, _, raw in reader.messages(connections=conns):
        try:
            msg = reader.deserialize(raw, conn.msgtype)
        except Exception:  # corrupt CDR: the replay says so when it reads the message
            continue
        for ts in msg.transforms:
            frames.update({str(ts.header.frame_id).lstrip("/"), str(ts.child_frame_id).lstrip("/")})
    return frames


def check_fixed_frame(reader, tf_topics: dict[str, str], fixed_frame: str, bag: Path) -> None:
    """InputError, before the replay, when ``--fixed-frame`` cannot work: the bag has no /tf, or no
    frame of that name in its /tf (every lookup through it would fail and label nothing)."""
    if not fixed_frame:
        return
    if "dynamic" not in tf_topics.values():
        raise InputError(f"--fixed-frame {fixed_frame}: {bag} has no /tf (tf2_msgs/TFMessage) topic; a fixed frame "
                         "needs the moving transforms of /tf - drop --fixed-frame for a standing rig, or "
                         "replay a bag that recorded /tf")
    frames = tf_frames(reader, tf_topics)
    if fixed_frame not in frames:
        raise InputError(f"--fixed-frame {fixed_frame}: no frame of that name in {bag} /tf (its frames: "
                         f"{', '.join(sorted(frames)) or 'none'}); give one of them, e.g. odom")


@dataclass
class Tally:
    """What a replay's fusion wrote: messages per output topic, points labelled of points seen,
    known cells of the grids."""

    written: dict[str, int] = field(default_factory=dict)
    points: int = 0
    labelled_points: int = 0
    known_cells: int = 0

    def start(self, topics: dict[str, str]) -> None:
        self.written = dict.fromkeys(topics.values(), 0)

    def wrote(self, topic: str) -> None:
        self.written[topic] = self.written.get(topic, 0) + 1

    def cloud(self, layout: CloudLayout, data: bytes) -> None:
        """Count the points of a labelled cloud and those with a label."""
        flat = np.frombuffer(data, np.uint8)
        rows = flat[:len(flat) // layout.point_step * layout.point_step].reshape(-1, layout.point_step)
        labels = rows[:, layout.field("label").offset]
        self.points += len(labels)
        self.labelled_points += int((labels != UNKNOWN).sum())

    def grid(self, label: np.ndarray) -> None:
        self.known_cells += int((np.asarray(label) != UNKNOWN).sum())

    def to_json(self) -> dict:
        return {"written": dict(self.written), "points": self.points, "labelled_points": self.labelled_points,
                "known_cells": self.known_cells}


def _reasons(counters: dict) -> str:
    said = [f"{what} {counts}" for what, counts in (("no transform", counters.get("no_transform")),
                                                    ("no mask in tolerance", counters.get("no_mask"))) if counts]
    return "; ".join(said) or "see the warnings above"


def require_labelled(summary: dict, points_topic: str, bag: Path) -> None:
    """InputError when a replay of ``points_topic`` labelled no point of any cloud."""
    if summary["labelled_points"]:
        return
    if not summary.get("clouds"):
        raise InputError(f"{bag}: no cloud of {points_topic} could be labelled ({summary.get('bad_clouds', 0)} "
                         "bad); nothing was written")
    raise InputError(f"{bag}: not one of the {summary['points']} points of the {summary['clouds']} cloud(s) of "
                     f"{points_topic} was labelled ({_reasons(summary)}); nothing was written - check "
                     "--fixed-frame, --extrinsics, --sync-tolerance-ms and the cameras' CameraInfo")


def require_grid(summary: dict, bag: Path) -> None:
    """InputError when a camera-only grid replay wrote no grid, or grids without one known cell."""
    if summary["grids"] and summary["known_cells"]:
        return
    made = f"{summary['grids']} grid(s) without one known cell" if summary["grids"] else "no grid"
    raise InputError(f"{bag}: the camera-only grid replay made {made} ({_reasons(summary)}); nothing was "
                     "written - check --grid-frame, --fixed-frame, --extrinsics and --grid-range")

"""What a bag replay read, wrote and how long it took, per camera and in total. No ROS."""

from __future__ import annotations

from dataclasses import dataclass, field

from cityseg.ros.core.processor import STAGES


@dataclass
class FailedFrame:
    """An input image message that was reported and skipped."""

    index: int
    """0-based position among its image topic's messages."""
    stamp: int
    """Bag timestamp (ns) of the message."""
    reason: str
    topic: str = ""
    """The image topic it came from."""

    def to_json(self) -> dict:
        return {"index": self.index, "stamp": self.stamp, "reason": self.reason, "topic": self.topic}


@dataclass
class CameraSummary:
    """One image topic of a replay: what it read and wrote."""

    image_topic: str
    camera_info_topic: str | None
    output_topics: dict[str, str]
    """Output suffix -> topic, as the node publishes them for this camera."""
    frames_in: int = 0
    frames_out: int = 0
    failed: list[FailedFrame] = field(default_factory=list)
    stage_total_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0), repr=False)
    """Summed milliseconds per stage over the frames written."""

    @property
    def stage_ms(self) -> dict[str, float]:
        """Mean milliseconds per stage per frame written ({} before the first)."""
        if not self.frames_out:
            return {}
        return {k: v / self.frames_out for k, v in self.stage_total_ms.items()}

    def written(self, timings: dict[str, float]) -> None:
        """A frame's outputs were written after ``timings`` (ms per stage)."""
        self.frames_out += 1
        for stage, ms in timings.items():
            self.stage_total_ms[stage] = self.stage_total_ms.get(stage, 0.0) + ms

    def to_json(self) -> dict:
        return {"image_topic": self.image_topic, "camera_info_topic": self.camera_info_topic,
                "output_topics": self.output_topics, "frames_in": self.frames_in, "frames_out": self.frames_out,
                "failed": [f.to_json() for f in self.failed],
                "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()}}


@dataclass
class BagSummary:
    """What a replay read and wrote, per camera (``cameras``) and in total.

    ``frames_in``, ``frames_out``, ``failed`` and ``stage_ms`` are totals over every camera;
    ``image_topic``, ``camera_info_topic`` and ``output_topics`` are the camera's when the replay
    segmented one image topic (as before multi-camera replay); with several, ``image_topic``
    lists them (comma-separated), ``camera_info_topic`` is None and ``output_topics`` is every
    camera's, keyed ``<image topic>:<suffix>``.
    """

    input: str
    output: str
    cameras: list[CameraSummary]
    wall_s: float = 0.0
    copied_topics: list[str] = field(default_factory=list)
    fusion: dict | None = None
    """With --points-topic: the fusion's output topics and counters (clouds, bad_clouds, no_mask, no_transform);
    camera-only grid (--grid-frame alone): topics, grids, no_mask, no_transform. Both: ``written``
    (messages per output topic), points, labelled_points and known_cells."""

    @property
    def image_topic(self) -> str:
        return ", ".join(c.image_topic for c in self.cameras)

    @property
    def camera_info_topic(self) -> str | None:
        return self.cameras[0].camera_info_topic if len(self.cameras) == 1 else None

    @property
    def output_topics(self) -> dict[str, str]:
        if len(self.cameras) == 1:
            return self.cameras[0].output_topics
        return {f"{c.image_topic}:{suffix}": topic for c in self.cameras for suffix, topic in c.output_topics.items()}

    @property
    def frames_in(self) -> int:
        return sum(c.frames_in for c in self.cameras)

    @property
    def frames_out(self) -> int:
        return sum(c.frames_out for c in self.cameras)

    @property
    def failed(self) -> list[FailedFrame]:
        return sorted((f for c in self.cameras for f in c.failed), key=lambda f: (f.stamp, f.topic))

    @property
    def stage_ms(self) -> dict[str, float]:
        """Mean milliseconds per stage over every frame written; 'publish' is serialising and writing."""
        if not self.frames_out:
            return {}
        return {stage: sum(c.stage_total_ms.get(stage, 0.0) for c in self.cameras) / self.frames_out
                for stage in STAGES}

    def to_json(self) -> dict:
        return {"frames_in": self.frames_in, "frames_out": self.frames_out,
                "failed": [f.to_json() for f in self.failed],
                "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
                "input": self.input, "output": self.output, "image_topic": self.image_topic,
                "camera_info_topic": self.camera_info_topic, "output_topics": self.output_topics,
                "cameras": [c.to_json() for c in self.cameras],
                "copied_topics": self.copied_topics, "wall_s": round(self.wall_s, 3),
                **({"fusion": self.fusion} if self.fusion is not None else {})}

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        """A few lines for the terminal: one per camera (when several), then the failures and timings."""
        lines = [f"{self.image_topic if len(self.cameras) == 1 else f'{len(self.cameras)} cameras'}: "
                 f"{self.frames_in} frames in, {self.frames_out} out, {len(self.failed)} failed "
                 f"({self.wall_s:.1f} s) -> {self.output}"]
        if len(self.cameras) > 1:
            lines += [f"  {c.image_topic}: {c.frames_in} in, {c.frames_out} out, {len(c.failed)} failed"
                      for c in self.cameras]
        failed = self.failed
        where = (lambda f: f"{f.topic} ") if len(self.cameras) > 1 else (lambda f: "")
        lines += [f"  failed {where(f)}#{f.index} at {f.stamp}: {f.reason}" for f in failed[:10]]
        if len(failed) > 10:
            lines.append(f"  ... and {len(failed) - 10} more (see --json)")
        if self.fusion is not None:
            f = self.fusion
            done = f"{f['clouds']} clouds labelled, {f['bad_clouds']} bad" if "clouds" in f else \
                f"{f['grids']} camera-only grids"
            written = f.get("written") or dict.fromkeys(f["topics"].values(), "?")
            wrote = [f"{topic} ({n})" for topic, n in written.items() if n]
            empty = [topic for topic, n in written.items() if not n]
            done += (f" ({f['labelled_points']} of {f['points']} points labelled)" if f.get("points") else "")
            lines.append(f"  fusion: {done} -> wrote "
                         + (", ".join(wrote) or "nothing")
                         + (f"; nothing written to {', '.join(empty)}" if empty else "")
                         + "".join(f"; {k} {v}" for k, v in (("no mask", f["no_mask"]),
                                                             ("no transform", f["no_transform"])) if v))
        if self.stage_ms:
            lines.append("  mean per frame: " + ", ".join(f"{k} {v:.1f} ms" for k, v in self.stage_ms.items()))
        return "\n".join(lines)

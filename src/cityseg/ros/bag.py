"""Offline replay: run the node's FrameProcessor over a recorded bag and write a rosbag2. No ROS.

Input: a rosbag2 directory (sqlite3 or mcap) or a ROS 1 ``.bag``, read with rosbags' AnyReader.
Output: a rosbag2 (format 9, sqlite3 or mcap) holding, under the image topic's namespace,
``<ns>/segmentation/{mask,color_mask,overlay,camera_info,label_info}`` (and the outputs the config
names, e.g. ``mask/compressed``) - the topics the node publishes when it runs as ``segmentation``
in namespace ``<ns>`` - with the input's bag
timestamps, header stamps and QoS profiles, and message definitions from rosbags' typestore, so
``ros2 bag play`` replays it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cityseg.bundle import Bundle
from cityseg.errors import CitysegError, InputError
from cityseg.ros.bagio import (latched_qos, normalize_topic, offered_qos, open_reader, open_writer,
                               staged_directory, topic_namespace)
from cityseg.ros.messages import CAMERA_INFO, IMAGE_TYPES, CameraInfoValues, RosbagsMessages, header_fields
from cityseg.ros.outputs import (BY_SUFFIX, CAMERA_INFO as CAMERA_INFO_OUT, LABEL_INFO as LABEL_INFO_OUT,
                                 NODE_NAME, OUTPUTS, output_topic)
from cityseg.ros.processor import STAGES, FrameProcessor, ProcessorConfig

log = logging.getLogger(__name__)



@dataclass
class FailedFrame:
    """An input image message that was reported and skipped."""

    index: int
    """0-based position among the image topic's messages."""
    stamp: int
    """Bag timestamp (ns) of the message."""
    reason: str


@dataclass
class BagSummary:
    """What a replay read, wrote and how long each stage took."""

    input: str
    output: str
    image_topic: str
    camera_info_topic: str | None
    output_topics: dict[str, str]
    frames_in: int = 0
    frames_out: int = 0
    failed: list[FailedFrame] = field(default_factory=list)
    stage_ms: dict[str, float] = field(default_factory=dict)
    """Mean milliseconds per stage; 'publish' is serialising and writing the outputs."""
    wall_s: float = 0.0
    copied_topics: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"frames_in": self.frames_in, "frames_out": self.frames_out,
                "failed": [{"index": f.index, "stamp": f.stamp, "reason": f.reason} for f in self.failed],
                "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
                "input": self.input, "output": self.output, "image_topic": self.image_topic,
                "camera_info_topic": self.camera_info_topic, "output_topics": self.output_topics,
                "copied_topics": self.copied_topics, "wall_s": round(self.wall_s, 3)}

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        """A few lines for the terminal."""
        lines = [f"{self.image_topic}: {self.frames_in} frames in, {self.frames_out} out, "
                 f"{len(self.failed)} failed ({self.wall_s:.1f} s) -> {self.output}"]
        lines += [f"  failed #{f.index} at {f.stamp}: {f.reason}" for f in self.failed[:10]]
        if len(self.failed) > 10:
            lines.append(f"  ... and {len(self.failed) - 10} more (see --json)")
        if self.stage_ms:
            lines.append("  mean per frame: " + ", ".join(f"{k} {v:.1f} ms" for k, v in self.stage_ms.items()))
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# Topics
# ------------------------------------------------------------------------------------------

def output_topics(image_topic: str, node_name: str = NODE_NAME) -> dict[str, str]:
    """Output suffix -> topic, as the node named ``node_name`` publishes them in the camera's namespace."""
    namespace = topic_namespace(image_topic)
    return {output.suffix: output_topic(namespace, output.suffix, node_name) for output in OUTPUTS}


def _pick_topic(topics: dict[str, str], wanted: str | None, types: tuple[str, ...], what: str,
                flag: str, bag: Path) -> str | None:
    """The topic named ``wanted`` (slash-insensitive) or, if None, the only one of ``types``."""
    candidates = sorted(t for t, msgtype in topics.items() if msgtype in types)
    if wanted is not None:
        for topic in topics:
            if normalize_topic(topic) == normalize_topic(wanted):
                if topics[topic] not in types:
                    raise InputError(f"{bag}: topic {topic} holds {topics[topic]}, not {' or '.join(types)}")
                return topic
        raise InputError(f"{bag}: no topic {wanted!r}; {what} topics in the bag: "
                         f"{', '.join(candidates) or 'none'}")
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        return None
    raise InputError(f"{bag}: {len(candidates)} {what} topics ({', '.join(candidates)}); choose one with {flag}")


def _pick_camera_info(topics: dict[str, str], wanted: str | None, image_topic: str, bag: Path) -> str | None:
    if wanted is None:
        sibling = f"{topic_namespace(image_topic)}/camera_info"
        if topics.get(sibling) == CAMERA_INFO:
            return sibling
    try:
        return _pick_topic(topics, wanted, (CAMERA_INFO,), "CameraInfo", "--camera-info-topic", bag)
    except InputError:
        if wanted is not None:
            raise
        log.warning("%s: several CameraInfo topics and none beside %s; ~/camera_info is not written "
                    "(choose one with --camera-info-topic)", bag, image_topic)
        return None


# ------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------

def _check_output(input_path: Path, output: Path, force: bool) -> None:
    src, dst = input_path.resolve(), output.resolve()
    if dst == src or dst in src.parents or src in dst.parents:
        raise CitysegError(f"{output}: the output must not be the input bag {input_path}, contain it "
                           "or lie inside it; choose another output path")
    if (output.exists() or output.is_symlink()) and not force:
        raise CitysegError(f"{output} already exists; choose another output path or pass --force to replace it")


# ------------------------------------------------------------------------------------------
# Copying the input
# ------------------------------------------------------------------------------------------

class _InputCopier:
    """Copies every input message into the output bag (ROS 1 messages migrated to ROS 2)."""

    def __init__(self, reader, writer, typestore, taken: set[str]):
        self.reader, self.writer, self.typestore = reader, writer, typestore
        self.targets: dict[int, object] = {}
        self.skipped: set[str] = set()
        self.cache: dict = {}
        added: dict[tuple[str, str], object] = {}
        for conn in reader.connections:
            key = (conn.topic, conn.msgtype)
            if conn.topic in taken:
                raise InputError(f"topic {conn.topic} is both in the input bag and an output topic; "
                                 "is the input already a segmentation bag? Drop --copy-input")
            if key not in added:
                added[key] = self._add(conn)
            if added[key] is not None:
                self.targets[conn.id] = added[key]
            else:
                self.skipped.add(conn.topic)

    def _add(self, conn):
        if self.reader.is2:
            if conn.msgdef.data and conn.digest:
                return self.writer.add_connection(conn.topic, conn.msgtype, msgdef=conn.msgdef.data,
                                                  rihs01=conn.digest,
                                                  serialization_format=conn.ext.serialization_format,
                                                  offered_qos_profiles=offered_qos(conn))
            return self.writer.add_connection(conn.topic, conn.msgtype, typestore=self.reader.typestore,
                                              offered_qos_profiles=offered_qos(conn))
        if conn.msgtype not in self.typestore.types:
            log.warning("--copy-input: %s (%s) has no ROS 2 equivalent here; not copied", conn.topic, conn.msgtype)
            return None
        return self.writer.add_connection(conn.topic, conn.msgtype, typestore=self.typestore)

    @property
    def topics(self) -> list[str]:
        return sorted({c.topic for c in self.targets.values()})

    def copy(self, conn, timestamp: int, raw: bytes) -> None:
        target = self.targets.get(conn.id)
        if target is None:
            return
        if not self.reader.is2:
            from rosbags.convert.converter import migrate_message

            try:
                msg = self.reader.deserialize(raw, conn.msgtype)
                ros2 = migrate_message(self.reader.typestore, self.typestore, conn.msgtype, conn.msgtype,
                                       self.cache, msg)
                raw = bytes(self.typestore.serialize_cdr(ros2, conn.msgtype))
            except Exception as exc:  # a corrupt message is not copied; replay goes on
                log.warning("--copy-input: %s message at %d not copied: %s", conn.topic, timestamp, exc)
                return
        self.writer.write(target, timestamp, raw)


# ------------------------------------------------------------------------------------------
# Replay
# ------------------------------------------------------------------------------------------

def load_processor(model: Path | Bundle, config: ProcessorConfig | None = None,
                   backend: str = "auto") -> FrameProcessor:
    """The node's FrameProcessor as a replay uses it (rosbags messages); load it once to replay
    many bags with it (``replay_bag(..., model=processor)``)."""
    config = config or ProcessorConfig(id_space="auto")
    processor = FrameProcessor.from_bundle(model, RosbagsMessages(), config, backend)
    for suffix, reason in processor.unavailable.items():
        log.warning("%s is not written: %s", suffix, reason)
    return processor


def replay_bag(input: Path, output: Path, model: Path | Bundle | FrameProcessor, *,
               image_topic: str | None = None, camera_info_topic: str | None = None,
               copy_input: bool = False, force: bool = False, backend: str = "auto",
               progress: bool = True, storage: str = "sqlite3", config: ProcessorConfig | None = None,
               on_frame: Callable[[], None] | None = None) -> BagSummary:
    """Segment every image of a bag and write the node's output topics to a new rosbag2.

    A message that cannot be deserialised or decoded is recorded in ``summary.failed`` and
    skipped. ``output`` must not exist unless ``force`` (it is then replaced once the new bag is
    complete). ``config`` defaults to the node's defaults (labelid masks, every output).
    ``model`` may be a processor from :func:`load_processor` (``backend`` and ``config`` are then
    its own). ``on_frame`` is called after each image message (progress reporting).
    """
    from tqdm import tqdm

    input, output = Path(input), Path(output)
    _check_output(input, output, force)
    config = config or ProcessorConfig(id_space="auto")
    reader = open_reader(input)
    try:
        topics = {topic: info.msgtype for topic, info in reader.topics.items()}
        image = _pick_topic(topics, image_topic, IMAGE_TYPES, "Image/CompressedImage", "--image-topic", input)
        if image is None:
            raise InputError(f"{input}: no sensor_msgs/Image or CompressedImage topic; topics: "
                             f"{', '.join(sorted(topics)) or 'none'}")
        info_topic = _pick_camera_info(topics, camera_info_topic, image, input)
        processor = model if isinstance(model, FrameProcessor) else load_processor(model, config, backend)
        outputs = _enabled_outputs(output_topics(image), processor.config, info_topic)
        summary = BagSummary(str(input), str(output), image, info_topic, outputs)
        started = time.perf_counter()
        with staged_directory(output) as staged:
            writer = open_writer(staged, storage)
            with writer:
                _replay(reader, writer, processor, summary, copy_input, progress, tqdm, on_frame)
        summary.wall_s = time.perf_counter() - started
        return summary
    finally:
        reader.close()


def _enabled_outputs(topics: dict[str, str], config: ProcessorConfig, info_topic: str | None) -> dict[str, str]:
    enabled = set(config.outputs) | {LABEL_INFO_OUT}
    if info_topic is None:
        enabled.discard(CAMERA_INFO_OUT)
    return {suffix: topic for suffix, topic in topics.items() if suffix in enabled}


def _output_connections(reader, writer, summary: BagSummary, typestore) -> dict:
    """Output suffix -> writer connection, with the QoS of the topic each one derives from."""
    def qos_of(topic: str | None) -> list:
        conns = [c for c in reader.connections if c.topic == topic]
        return offered_qos(conns[0]) if conns else []

    image_qos, info_qos = qos_of(summary.image_topic), qos_of(summary.camera_info_topic)
    return {suffix: writer.add_connection(
                topic, BY_SUFFIX[suffix].message_type, typestore=typestore,
                offered_qos_profiles={LABEL_INFO_OUT: latched_qos(), CAMERA_INFO_OUT: info_qos}.get(suffix, image_qos))
            for suffix, topic in summary.output_topics.items()}


def _replay(reader, writer, processor: FrameProcessor, summary: BagSummary, copy_input: bool,
            progress: bool, tqdm, on_frame: Callable[[], None] | None = None) -> None:
    """Read the bag once, segment every image message, write the outputs (and copies)."""
    factory: RosbagsMessages = processor.factory  # type: ignore[assignment]
    out = _output_connections(reader, writer, summary, factory.typestore)
    copier = None
    if copy_input:
        copier = _InputCopier(reader, writer, factory.typestore, set(summary.output_topics.values()))
        summary.copied_topics = copier.topics
    image_conns = [c for c in reader.connections if c.topic == summary.image_topic]
    info_conns = [c for c in reader.connections if c.topic == summary.camera_info_topic]
    camera_info = _first_camera_info(reader, info_conns)
    totals = dict.fromkeys(STAGES, 0.0)
    wanted = () if copier else image_conns + info_conns  # () reads every connection
    with tqdm(total=sum(c.msgcount for c in image_conns), unit="frame", disable=not progress,
              desc="segmenting") as bar:
        for conn, stamp, raw in reader.messages(connections=wanted):
            if copier:
                copier.copy(conn, stamp, raw)
            if conn.topic == summary.camera_info_topic:
                camera_info = _read_camera_info(reader, raw, conn.msgtype, camera_info)
            elif conn.topic == summary.image_topic:
                bar.update(1)
                timings = _segment_one(reader, conn, stamp, raw, camera_info, processor, out, writer, summary)
                for stage, ms in (timings or {}).items():
                    totals[stage] += ms
                if on_frame is not None:
                    on_frame()
    if summary.frames_out:
        summary.stage_ms = {k: v / summary.frames_out for k, v in totals.items()}


def _segment_one(reader, conn, stamp: int, raw: bytes, camera_info, processor: FrameProcessor,
                 out: dict, writer, summary: BagSummary) -> dict[str, float] | None:
    """Process one image message into ``writer``; on a bad message record it and return None."""
    index = summary.frames_in
    summary.frames_in += 1
    try:
        msg = reader.deserialize(raw, conn.msgtype)
    except Exception as exc:  # corrupt CDR / ROS 1 bytes raise assorted errors
        summary.failed.append(FailedFrame(index, stamp, f"cannot deserialize {conn.msgtype}: {exc}"))
        return None
    try:
        frame = processor.process(msg, camera_info)
    except InputError as exc:
        summary.failed.append(FailedFrame(index, stamp, str(exc)))
        return None
    except CitysegError:
        raise  # the model or bundle is wrong: the same for every frame, so stop and say so
    except Exception as exc:  # anything else is this frame's problem: report it, keep going
        log.exception("%s: frame %d failed", conn.topic, index)
        summary.failed.append(FailedFrame(index, stamp, f"internal error: {type(exc).__name__}: {exc}"))
        return None
    serialize = processor.factory.serialize
    t0 = time.perf_counter()
    if summary.frames_out == 0:
        writer.write(out[LABEL_INFO_OUT], stamp, serialize(processor.label_info(*header_fields(msg))))
    for suffix, message in frame.messages.items():
        writer.write(out[suffix], stamp, serialize(message))
    frame.timings["publish"] = (time.perf_counter() - t0) * 1e3
    summary.frames_out += 1
    return frame.timings


def _read_camera_info(reader, raw: bytes, msgtype: str, previous):
    """A CameraInfo message, or ``previous`` (with a warning) when it cannot be read."""
    try:
        msg = reader.deserialize(raw, msgtype)
        CameraInfoValues.from_message(msg)
        return msg
    except Exception as exc:
        log.warning("ignoring an unreadable CameraInfo message: %s", exc)
        return previous


def _first_camera_info(reader, info_conns) -> object | None:
    """The first readable CameraInfo, so frames recorded just before it still get one."""
    if not info_conns:
        return None
    for _, _, raw in reader.messages(connections=info_conns):
        msg = _read_camera_info(reader, raw, info_conns[0].msgtype, None)
        if msg is not None:
            return msg
    return None



"""Offline replay: run the node's FrameProcessor over a recorded bag and write a rosbag2. No ROS.

Input: a rosbag2 directory (sqlite3 or mcap) or a ROS 1 ``.bag``, read with rosbags' AnyReader.
Output: a rosbag2 (format 9, sqlite3 or mcap) holding, under each image topic's namespace,
``<ns>/segmentation/{mask,color_mask,overlay,camera_info,label_info}`` (and the outputs the config
names, e.g. ``mask/compressed``) - the topics the node publishes when it runs as ``segmentation``
in namespace ``<ns>`` - with the input's bag
timestamps, header stamps and QoS profiles, and message definitions from rosbags' typestore, so
``ros2 bag play`` replays it. Every image topic of a camera rig is segmented in one pass, frames
of different cameras batched through one backend call (:mod:`cityseg.ros.bag.batches`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cityseg.bundle import Bundle
from cityseg.errors import CitysegError, InputError
from cityseg.fileio import check_replaceable, staged_output
from cityseg.fusion.config import FusionConfig
from cityseg.ros.bag.batches import BagBatcher, CameraReplay
from cityseg.ros.bag.fusion import BagFusion, BagGroundGrid
from cityseg.ros.bag.rosbag_io import (
    latched_qos,
    normalize_topic,
    offered_qos,
    open_reader,
    open_writer,
    topic_namespace,
)
from cityseg.ros.bag.summary import BagSummary, CameraSummary, FailedFrame
from cityseg.ros.core.messages import CAMERA_INFO_TYPE, IMAGE_TYPES, CameraInfoValues, RosbagsMessages
from cityseg.ros.core.outputs import BY_SUFFIX, NODE_NAME, OUTPUTS, output_topic
from cityseg.ros.core.outputs import CAMERA_INFO as CAMERA_INFO_OUT
from cityseg.ros.core.outputs import LABEL_INFO as LABEL_INFO_OUT
from cityseg.ros.core.processor import FrameProcessor, ProcessorConfig

__all__ = ["BagSummary", "CameraSummary", "FailedFrame", "load_processor", "output_topics", "replay_bag"]
log = logging.getLogger(__name__)

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


def _pick_image_topics(topics: dict[str, str], wanted: Sequence[str] | None, bag: Path) -> list[str]:
    """The image topics named in ``wanted`` (slash-insensitive) or, if None or empty, every
    Image/CompressedImage topic of the bag, sorted."""
    if wanted:
        picked = [_pick_topic(topics, t, IMAGE_TYPES, "Image/CompressedImage", "--image-topic", bag) for t in wanted]
        return list(dict.fromkeys(picked))
    images = sorted(t for t, msgtype in topics.items() if msgtype in IMAGE_TYPES)
    if not images:
        raise InputError(f"{bag}: no sensor_msgs/Image or CompressedImage topic; topics: "
                         f"{', '.join(sorted(topics)) or 'none'}")
    return images


def _pick_camera_info(topics: dict[str, str], wanted: str | None, image_topic: str, bag: Path,
                      rig: bool = False) -> str | None:
    """``wanted``, else the CameraInfo beside the image topic, else (one camera only, not a ``rig``)
    the bag's only CameraInfo topic."""
    if wanted is None:
        sibling = f"{topic_namespace(image_topic)}/camera_info"
        if topics.get(sibling) == CAMERA_INFO_TYPE:
            return sibling
        if rig:
            log.warning("%s: no CameraInfo beside %s (%s); its ~/camera_info is not written", bag, image_topic,
                        sibling)
            return None
    try:
        return _pick_topic(topics, wanted, (CAMERA_INFO_TYPE,), "CameraInfo", "--camera-info-topic", bag)
    except InputError:
        if wanted is not None:
            raise
        log.warning("%s: several CameraInfo topics and none beside %s; ~/camera_info is not written "
                    "(choose one with --camera-info-topic)", bag, image_topic)
        return None


def _pick_cameras(topics: dict[str, str], image_topics: Sequence[str] | None, camera_info_topic: str | None,
                  bag: Path) -> list[tuple[str, str | None]]:
    """(image topic, CameraInfo topic or None) of every camera to segment."""
    images = _pick_image_topics(topics, image_topics, bag)
    if camera_info_topic is not None and len(images) > 1:
        raise InputError(f"{bag}: --camera-info-topic names one camera's CameraInfo, but {len(images)} image "
                         f"topics are segmented ({', '.join(images)}); each camera takes <namespace>/camera_info, "
                         "so drop --camera-info-topic or choose one --image-topic")
    rig = len(images) > 1
    return [(image, _pick_camera_info(topics, camera_info_topic, image, bag, rig)) for image in images]


# ------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------

def _check_output(input_path: Path, output: Path, force: bool) -> None:
    src, dst = input_path.resolve(), output.resolve()
    if dst == src or dst in src.parents or src in dst.parents:
        raise CitysegError(f"{output}: the output must not be the input bag {input_path}, contain it "
                           "or lie inside it; choose another output path")
    check_replaceable(output, "bag", force)


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
               image_topic: str | Sequence[str] | None = None, camera_info_topic: str | None = None,
               copy_input: bool = False, force: bool = False, backend: str = "auto",
               progress: bool = True, storage: str = "sqlite3", config: ProcessorConfig | None = None,
               on_frame: Callable[[], None] | None = None, max_batch: int | None = None,
               fusion: FusionConfig | None = None) -> BagSummary:
    """Segment every image of a bag's camera(s) and write the node's output topics to a new rosbag2.

    ``image_topic``: one topic or several; None: every Image/CompressedImage topic of the bag.
    Frames of different cameras are segmented in batches of at most ``max_batch`` (default: one
    frame per camera) with the same result as alone. A message that cannot be deserialised or
    decoded is recorded in its camera's ``failed`` and skipped. ``output`` must not exist unless
    ``force`` and it is an earlier replay's output (replaced once the new bag is complete).
    ``config`` defaults to the node's defaults (labelid masks, every output). ``model`` may be a
    processor from :func:`load_processor` (``backend`` and ``config`` are then its own).
    ``on_frame`` is called after each image message. ``fusion``: also label the clouds of its points
    topic, or without one (and with a grid) build the camera-only grid (:mod:`cityseg.ros.bag.fusion`).
    """
    from tqdm import tqdm

    input, output = Path(input), Path(output)
    _check_output(input, output, force)
    config = config or ProcessorConfig(id_space="auto")
    wanted = [image_topic] if isinstance(image_topic, str) else image_topic
    reader = open_reader(input)
    try:
        topics = {topic: info.msgtype for topic, info in reader.topics.items()}
        cameras = _pick_cameras(topics, wanted, camera_info_topic, input)
        processor = model if isinstance(model, FrameProcessor) else load_processor(model, config, backend)
        summary = BagSummary(str(input), str(output), [
            CameraSummary(image, info, _enabled_outputs(output_topics(image), processor.config, info))
            for image, info in cameras])
        started = time.perf_counter()
        with staged_output(output, "bag", force) as staged:
            writer = open_writer(staged, storage)
            with writer:
                fuser = None if fusion is None else (BagFusion if fusion.points_topic else BagGroundGrid)(
                    fusion, processor, [c for c, _ in cameras], reader, writer, input)
                batcher = BagBatcher(processor, writer, max_batch or len(cameras), on_frame,
                                     fuser.on_frame if fuser else None)
                _replay(reader, writer, batcher, summary, copy_input, progress, tqdm, fuser)
                if fuser is not None:
                    fuser.finish()
                    summary.fusion = fuser.summary()
        summary.wall_s = time.perf_counter() - started
        return summary
    finally:
        reader.close()


def _enabled_outputs(topics: dict[str, str], config: ProcessorConfig, info_topic: str | None) -> dict[str, str]:
    enabled = set(config.outputs) | {LABEL_INFO_OUT}
    if info_topic is None:
        enabled.discard(CAMERA_INFO_OUT)
    return {suffix: topic for suffix, topic in topics.items() if suffix in enabled}


def _output_connections(reader, writer, camera: CameraSummary, typestore) -> dict:
    """Output suffix -> writer connection, with the QoS of the topic each one derives from."""
    def qos_of(topic: str | None) -> list:
        conns = [c for c in reader.connections if c.topic == topic]
        return offered_qos(conns[0]) if conns else []

    image_qos, info_qos = qos_of(camera.image_topic), qos_of(camera.camera_info_topic)
    return {suffix: writer.add_connection(
                topic, BY_SUFFIX[suffix].message_type, typestore=typestore,
                offered_qos_profiles={LABEL_INFO_OUT: latched_qos(), CAMERA_INFO_OUT: info_qos}.get(suffix, image_qos))
            for suffix, topic in camera.output_topics.items()}


def _replay(reader, writer, batcher: BagBatcher, summary: BagSummary, copy_input: bool,
            progress: bool, tqdm, fuser: BagFusion | BagGroundGrid | None = None) -> None:
    """Read the bag once, segment every image message of the cameras, write the outputs (and copies)."""
    typestore = batcher.processor.factory.typestore
    cameras = {c.image_topic: CameraReplay(c, _output_connections(reader, writer, c, typestore))
               for c in summary.cameras}
    copier = None
    if copy_input:
        taken = {t for c in summary.cameras for t in c.output_topics.values()}
        copier = _InputCopier(reader, writer, typestore, taken)
        summary.copied_topics = copier.topics
    by_info: dict[str, list[CameraReplay]] = {}
    for camera in cameras.values():
        if camera.summary.camera_info_topic is not None:
            by_info.setdefault(camera.summary.camera_info_topic, []).append(camera)
    for topic, sharing in by_info.items():
        first = _first_camera_info(reader, [c for c in reader.connections if c.topic == topic])
        for camera in sharing:
            camera.camera_info = first
    image_conns = [c for c in reader.connections if c.topic in cameras]
    fused = fuser.input_topics if fuser else set()
    wanted = () if copier else image_conns + [c for c in reader.connections if c.topic in by_info or c.topic in fused]
    with tqdm(total=sum(c.msgcount for c in image_conns), unit="frame", disable=not progress,
              desc="segmenting") as bar:
        for conn, stamp, raw in reader.messages(connections=wanted):
            if copier:
                copier.copy(conn, stamp, raw)
            if conn.topic in fused:
                fuser.on_message(reader, conn, stamp, raw)
            if conn.topic in by_info:
                info = _read_camera_info(reader, raw, conn.msgtype, by_info[conn.topic][0].camera_info)
                for camera in by_info[conn.topic]:
                    camera.camera_info = info
            if conn.topic in cameras:
                bar.update(1)
                batcher.add(cameras[conn.topic], stamp, conn.msgtype,
                            lambda raw=raw, conn=conn: reader.deserialize(raw, conn.msgtype))
        batcher.flush()


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

"""The bag replay's fusion: the ``--points-topic`` clouds labelled with the replayed masks and
written beside them, or without a points topic the camera-only grid of the masks' ground
classes. Transforms: the bag's ``/tf_static`` and ``/tf`` (each sensor looked up at its stamp,
through ``--fixed-frame`` when given), or ``--extrinsics``. The runners of :mod:`cityseg.fusion`
(:class:`~cityseg.fusion.runner.FusionRunner`, :class:`~cityseg.fusion.ground_grid.GroundGridRunner`)
do the work, as in the node; this module moves messages in and out of them.

Output topics, in the points topic's namespace as a node named ``segmentation`` there publishes
them: ``<ns>/segmentation/points`` (and with a grid ``.../grid``, ``.../grid/labels``), each written
at the input cloud's bag timestamp with its header. Camera-only: ``<ns>/segmentation/grid`` and
``.../grid/labels`` in the cameras' common namespace, at the bag timestamp and header stamp of the
newest image of each rig frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cityseg.errors import InputError
from cityseg.fusion.config import FusionConfig
from cityseg.fusion.extrinsics import TransformBuffer
from cityseg.fusion.feed import CloudInput, MaskInput
from cityseg.fusion.ground_grid import GroundGrid, GroundGridRunner
from cityseg.fusion.runner import FusionRunner, LabelledCloud, tree_lookup
from cityseg.ros.bag.fusion_checks import Tally, check_fixed_frame, require_grid, require_labelled
from cityseg.ros.bag.rosbag_io import normalize_topic, offered_qos, topic_namespace
from cityseg.ros.core.messages import IMAGE_TYPE, OCCUPANCY_GRID_TYPE, POINT_CLOUD_TYPE, stamp_ns
from cityseg.ros.core.outputs import GRID, GRID_LABELS, POINTS, output_topic
from cityseg.ros.core.tf_messages import TF_STATIC_TOPIC, TF_TOPIC, TF_TYPE, add_tf


def fusion_topics(points_topic: str) -> dict[str, str]:
    """Fusion output suffix -> topic for a replay of ``points_topic``."""
    namespace = topic_namespace(normalize_topic(points_topic))
    return {suffix: output_topic(namespace, suffix) for suffix in (POINTS, GRID, GRID_LABELS)}


def camera_grid_topics(image_topics: Sequence[str]) -> dict[str, str]:
    """Camera-only grid suffix -> topic: in the cameras' common namespace (one camera: its own), as
    a node named ``segmentation`` there publishes them."""
    parts = [topic_namespace(normalize_topic(t)).strip("/").split("/") for t in image_topics]
    common: list[str] = []
    for level in zip(*parts):
        if len(set(level)) != 1 or not level[0]:
            break
        common.append(level[0])
    namespace = "/" + "/".join(common) if common else ""
    return {suffix: output_topic(namespace, suffix) for suffix in (GRID, GRID_LABELS)}


def _tf_topics(topics: dict[str, str], config: FusionConfig) -> dict[str, str]:
    """/tf_static and /tf of the bag (TFMessage) -> 'static' / 'dynamic', unless --extrinsics."""
    if config.extrinsics_file:
        return {}
    return {t: kind for t, kind in ((TF_STATIC_TOPIC, "static"), (TF_TOPIC, "dynamic")) if topics.get(t) == TF_TYPE}


def _transforms(config: FusionConfig, bag: Path):
    """The extrinsics the config read, else a buffer for the bag's /tf_static and /tf."""
    if config.extrinsics is not None:
        return config.extrinsics
    return TransformBuffer(f"{bag} /tf_static and /tf", round(config.tf_tolerance_ms * 1e6))


class BagFusion:
    """Feeds a FusionRunner from the replay and writes what it labels."""

    def __init__(self, config: FusionConfig, processor, image_topics: Sequence[str], reader, writer, bag: Path):
        topics = {topic: info.msgtype for topic, info in reader.topics.items()}
        wanted = normalize_topic(config.points_topic)
        match = [t for t in topics if normalize_topic(t) == wanted]
        if not match or topics[match[0]] != POINT_CLOUD_TYPE:
            clouds = sorted(t for t, kind in topics.items() if kind == POINT_CLOUD_TYPE)
            raise InputError(f"{bag}: no PointCloud2 topic {config.points_topic!r}; PointCloud2 topics in the "
                             f"bag: {', '.join(clouds) or 'none'}")
        self.points_topic = match[0]
        self.tf_topics = _tf_topics(topics, config)
        check_fixed_frame(reader, self.tf_topics, config.fixed_frame, bag)
        self.tally = Tally()
        self.factory, self.writer, self.bag = processor.factory, writer, bag
        self.image_topics = list(image_topics)
        self.runner = FusionRunner(config, processor.label_classes(), self.image_topics, self._write,
                                   _transforms(config, bag))
        qos = offered_qos(next(c for c in reader.connections if c.topic == self.points_topic))
        out = fusion_topics(self.points_topic)
        store = self.factory.typestore
        self.topics = {POINTS: out[POINTS]}
        self.conns = {POINTS: writer.add_connection(out[POINTS], POINT_CLOUD_TYPE, typestore=store,
                                                    offered_qos_profiles=qos)}
        if config.grid is not None:
            self.topics.update({GRID: out[GRID], GRID_LABELS: out[GRID_LABELS]})
            self.conns[GRID] = writer.add_connection(out[GRID], OCCUPANCY_GRID_TYPE, typestore=store,
                                                     offered_qos_profiles=qos)
            self.conns[GRID_LABELS] = writer.add_connection(out[GRID_LABELS], IMAGE_TYPE, typestore=store,
                                                            offered_qos_profiles=qos)
        self.tally.start(self.topics)

    @property
    def input_topics(self) -> set[str]:
        return {self.points_topic} | set(self.tf_topics)

    def on_message(self, reader, conn, stamp: int, raw: bytes) -> None:
        """A message of an input topic: a cloud (waits for its masks), /tf_static or /tf."""
        try:
            msg = reader.deserialize(raw, conn.msgtype)
        except Exception as exc:  # corrupt CDR: counted, the replay goes on
            self.runner.counters.bad_clouds += conn.topic == self.points_topic
            self.runner.warn_once(f"cdr:{conn.topic}", f"{conn.topic}: cannot deserialize a message: {exc}")
            return
        if conn.topic in self.tf_topics:
            add_tf(self.runner.tree, self.tf_topics[conn.topic], msg, f"{self.bag} {conn.topic}")
            return
        header = msg.header
        self.runner.feed(CloudInput(stamp_ns(header.stamp), str(header.frame_id).lstrip("/"), msg, (stamp, header)))

    def on_frame(self, image_topic: str, image_msg, camera_info, result, bag_stamp: int = 0) -> None:
        """A segmented frame of camera ``image_topic``: its mask (and confidence) go to the runner."""
        self.runner.feed(_mask_input(self.image_topics.index(image_topic), image_msg, result.segmentation,
                                     camera_info))

    def finish(self) -> None:
        """Label what still waits; InputError when no point of any cloud was labelled."""
        self.runner.finish()
        require_labelled(self.summary(), self.points_topic, self.bag)

    def summary(self) -> dict:
        return {"topics": self.topics, **vars(self.runner.counters), **self.tally.to_json()}

    def _write(self, cloud: LabelledCloud) -> None:
        bag_stamp, header = cloud.tag
        msg = self.factory.point_cloud(header, cloud.layout, cloud.data)
        self.writer.write(self.conns[POINTS], bag_stamp, self.factory.serialize(msg))
        self.tally.wrote(self.topics[POINTS])
        self.tally.cloud(cloud.layout, cloud.data)
        if cloud.grid is not None:
            write_grid(self.writer, self.factory, self.conns, bag_stamp, header, cloud.grid)
            self.tally.wrote(self.topics[GRID])
            self.tally.wrote(self.topics[GRID_LABELS])
            self.tally.grid(cloud.grid.label)


def _mask_input(camera: int, image_msg, frame, camera_info, tag=None) -> MaskInput:
    header = image_msg.header
    return MaskInput(camera, stamp_ns(header.stamp), str(header.frame_id).lstrip("/"), frame, camera_info, tag)


def write_grid(writer, factory, conns: dict, bag_stamp: int, header, grid) -> None:
    """``grid`` as OccupancyGrid and class-id image at ``bag_stamp``, stamped as ``header``."""
    grid_header = factory.header(header.stamp.sec, header.stamp.nanosec, grid.spec.frame)
    writer.write(conns[GRID], bag_stamp, factory.serialize(factory.occupancy_grid(grid_header, grid)))
    image = factory.image_from_array(grid_header, grid.label, "mono8")
    writer.write(conns[GRID_LABELS], bag_stamp, factory.serialize(image))


class BagGroundGrid:
    """The camera-only grid of a replay (no points topic): a GroundGridRunner fed with the replayed
    masks, /tf_static and /tf read from the bag (or --extrinsics), grids written as they are built."""

    def __init__(self, config: FusionConfig, processor, image_topics: Sequence[str], reader, writer, bag: Path):
        topics = {topic: info.msgtype for topic, info in reader.topics.items()}
        self.tf_topics = _tf_topics(topics, config)
        check_fixed_frame(reader, self.tf_topics, config.fixed_frame, bag)
        self.tally = Tally()
        self.tree = _transforms(config, bag)
        self.factory, self.writer, self.bag = processor.factory, writer, bag
        self.image_topics = list(image_topics)
        self.runner = GroundGridRunner(config, processor.label_classes(), self.image_topics, self._write,
                                       tree_lookup(self.tree, config.fixed_frame))
        qos = offered_qos(next(c for c in reader.connections if c.topic == self.image_topics[0]))
        store = self.factory.typestore
        self.topics = camera_grid_topics(self.image_topics)
        self.conns = {GRID: writer.add_connection(self.topics[GRID], OCCUPANCY_GRID_TYPE, typestore=store,
                                                  offered_qos_profiles=qos),
                      GRID_LABELS: writer.add_connection(self.topics[GRID_LABELS], IMAGE_TYPE, typestore=store,
                                                         offered_qos_profiles=qos)}
        self.tally.start(self.topics)

    @property
    def input_topics(self) -> set[str]:
        return set(self.tf_topics)

    def on_message(self, reader, conn, stamp: int, raw: bytes) -> None:
        """/tf_static or /tf."""
        try:
            msg = reader.deserialize(raw, conn.msgtype)
        except Exception as exc:  # corrupt CDR: said, the replay goes on
            self.runner.warn_once(f"cdr:{conn.topic}", f"{conn.topic}: cannot deserialize a message: {exc}")
            return
        add_tf(self.tree, self.tf_topics[conn.topic], msg, f"{self.bag} {conn.topic}")

    def on_frame(self, image_topic: str, image_msg, camera_info, result, bag_stamp: int = 0) -> None:
        self.runner.feed(_mask_input(self.image_topics.index(image_topic), image_msg,
                                     result.segmentation.classes, camera_info, (bag_stamp, image_msg.header)))

    def finish(self) -> None:
        """Build what still waits; InputError when no grid with a known cell was made."""
        self.runner.finish()
        require_grid(self.summary(), self.bag)

    def summary(self) -> dict:
        c = self.runner.counters
        return {"topics": self.topics, "grids": self.runner.grids, "no_mask": c.no_mask,
                "no_transform": c.no_transform, **self.tally.to_json()}

    def _write(self, out: GroundGrid) -> None:
        bag_stamp, header = out.tag
        write_grid(self.writer, self.factory, self.conns, bag_stamp, header, out.grid)
        self.tally.wrote(self.topics[GRID])
        self.tally.wrote(self.topics[GRID_LABELS])
        self.tally.grid(out.grid.label)

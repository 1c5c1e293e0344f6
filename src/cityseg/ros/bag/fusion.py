"""The bag replay's fusion: the ``--points-topic`` clouds labelled with the replayed masks and
written beside them, ``/tf_static`` (or ``--extrinsics``) for the transforms. One
:class:`~cityseg.ros.core.fusion_runner.FusionRunner` does the work, as in the node.

Output topics, in the points topic's namespace as a node named ``segmentation`` there publishes
them: ``<ns>/segmentation/points`` (and with a grid ``.../grid``, ``.../grid/labels``), each written
at the input cloud's bag timestamp with its header.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cityseg.errors import InputError
from cityseg.ros.bag.rosbag_io import normalize_topic, offered_qos, topic_namespace
from cityseg.ros.core.fusion_messages import (
    OCCUPANCY_GRID_TYPE,
    POINT_CLOUD_TYPE,
    TF_STATIC_TOPIC,
    TF_TYPE,
    add_tf_message,
    occupancy_grid,
    point_cloud,
)
from cityseg.ros.core.fusion_runner import FusionConfig, FusionRunner, LabelledCloud, frame_masks
from cityseg.ros.core.messages import IMAGE_TYPE
from cityseg.ros.core.outputs import GRID, GRID_LABELS, POINTS, output_topic


def fusion_topics(points_topic: str) -> dict[str, str]:
    """Fusion output suffix -> topic for a replay of ``points_topic``."""
    namespace = topic_namespace(normalize_topic(points_topic))
    return {suffix: output_topic(namespace, suffix) for suffix in (POINTS, GRID, GRID_LABELS)}


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
        self.tf_topic = TF_STATIC_TOPIC if topics.get(TF_STATIC_TOPIC) == TF_TYPE and not config.extrinsics_file \
            else None
        self.factory, self.writer, self.bag = processor.factory, writer, bag
        self.image_topics = list(image_topics)
        self.runner = FusionRunner(config, processor.label_classes(), self.image_topics, self._write)
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

    @property
    def input_topics(self) -> set[str]:
        return {self.points_topic} | ({self.tf_topic} if self.tf_topic else set())

    def on_message(self, reader, conn, stamp: int, raw: bytes) -> None:
        """A message of an input topic: a cloud (waits for its masks) or /tf_static."""
        try:
            msg = reader.deserialize(raw, conn.msgtype)
        except Exception as exc:  # corrupt CDR: counted, the replay goes on
            self.runner.counters.bad_clouds += conn.topic == self.points_topic
            self.runner.warn_once(f"cdr:{conn.topic}", f"{conn.topic}: cannot deserialize a message: {exc}")
            return
        if conn.topic == self.tf_topic:
            add_tf_message(self.runner.tree, msg, f"{self.bag} {conn.topic}")
            return
        header = msg.header
        stamp_ns = int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)
        self.runner.add_cloud(stamp_ns, str(header.frame_id).lstrip("/"), msg, (stamp, header))

    def on_frame(self, image_topic: str, image_msg, camera_info, result) -> None:
        """A segmented frame of camera ``image_topic``: its mask (and confidence) go to the runner."""
        mask, conf = frame_masks(result)
        header = image_msg.header
        stamp_ns = int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)
        self.runner.add_mask(self.image_topics.index(image_topic), stamp_ns, str(header.frame_id).lstrip("/"),
                             mask, conf, camera_info)

    def finish(self) -> None:
        self.runner.finish()

    def _write(self, cloud: LabelledCloud) -> None:
        bag_stamp, header = cloud.tag
        store = self.factory.typestore
        msg = point_cloud(store, header, cloud.layout, cloud.data)
        self.writer.write(self.conns[POINTS], bag_stamp, self.factory.serialize(msg))
        if cloud.grid is not None:
            grid_header = self.factory.header(header.stamp.sec, header.stamp.nanosec, cloud.grid.spec.frame)
            self.writer.write(self.conns[GRID], bag_stamp,
                              self.factory.serialize(occupancy_grid(store, grid_header, cloud.grid)))
            image = self.factory.image_from_array(grid_header, cloud.grid.label, "mono8")
            self.writer.write(self.conns[GRID_LABELS], bag_stamp, self.factory.serialize(image))


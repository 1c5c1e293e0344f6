"""One camera's ROS endpoints inside the segmentation node: subscriptions, publishers, counters.

The node holds one :class:`CameraIO` (single-camera mode: topics relative to the node, outputs
``~/<output>``) or one per entry of its ``cameras`` parameter (topics from the ``camera_*``
patterns, outputs under ``/<camera>/segmentation``). Images arrive as CDR bytes (``raw=True``)
and are read as numpy views (cityseg.ros.core.cdr), so rclpy never builds a Python message of several
megabytes under the GIL. rclpy is imported by the caller; this module only uses the node handed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cityseg.ros.core.cdr import read_compressed_image, read_image
from cityseg.ros.core.images import ImageError
from cityseg.ros.core.outputs import LABEL_INFO, OUTPUTS
from cityseg.ros.live.diagnostics import CameraStats
from cityseg.ros.live.upstream_loss import UpstreamLossEstimator, stamp_seconds

LOG_THROTTLE_S = 5.0
"""At most one log line per this many seconds for each kind of repeated warning."""


@dataclass(frozen=True)
class CameraTopics:
    """Where one camera's frames come from and its outputs go."""

    name: str
    """The camera's name ('' in single-camera mode)."""
    image: str
    """Image topic as subscribed (CompressedImage topics end in /compressed)."""
    camera_info: str
    output_prefix: str
    """Outputs are ``<output_prefix>/<output>`` ('~' in single-camera mode)."""
    compressed: bool = False

    @classmethod
    def single(cls, compressed: bool) -> CameraTopics:
        """The node's own topics: image (remappable), camera_info, ~/<output>."""
        return cls("", "image/compressed" if compressed else "image", "camera_info", "~", compressed)

    @classmethod
    def from_patterns(cls, camera: str, image: str, info: str, outputs: str, compressed: bool) -> CameraTopics:
        """Camera ``camera`` of a multi-camera node: each pattern with ``{camera}`` replaced."""
        image_topic = image.format(camera=camera)
        return cls(camera, f"{image_topic}/compressed" if compressed else image_topic,
                   info.format(camera=camera), outputs.format(camera=camera), compressed)


class CameraIO:
    """Subscriptions, publishers and counters of one camera; ``hand_to_inference(item)`` gives a frame to the
    inference thread and returns True when it replaced one not yet taken (a drop)."""

    def __init__(self, node, msgs, params, topics: CameraTopics, enabled: frozenset[str],
                 hand_to_inference: Callable[[Any], bool], on_error: Callable[[str, bool], None]):
        self.node, self.msgs, self.params, self.topics = node, msgs, params, topics
        self.hand_to_inference, self.on_error = hand_to_inference, on_error
        self.stats = CameraStats(window_s=params.stats_window)
        self.upstream = UpstreamLossEstimator()
        self.camera_info = None
        self.publishers: dict[str, Any] = {}
        self.subscriptions: list = []
        self._create_publishers(enabled | {LABEL_INFO})

    @property
    def image_topic(self) -> str:
        return self.node.resolve_topic_name(self.topics.image)

    def output_topic(self, suffix: str) -> str:
        return f"{self.topics.output_prefix}/{suffix}"

    def _create_publishers(self, enabled: frozenset[str]) -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        events_class = _event_callbacks("PublisherEventCallbacks")
        image_qos = QoSProfile(depth=self.params.qos_depth, reliability=_reliability(self.params.output_reliability))
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for output in OUTPUTS:
            kind = self.msgs.message_class(output.message_type)
            if output.suffix not in enabled or kind is None:
                continue
            qos = image_qos if output.per_frame else latched
            topic = self.output_topic(output.suffix)
            events = events_class(incompatible_qos=self._incompatible("publisher", topic, qos))
            self.publishers[output.suffix] = self.node.create_lifecycle_publisher(
                kind, topic, qos, event_callbacks=events)

    def subscribe(self) -> None:
        """Start receiving this camera's images and CameraInfo."""
        from rclpy.qos import QoSProfile

        events_class = _event_callbacks("SubscriptionEventCallbacks")
        qos = QoSProfile(depth=self.params.qos_depth, reliability=_reliability(self.params.qos_reliability))
        kind = self.msgs.CompressedImage if self.topics.compressed else self.msgs.Image
        for msg_type, topic, callback, raw in ((kind, self.topics.image, self._on_image, True),
                                               (self.msgs.CameraInfo, self.topics.camera_info,
                                                self._on_camera_info, False)):
            events = events_class(incompatible_qos=self._incompatible("subscription", topic, qos))
            self.subscriptions.append(self.node.create_subscription(
                msg_type, topic, callback, qos, event_callbacks=events, raw=raw))

    def unsubscribe(self) -> None:
        for subscription in self.subscriptions:
            self.node.destroy_subscription(subscription)
        self.subscriptions = []

    def destroy(self) -> None:
        """Remove subscriptions and publishers."""
        self.unsubscribe()
        for publisher in self.publishers.values():
            self.node.destroy_lifecycle_publisher(publisher)
        self.publishers = {}

    def _on_image(self, data: bytes) -> None:
        self.stats.received()
        try:
            msg = read_compressed_image(data) if self.topics.compressed else read_image(data)
        except ImageError as exc:
            self.stats.failed(str(exc))
            self.on_error(str(exc), False)
            return
        self.stats.upstream_lost(self.upstream.observe(stamp_seconds(msg)))
        if self.hand_to_inference((msg, self.camera_info)):
            self.stats.dropped()

    def _on_camera_info(self, msg) -> None:
        self.camera_info = msg

    def live_outputs(self) -> frozenset[str]:
        """The per-frame outputs that have a subscriber now (a recorder counts); checked per frame."""
        return frozenset(suffix for suffix, publisher in self.publishers.items()
                         if suffix != LABEL_INFO and publisher.get_subscription_count() > 0)

    def publish(self, messages: dict) -> None:
        for suffix, msg in messages.items():
            self.publishers[suffix].publish(msg)

    def publish_one(self, suffix: str, message) -> None:
        """Publish one output message (the processor's sink: outputs leave as they are built)."""
        self.publishers[suffix].publish(message)

    def publish_label_info(self, message) -> None:
        """Publish the (latched) LabelInfo (there is no publisher without vision_msgs)."""
        if LABEL_INFO in self.publishers:
            self.publishers[LABEL_INFO].publish(message)

    def _incompatible(self, side: str, topic: str, qos):
        """An incompatible-QoS callback that names the topic, the policy and the parameter to change."""
        resolved = self.node.resolve_topic_name(topic)
        hint = ("set qos_reliability:=reliable only for reliable publishers; best_effort accepts both"
                if side == "subscription" else
                "the subscriber asks for more than this publisher offers (output_reliability, durability)")

        def report(event) -> None:
            from rclpy.qos import qos_policy_name_from_kind

            policy = qos_policy_name_from_kind(event.last_policy_kind)
            self.node.get_logger().warning(
                f"{resolved}: a {'publisher' if side == 'subscription' else 'subscriber'} with incompatible "
                f"QoS ({policy}) cannot connect to this {side} ({qos.reliability.name.lower()}); {hint}",
                throttle_duration_sec=LOG_THROTTLE_S)
        return report


def _event_callbacks(name: str):
    """rclpy's Publisher/SubscriptionEventCallbacks (``rclpy.event_handler`` since Iron, ``qos_event`` in Humble)."""
    try:
        from rclpy import event_handler as module
    except ImportError:
        from rclpy import qos_event as module
    return getattr(module, name)


def _reliability(name: str):
    from rclpy.qos import ReliabilityPolicy

    return {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}[name]

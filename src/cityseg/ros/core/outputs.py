"""The segmentation node's name and outputs, defined once. No ROS.

Every consumer reads :data:`OUTPUTS`: the node's parameters (one ``publish_*`` switch per
switchable output, see :mod:`cityseg.ros.live.params`), the :class:`~cityseg.ros.core.processor.FrameProcessor`
(which messages it builds), the node (its publishers), the bag tool (its topics) and the CLI
(``cityseg bag --outputs``). Adding an output is one row here plus its builder in the processor.

Compressed outputs follow image_transport's convention: ``<raw>/compressed`` beside the raw image
``<raw>`` (sensor_msgs/CompressedImage, encoded from the raw output's own pixels), PNG where the
values must survive exactly (mask, confidence), JPEG for pictures (colour mask, overlay).
"""

from __future__ import annotations

from dataclasses import dataclass

from cityseg.ros.core.messages import CAMERA_INFO_TYPE, COMPRESSED_IMAGE_TYPE, IMAGE_TYPE, LABEL_INFO_TYPE

NODE_NAME = "segmentation"
"""The node's name: its outputs are ``/<namespace>/segmentation/<suffix>``."""
NODE_EXECUTABLE = "segmentation_node"
"""The console script that runs the node (``ros2 run cityseg segmentation_node``)."""

MASK, COLOR_MASK, OVERLAY, CONFIDENCE = "mask", "color_mask", "overlay", "confidence"
CAMERA_INFO, LABEL_INFO = "camera_info", "label_info"
COMPRESSED = "compressed"
"""image_transport's transport name: ``mask/compressed`` is the compressed copy of ``mask``."""


def compressed_of(suffix: str) -> str:
    """The suffix of the compressed copy of raw image output ``suffix``: 'mask' -> 'mask/compressed'."""
    return f"{suffix}/{COMPRESSED}"


def raw_of(suffix: str) -> str:
    """The raw output a suffix is built from: 'mask/compressed' -> 'mask'; any other -> itself."""
    return suffix.removesuffix(f"/{COMPRESSED}")


@dataclass(frozen=True)
class Output:
    """One output topic of the node, published as ``~/<suffix>``."""

    suffix: str
    message_type: str
    """ROS 2 type name, e.g. ``sensor_msgs/msg/Image``."""
    description: str
    param: str | None = None
    """The boolean parameter that switches it on and off; None: always published."""
    per_frame: bool = True
    """Published once per segmented frame (False: once, latched)."""
    image: bool = False
    """An image of the segmentation (at least one of these must be on)."""
    default: bool = True
    """Whether its switch is on by default."""
    codec: str | None = None
    """'png' or 'jpeg': a CompressedImage encoded from the pixels of output ``raw_of(suffix)``."""


OUTPUTS: tuple[Output, ...] = (
    Output(MASK, IMAGE_TYPE, "mono8 class ids at the input resolution (times output_scale)",
           param="publish_mask", image=True),
    Output(COLOR_MASK, IMAGE_TYPE, "rgb8 palette colours of the mask", param="publish_color", image=True),
    Output(OVERLAY, IMAGE_TYPE, "the colour mask blended over the input image", param="publish_overlay",
           image=True),
    Output(CONFIDENCE, IMAGE_TYPE, "mono8 top-class probability x 255 at the mask's resolution (what Nav2's "
           "semantic segmentation layer reads next to the mask); needs a model that gives scores",
           param="publish_confidence", default=False),
    Output(compressed_of(MASK), COMPRESSED_IMAGE_TYPE, "~/mask as lossless PNG (decodes to exactly the raw mask)",
           param="publish_mask_compressed", image=True, codec="png"),
    Output(compressed_of(COLOR_MASK), COMPRESSED_IMAGE_TYPE, "~/color_mask as JPEG (jpeg_quality)",
           param="publish_color_compressed", image=True, codec="jpeg"),
    Output(compressed_of(OVERLAY), COMPRESSED_IMAGE_TYPE, "~/overlay as JPEG (jpeg_quality)",
           param="publish_overlay_compressed", image=True, codec="jpeg"),
    Output(compressed_of(CONFIDENCE), COMPRESSED_IMAGE_TYPE, "~/confidence as lossless PNG; needs a model that "
           "gives scores", param="publish_confidence_compressed", default=False, codec="png"),
    Output(CAMERA_INFO, CAMERA_INFO_TYPE, "the input CameraInfo, stamped like the mask and resized "
           "with output_scale", param="publish_camera_info"),
    Output(LABEL_INFO, LABEL_INFO_TYPE, "vision_msgs/LabelInfo: class id -> name (transient local, "
           "published once; needs vision_msgs)", per_frame=False),
)
"""Every output, in publishing order."""

POINTS, GRID, GRID_LABELS = "points", "grid", "grid/labels"
FUSION_OUTPUTS: tuple[Output, ...] = (
    Output(POINTS, "sensor_msgs/msg/PointCloud2", "the points_topic cloud, its header and fields unchanged, plus "
           "label, confidence, camera (uint8; 255 / 0 / 255 where no camera saw the point)", per_frame=False),
    Output(GRID, "nav_msgs/msg/OccupancyGrid", "bird's-eye cost grid from the labelled points (grid_* "
           "parameters; -1 unknown)", per_frame=False),
    Output(GRID_LABELS, IMAGE_TYPE, "mono8 class id per grid cell (255 unknown), the grid's geometry",
           per_frame=False),
)
"""Outputs per LiDAR cloud (on when points_topic is set), not per camera frame: no publish_* switch."""

BY_SUFFIX = {output.suffix: output for output in OUTPUTS}
SWITCHABLE = tuple(output for output in OUTPUTS if output.param)
"""Outputs with a ``publish_*`` parameter, in order."""
PER_FRAME = tuple(output.suffix for output in OUTPUTS if output.per_frame)
"""Suffixes of the outputs built for every frame."""
IMAGE_OUTPUTS = tuple(output.suffix for output in OUTPUTS if output.image)
DEFAULT_OUTPUTS = frozenset(output.suffix for output in OUTPUTS if output.per_frame and output.default)
"""The node's per-frame outputs when no switch says otherwise (the node builds each one only while
it has a subscriber, so the compressed copies cost nothing until someone asks for them)."""
COMPRESSED_OUTPUTS = tuple(output.suffix for output in OUTPUTS if output.codec)
"""Suffixes of the CompressedImage copies of raw image outputs, in order."""
RAW_DEFAULT_OUTPUTS = DEFAULT_OUTPUTS - set(COMPRESSED_OUTPUTS)
"""What a processor builds for every frame when not told otherwise (bag replay, fleet, probes): no
subscriber gates the work there, so the compressed copies are built only when named."""


def sources(outputs: frozenset[str] | set[str]) -> frozenset[str]:
    """The raw outputs whose pixels ``outputs`` need: {'mask/compressed', 'overlay'} -> {'mask', 'overlay'}."""
    return frozenset(raw_of(suffix) for suffix in outputs)


def check_outputs(enabled: frozenset[str] | set[str], where: str = "outputs") -> frozenset[str]:
    """``enabled`` as a frozenset of per-frame suffixes; ValueError naming what is wrong."""
    enabled = frozenset(enabled)
    unknown = sorted(enabled - set(PER_FRAME))
    if unknown:
        raise ValueError(f"{where}: unknown output(s) {', '.join(unknown)}; choose from {', '.join(PER_FRAME)}")
    if not enabled & set(IMAGE_OUTPUTS):
        switches = ", ".join(BY_SUFFIX[s].param or s for s in IMAGE_OUTPUTS)
        raise ValueError(f"{where}: no image output is enabled; enable at least one output ({switches})")
    return enabled


def node_fqn(namespace: str, node_name: str = NODE_NAME) -> str:
    """The fully qualified name of the node in ``namespace``: 'front' -> '/front/segmentation'."""
    parts = [part for part in namespace.strip("/").split("/") if part]
    return "/" + "/".join([*parts, node_name])


def namesakes(fqn: str, graph_nodes: list[tuple[str, str]]) -> int:
    """How many nodes of ``graph_nodes`` ((name, namespace) pairs, as rclpy's
    ``get_node_names_and_namespaces`` gives them, this node included) have the name ``fqn``, besides one."""
    same = sum(1 for name, namespace in graph_nodes if node_fqn(namespace, name) == fqn)
    return max(0, same - 1)


def output_topic(namespace: str, suffix: str, node_name: str = NODE_NAME) -> str:
    """The absolute topic of output ``suffix`` of the node ``node_name`` in ``namespace``."""
    return f"{node_fqn(namespace, node_name)}/{suffix}"

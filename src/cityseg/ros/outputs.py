"""The segmentation node's name and outputs, defined once. No ROS.

Every consumer reads :data:`OUTPUTS`: the node's parameters (one ``publish_*`` switch per
switchable output, see :mod:`cityseg.ros.params`), the :class:`~cityseg.ros.processor.FrameProcessor`
(which messages it builds), the node (its publishers), the bag tool (its topics) and the CLI
(``cityseg bag --outputs``). Adding an output is one row here plus its builder in the processor.
"""

from __future__ import annotations

from dataclasses import dataclass

from cityseg.ros.messages import CAMERA_INFO as CAMERA_INFO_TYPE, IMAGE, LABEL_INFO as LABEL_INFO_TYPE

NODE_NAME = "segmentation"
"""The node's name: its outputs are ``/<namespace>/segmentation/<suffix>``."""
NODE_EXECUTABLE = "segmentation_node"
"""The console script that runs the node (``ros2 run cityseg segmentation_node``)."""

MASK, COLOR_MASK, OVERLAY, CAMERA_INFO, LABEL_INFO = "mask", "color_mask", "overlay", "camera_info", "label_info"


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


OUTPUTS: tuple[Output, ...] = (
    Output(MASK, IMAGE, "mono8 class ids at the input resolution (times output_scale)",
           param="publish_mask", image=True),
    Output(COLOR_MASK, IMAGE, "rgb8 palette colours of the mask", param="publish_color", image=True),
    Output(OVERLAY, IMAGE, "the colour mask blended over the input image", param="publish_overlay",
           image=True),
    Output(CAMERA_INFO, CAMERA_INFO_TYPE, "the input CameraInfo, stamped like the mask and resized "
           "with output_scale", param="publish_camera_info"),
    Output(LABEL_INFO, LABEL_INFO_TYPE, "vision_msgs/LabelInfo: class id -> name (transient local, "
           "published once; needs vision_msgs)", per_frame=False),
)
"""Every output, in publishing order."""

BY_SUFFIX = {output.suffix: output for output in OUTPUTS}
SWITCHABLE = tuple(output for output in OUTPUTS if output.param)
"""Outputs with a ``publish_*`` parameter, in order."""
PER_FRAME = tuple(output.suffix for output in OUTPUTS if output.per_frame)
"""Suffixes of the outputs built for every frame."""
IMAGE_OUTPUTS = tuple(output.suffix for output in OUTPUTS if output.image)


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


def output_topic(namespace: str, suffix: str, node_name: str = NODE_NAME) -> str:
    """The absolute topic of output ``suffix`` of the node ``node_name`` in ``namespace``."""
    return f"{node_fqn(namespace, node_name)}/{suffix}"

"""The segmentation node's parameters: one typed dataclass, validated like every cityseg config.

The node declares one ROS parameter per field (name, default and description come from here),
reads them all back and passes them to :func:`load_node_params`; a bad value stops the node
with the message of the :class:`cityseg.config.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from cityseg.config import ConfigError, from_mapping, load_yaml
from cityseg.fusion.grid import parse_costs
from cityseg.ros.core.outputs import (
    BY_SUFFIX,
    CAMERA_INFO,
    COLOR_MASK,
    CONFIDENCE,
    MASK,
    OVERLAY,
    SWITCHABLE,
    check_outputs,
    compressed_of,
)
from cityseg.ros.core.processor import ProcessorConfig


def _param(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class _Settings:
    """The node's parameters other than the output switches (NodeParams adds those)."""

    model: str = _param("", "model bundle directory (required)")
    backend: Literal["auto", "tensorrt", "onnxruntime", "openvino", "tensorflow"] = _param(
        "auto", "inference backend: auto, tensorrt, onnxruntime, openvino or tensorflow (auto: TensorRT on an "
                "NVIDIA GPU, else the fastest gated CPU artifact measured at export)")
    artifact: str = _param(
        "", "the bundle's model file to run, by its card key (e.g. onnx_argmax, or a fused-I/O graph from "
            "`cityseg export --fused-io`); empty: an argmax head first, fused-I/O graphs only when named")
    id_space: Literal["auto", "labelid", "trainid"] = _param(
        "auto", "ids written in ~/mask: auto (labelid for Cityscapes models, else the bundle's own label "
                "set), labelid (Cityscapes 0-33) or trainid (0-18, 255 unlabeled)")
    input_compressed: bool = _param(
        False, "subscribe to image/compressed (sensor_msgs/CompressedImage) instead of image")
    overlay_alpha: float = _param(0.5, "overlay opacity of the colour mask, in [0, 1]")
    output_scale: float = _param(1.0, "size of the output images relative to the input, in (0, 1]")
    mono16_max: int = _param(65535, "white level of mono16/16UC1 input, in [1, 65535] (4095: 12-bit)")
    jpeg_quality: int = _param(80, "JPEG quality of ~/color_mask/compressed and ~/overlay/compressed, in [1, 100]")
    qos_reliability: Literal["best_effort", "reliable"] = _param(
        "best_effort", "reliability of the image and camera_info subscriptions")
    output_reliability: Literal["best_effort", "reliable"] = _param(
        "reliable", "reliability of the image publishers (reliable also serves best-effort readers)")
    qos_depth: int = _param(1, "history depth of subscriptions and publishers, >= 1")
    max_rate_hz: float = _param(0.0, "at most this many frames per second are segmented (0: no limit)")
    diagnostics_period: float = _param(1.0, "seconds between /diagnostics messages, > 0")
    log_period: float = _param(10.0, "seconds between statistics log lines (0: never)")
    stats_window: float = _param(5.0, "seconds over which rates and latencies are averaged, > 0")
    cameras: tuple[str, ...] = _param(
        (), "several cameras in one process, one model, batched: camera names (e.g. [front, left, right]); "
            "camera c reads camera_image_topic / camera_info_topic and publishes under camera_output_prefix, "
            "each with {camera} replaced; empty: one camera (image, camera_info, ~/<output>)")
    camera_image_topic: str = _param("/{camera}/image_raw", "image topic of each camera ({camera}: its name)")
    camera_info_topic: str = _param("/{camera}/camera_info", "CameraInfo topic of each camera")
    camera_output_prefix: str = _param(
        "/{camera}/segmentation", "outputs of each camera are <prefix>/<output>, as one node per camera "
                                  "in namespace <camera> publishes them")
    batch_wait_ms: float = _param(
        5.0, "after a first camera's frame, wait at most this long for the other cameras' frames to fill "
             "the batch (0: take what is there)")
    max_batch: int = _param(0, "at most this many frames per batch (0: one per camera); cameras are "
                               "served round robin, so none starves")
    autostart: bool = _param(
        True, "configure and activate the (lifecycle) node at startup; false: wait for a lifecycle manager "
              "(ros2 lifecycle set <node> configure, then activate)")
    upstream_loss_warn: float = _param(
        1.0, "warn when more than this percentage of the camera's frames never reached the node "
             "(estimated from header stamp gaps), in [0, 100]")
    points_topic: str = _param(
        "", "sensor_msgs/PointCloud2 topic labelled with every camera's mask: ~/points, and ~/grid with "
            "grid_frame (docs/FUSION.md); empty: off (with grid_frame: the camera-only grid)")
    extrinsics_file: str = _param(
        "", "YAML of static transforms (parent, child, translation, rotation quaternion) from the cloud's "
            "(or grid's) frame to the cameras' frames; empty: tf2 lookups at each sensor's stamp (needs tf2_ros)")
    fixed_frame: str = _param(
        "", "tf2 only: a frame that does not move with the vehicle (e.g. odom); each sensor's pose is looked "
            "up at its own stamp through it, compensating ego motion; empty: one stamp per lookup")
    sync_tolerance_ms: float = _param(50.0, "a camera's mask labels a cloud stamped within this of it, >= 0")
    points_drop_labels: tuple[str, ...] = _param(
        (), "class names whose points ~/points leaves out (e.g. [sky, vegetation, road], Autoware's filter)")
    grid_frame: str = _param(
        "", "frame of ~/grid and ~/grid/labels (e.g. base_link); empty: no grid. Without points_topic: the "
            "camera-only grid of the masks' ground classes, one per rig frame")
    grid_resolution: float = _param(0.2, "metres per grid cell, > 0")
    grid_cells: int = _param(250, "cells per side of the square grid, centred on grid_frame's origin, >= 1")
    grid_costs: tuple[str, ...] = _param(
        (), "grid costs by class name on top of the defaults, as 'name:cost' (e.g. [sidewalk:50]); cost in -1..100")
    grid_range: float = _param(30.0, "camera-only grid: cells up to this many metres from a camera, > 0")

    def __post_init__(self) -> None:
        check_finite(self)
        if not self.model:
            raise ValueError("model is required: pass the bundle directory, e.g. model:=/models/unet_lite")
        if self.qos_depth < 1:
            raise ValueError(f"qos_depth must be >= 1, got {self.qos_depth}")
        if self.max_rate_hz < 0:
            raise ValueError(f"max_rate_hz must be >= 0 (0: no limit), got {self.max_rate_hz}")
        if self.diagnostics_period <= 0 or self.stats_window <= 0 or self.log_period < 0:
            raise ValueError("diagnostics_period and stats_window must be > 0 and log_period >= 0")
        if not 0.0 <= self.upstream_loss_warn <= 100.0:
            raise ValueError(f"upstream_loss_warn must be within [0, 100], got {self.upstream_loss_warn}")
        check_outputs(self.outputs(), where="publish_*")
        self._check_cameras()
        self.processor_config()  # validates overlay_alpha, output_scale, mono16_max, jpeg_quality
        self._check_fusion()

    def _check_fusion(self) -> None:
        if not self.points_topic and not self.grid_frame:
            return
        if self.fixed_frame and self.extrinsics_file:
            raise ValueError("fixed_frame needs tf2 (moving frames); extrinsics_file holds static transforms "
                             "only: leave one of them empty")
        if self.sync_tolerance_ms < 0 or self.grid_resolution <= 0 or self.grid_cells < 1 or self.grid_range <= 0:
            raise ValueError("sync_tolerance_ms must be >= 0, grid_resolution > 0, grid_cells >= 1 and "
                             "grid_range > 0")
        bad = {k: v for k, v in parse_costs(self.grid_costs).items() if not -1 <= v <= 100}
        if bad:
            raise ValueError(f"grid_costs must be within -1..100 (OccupancyGrid), got {bad}")

    def _check_cameras(self) -> None:
        names = list(self.cameras)
        bad = [n for n in names if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n)]
        if bad:
            raise ValueError(f"cameras: {', '.join(map(repr, bad))} is not a ROS name token (letters, digits, "
                             "underscores; not starting with a digit)")
        if len(set(names)) != len(names):
            raise ValueError(f"cameras: each camera once, got {names}")
        for name in ("camera_image_topic", "camera_info_topic", "camera_output_prefix"):
            if names and "{camera}" not in getattr(self, name):
                raise ValueError(f"{name} must contain {{camera}} (e.g. /{{camera}}/image_raw), got "
                                 f"{getattr(self, name)!r}")
        if self.batch_wait_ms < 0 or self.max_batch < 0:
            raise ValueError("batch_wait_ms and max_batch must be >= 0")

    def outputs(self) -> frozenset[str]:
        """Suffixes of the per-frame outputs switched on."""
        return frozenset(o.suffix for o in SWITCHABLE if getattr(self, o.param))

    def processor_config(self) -> ProcessorConfig:
        """The FrameProcessor settings these parameters ask for."""
        return ProcessorConfig(outputs=self.outputs(), overlay_alpha=self.overlay_alpha,
                               id_space=self.id_space, output_scale=self.output_scale,
                               mono16_max=self.mono16_max, artifact=self.artifact or None,
                               jpeg_quality=self.jpeg_quality)


def _switch(suffix: str) -> Any:
    """The ``publish_*`` field of output ``suffix``: default and description from the outputs table."""
    output = BY_SUFFIX[suffix]
    return _param(output.default, f"publish ~/{output.suffix}: {output.description}")


@dataclass(frozen=True)
class NodeParams(_Settings):
    """Parameters of ``segmentation_node`` (see docs/ROS.md): the settings above plus one
    ``publish_<output>`` switch per row of cityseg.ros.core.outputs.SWITCHABLE (a test keeps them equal)."""

    publish_mask: bool = _switch(MASK)
    publish_color: bool = _switch(COLOR_MASK)
    publish_overlay: bool = _switch(OVERLAY)
    publish_confidence: bool = _switch(CONFIDENCE)
    publish_mask_compressed: bool = _switch(compressed_of(MASK))
    publish_color_compressed: bool = _switch(compressed_of(COLOR_MASK))
    publish_overlay_compressed: bool = _switch(compressed_of(OVERLAY))
    publish_confidence_compressed: bool = _switch(compressed_of(CONFIDENCE))
    publish_camera_info: bool = _switch(CAMERA_INFO)


@dataclass(frozen=True)
class ParameterSpec:
    """What the node declares for one parameter."""

    name: str
    default: Any
    """As ROS declares it (a list for an array parameter)."""
    description: str
    constraints: str = ""
    """Allowed values, as ``ros2 param describe`` shows them."""


def parameter_specs() -> list[ParameterSpec]:
    """One spec per NodeParams field, in declaration order."""
    hints = typing.get_type_hints(NodeParams)
    return [ParameterSpec(f.name, list(f.default) if isinstance(f.default, tuple) else f.default,
                          f.metadata["doc"], _constraints(hints[f.name]))
            for f in dataclasses.fields(NodeParams)]


def _constraints(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of: " + ", ".join(map(str, typing.get_args(hint)))
    if hint is bool:
        return "true or false"
    return ""


def _sequence_parameters() -> frozenset[str]:
    hints = typing.get_type_hints(NodeParams)
    return frozenset(name for name, hint in hints.items() if typing.get_origin(hint) is tuple)


def check_finite(params: NodeParams) -> None:
    """Refuse NaN and infinite numbers in any float parameter (comparisons such as ``> 0`` let NaN by)."""
    bad = [f"{f.name} = {value}" for f in dataclasses.fields(params)
           if isinstance(value := getattr(params, f.name), float) and not math.isfinite(value)]
    if bad:
        raise ValueError(f"{', '.join(bad)}: not a finite number; give a number (NaN and infinity are refused)")


def load_node_params(values: dict[str, Any], where: str = "segmentation_node parameters") -> NodeParams:
    """Validate parameter values as rclpy reports them; raise ConfigError naming the bad one and the fix.

    rcl gives an empty sequence in a params file no type, so rclpy reports it unset (None): an
    unset list parameter means its default (``cameras: []`` is one camera). Any other unset
    parameter is refused, never silently defaulted.
    """
    sequences = _sequence_parameters()
    given = {name: value for name, value in values.items() if not (value is None and name in sequences)}
    unset = sorted(name for name, value in given.items() if value is None)
    if unset:
        raise ConfigError(f"{where}: {', '.join(unset)} has no value (an empty value such as `[]` or `~` in a "
                          "params file arrives unset); give it a value or remove the line to keep the default")
    return from_mapping(NodeParams, given, where=where)


def rcl_value(name: str, value: Any, where: str) -> Any:
    """A params-file YAML value as rcl hands it to the node: an empty sequence is unset (None); a
    sequence must hold one scalar type (rcl refuses a mixed or nested one, so the node would not start)."""
    if not isinstance(value, list):
        return value
    if not value:
        return None
    kinds = {type(item) for item in value}
    if len(kinds) > 1 or kinds & {list, dict, type(None)}:
        raise ConfigError(f"{where}: {name}: {value!r} mixes types or nests; a ROS 2 parameter array holds "
                          "one type (all strings, all integers, all floats or all booleans)")
    return value


ROS_WIDE_PARAMETERS = ("use_sim_time",)
"""Parameters every rclpy node declares itself; allowed in a params file, not NodeParams fields."""


def known_parameters() -> frozenset[str]:
    """Every parameter the node declares: NodeParams' fields and the ROS-wide ones."""
    return frozenset({f.name for f in dataclasses.fields(NodeParams)} | set(ROS_WIDE_PARAMETERS))


def check_known(names, where: str, fix: str) -> None:
    """The one rule for parameter names, offline and on the vehicle: ConfigError naming every
    unknown one (and the nearest known name) in ``names``; ``fix`` says where to correct it."""
    known = known_parameters()
    unknown = sorted(set(names) - known)
    if not unknown:
        return
    hints = [f"{name} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(name, known, 1)) else name
             for name in unknown]
    raise ConfigError(f"{where}: unknown parameter(s) {', '.join(hints)}; {fix} "
                      f"(known: {', '.join(sorted(known))})")


def section_applies(section: str, node_name: str) -> bool:
    """Whether a params-file section key (``/**``, ``/front/segmentation``, ``/*/segmentation``...)
    applies to the node ``node_name`` (fully qualified), with rcl's wildcard rules."""
    pattern = "/" + section.strip("/")
    regex = "".join(".*" if tok == "**" else "[^/]*" if tok == "*" else re.escape(tok)
                    for tok in re.split(r"(\*\*|\*)", pattern))
    return re.fullmatch(regex, node_name) is not None or (section == "/**")


def check_params_file(path: str, overrides: dict[str, Any] | None = None,
                      node_name: str | None = None) -> NodeParams:
    """Validate a ROS 2 params file plus ``overrides`` as the node ``node_name`` will see them.

    Every section is checked for unknown keys (typos); the values are validated for the sections
    that apply to ``node_name`` (all sections when None), merged in file order and typed as rcl
    delivers them (an empty sequence is unset, ``1`` an integer, ``1.0`` a float). The
    launch file calls this before starting the node, so a typo or a bad value is reported with the
    file name instead of being ignored by rclpy.
    """
    data = load_yaml(path)
    merged: dict[str, Any] = {}
    for section, body in data.items():
        params = body.get("ros__parameters") if isinstance(body, dict) else None
        if not isinstance(params, dict):
            raise ConfigError(f"{path}: section {section!r} has no ros__parameters mapping; a ROS 2 "
                              "params file looks like `/**: {ros__parameters: {backend: auto}}`")
        check_known(params, f"{path}: {section!r}", "correct or remove it in the params file")
        if node_name is None or section_applies(str(section), node_name):
            merged.update({name: rcl_value(name, value, f"{path}: {section!r}") for name, value in params.items()})
    merged.update({name: rcl_value(name, value, "overrides") for name, value in (overrides or {}).items()})
    for name in ROS_WIDE_PARAMETERS:
        merged.pop(name, None)
    return load_node_params(merged, where=str(path))

"""sensor_msgs/PointCloud2 data as numpy, ROS-free: read x/y/z from any field layout, write the
labelled cloud (the input's fields unchanged, plus ``label``, ``confidence`` and ``camera`` uint8).

A cloud is given by its plain fields (:class:`CloudLayout`: height, width, fields, point_step,
row_step, is_bigendian) and its data bytes, so the node (rclpy messages) and the bag tool (rosbags
messages) share one reader. Organized clouds (height > 1), row padding and NaN points are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cityseg.errors import InputError

INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
"""PointField datatype constants (sensor_msgs/PointField)."""
DTYPES = {INT8: "i1", UINT8: "u1", INT16: "i2", UINT16: "u2", INT32: "i4", UINT32: "u4",
          FLOAT32: "f4", FLOAT64: "f8"}
LABEL_FIELDS = ("label", "confidence", "camera")
"""The uint8 fields appended to a labelled cloud, in this order."""
UNKNOWN = 255
"""``label`` and ``camera`` of a point no camera labelled."""


@dataclass(frozen=True)
class Field:
    """One sensor_msgs/PointField."""

    name: str
    offset: int
    datatype: int
    count: int = 1

    @property
    def size(self) -> int:
        return np.dtype(DTYPES[self.datatype]).itemsize * max(1, self.count)


@dataclass(frozen=True)
class CloudLayout:
    """The layout fields of a PointCloud2 (everything but header and data)."""

    height: int
    width: int
    fields: tuple[Field, ...]
    point_step: int
    row_step: int
    is_bigendian: bool = False
    is_dense: bool = False

    @property
    def num_points(self) -> int:
        return self.height * self.width

    @classmethod
    def from_message(cls, msg) -> CloudLayout:
        """The layout of a PointCloud2 message (rclpy or rosbags)."""
        fields = tuple(Field(str(f.name), int(f.offset), int(f.datatype), int(f.count)) for f in msg.fields)
        return cls(int(msg.height), int(msg.width), fields, int(msg.point_step), int(msg.row_step),
                   bool(msg.is_bigendian), bool(msg.is_dense))

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


def _check_layout(layout: CloudLayout, size: int) -> None:
    if layout.height < 0 or layout.width < 0 or layout.point_step <= 0 and layout.num_points:
        raise InputError(f"PointCloud2 has height {layout.height}, width {layout.width}, point_step "
                         f"{layout.point_step}; fix the LiDAR driver")
    for f in layout.fields:
        if f.datatype not in DTYPES:
            raise InputError(f"PointCloud2 field {f.name!r} has unknown datatype {f.datatype}")
        if f.offset < 0 or f.offset + f.size > layout.point_step:
            raise InputError(f"PointCloud2 field {f.name!r} (offset {f.offset}, {f.size} bytes) does not fit "
                             f"in point_step {layout.point_step}")
    if layout.height and layout.row_step < layout.width * layout.point_step:
        raise InputError(f"PointCloud2 row_step {layout.row_step} is below width x point_step "
                         f"({layout.width} x {layout.point_step})")
    needed = layout.row_step * layout.height
    if size < needed:
        raise InputError(f"PointCloud2 data has {size} bytes, its layout needs {needed} "
                         f"({layout.height} rows of {layout.row_step})")


def point_rows(layout: CloudLayout, data) -> np.ndarray:
    """The cloud's points as uint8 (N, point_step), row padding dropped (a view where possible)."""
    raw = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    _check_layout(layout, raw.size)
    if not layout.num_points:
        return np.zeros((0, layout.point_step), np.uint8)
    rows = raw[:layout.row_step * layout.height].reshape(layout.height, layout.row_step)
    rows = rows[:, :layout.width * layout.point_step]
    return rows.reshape(layout.num_points, layout.point_step)


def read_xyz(layout: CloudLayout, data) -> np.ndarray:
    """float32 (N, 3) x, y, z of every point in row-major order (NaN points kept as they are).

    Raises InputError (one line naming the field and the fix) when x, y or z is missing or not float32.
    """
    for name in ("x", "y", "z"):
        f = layout.field(name)
        if f is None or f.datatype != FLOAT32:
            found = ", ".join(f"{g.name}:{DTYPES.get(g.datatype, g.datatype)}" for g in layout.fields) or "none"
            raise InputError(f"PointCloud2 needs float32 fields x, y, z; field {name!r} is "
                             f"{'missing' if f is None else DTYPES.get(f.datatype, f.datatype)} "
                             f"(fields: {found}); publish x/y/z as float32")
    rows = point_rows(layout, data)
    order = ">" if layout.is_bigendian else "<"
    offsets = [layout.field(n).offset for n in ("x", "y", "z")]
    if offsets[1:] == [offsets[0] + 4, offsets[0] + 8]:  # x, y, z packed (every driver): 12 bytes a point
        packed = np.empty((layout.num_points, 3), order + "f4")
        packed.view("V12")[:, 0] = rows[:, offsets[0]:offsets[0] + 12].view("V12")[:, 0]
        return packed if order == "<" else packed.astype(np.float32)
    dtype = np.dtype({"names": ["x", "y", "z"], "formats": [order + "f4"] * 3, "offsets": offsets,
                      "itemsize": layout.point_step})
    points = np.ascontiguousarray(rows).view(dtype).ravel()
    out = np.empty((layout.num_points, 3), np.float32)
    for i, name in enumerate(("x", "y", "z")):
        out[:, i] = points[name]
    return out


def labelled_layout(layout: CloudLayout, num_points: int, organized: bool) -> CloudLayout:
    """The layout of the labelled cloud: input fields, then label/confidence/camera (uint8)."""
    taken = {f.name for f in layout.fields} & set(LABEL_FIELDS)
    if taken:
        raise InputError(f"PointCloud2 already has field(s) {sorted(taken)}; the labelled cloud adds "
                         f"{', '.join(LABEL_FIELDS)}: rename them in the driver")
    step = layout.point_step
    fields = layout.fields + tuple(Field(n, step + i, UINT8) for i, n in enumerate(LABEL_FIELDS))
    new_step = -(-(step + len(LABEL_FIELDS)) // 4) * 4  # padded to 4 bytes
    height, width = (layout.height, layout.width) if organized else (1, num_points)
    return CloudLayout(height, width, fields, new_step, width * new_step, layout.is_bigendian, layout.is_dense)


def write_labelled(layout: CloudLayout, data, label: np.ndarray, confidence: np.ndarray,
                   camera: np.ndarray, keep: np.ndarray | None = None) -> tuple[CloudLayout, bytearray]:
    """The labelled cloud's (layout, data): each input point's bytes unchanged, then its label,
    confidence and camera, padding zero. ``keep`` (bool per point) drops points; the cloud is then
    unorganized. The input's bytes are copied once, straight into the returned buffer."""
    rows = point_rows(layout, data)
    organized = keep is None or bool(keep.all())
    if not organized:
        rows, label, confidence, camera = rows[keep], label[keep], confidence[keep], camera[keep]
    out_layout = labelled_layout(layout, len(rows), organized)
    step = layout.point_step
    names = ["point", *LABEL_FIELDS]
    dtype = np.dtype({"names": names, "formats": [f"V{step}", "u1", "u1", "u1"],
                      "offsets": [0, step, step + 1, step + 2], "itemsize": out_layout.point_step})
    buffer = bytearray(len(rows) * out_layout.point_step)  # zeroed: the padding
    out = np.frombuffer(buffer, dtype)
    out["point"] = rows.view(f"V{step}")[:, 0]  # one copy of each point's bytes (a void per point)
    for name, values in zip(LABEL_FIELDS, (label, confidence, camera)):
        out[name] = values
    return out_layout, buffer


def make_cloud(columns: Sequence[tuple[str, np.ndarray]], point_step: int | None = None,
               height: int = 1, bigendian: bool = False) -> tuple[CloudLayout, bytes]:
    """A cloud from named columns (each 1-D, one value per point, its dtype kept), packed in order
    (padded to ``point_step``): what test data and the synthetic LiDAR write."""
    kinds = {np.dtype(v).str[1:]: k for k, v in DTYPES.items()}
    fields, offset = [], 0
    for name, values in columns:
        values = np.asarray(values)
        fields.append(Field(name, offset, kinds[values.dtype.str[1:]]))
        offset += values.dtype.itemsize
    step = point_step or offset
    if step < offset:
        raise ValueError(f"point_step {step} is below the fields' {offset} bytes")
    n = len(columns[0][1]) if columns else 0
    order = ">" if bigendian else "<"
    dtype = np.dtype({"names": [c[0] for c in columns],
                      "formats": [order + np.asarray(c[1]).dtype.str[1:] for c in columns],
                      "offsets": [f.offset for f in fields], "itemsize": step})
    out = np.zeros(n, dtype)
    for name, values in columns:
        out[name] = values
    width = n // height if height else 0
    layout = CloudLayout(height, width, tuple(fields), step, width * step, bigendian, False)
    return layout, out.tobytes()

"""Static extrinsics, ROS-free: rigid transforms, an ``extrinsics_file`` (YAML of the transforms
``static_transform_publisher`` takes: parent, child, translation, rotation quaternion), and a tree
of frames that chains them (:meth:`FrameTree.lookup`).

Convention as tf2: the transform of entry (parent, child) maps points given in ``child`` into
``parent``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from cityseg.errors import InputError

ROTATION_TOLERANCE = 1e-3
"""How far a quaternion's norm may be from 1 (rounding in a hand-written file) before it is refused."""


@dataclass(frozen=True)
class Transform:
    """p_parent = rotation @ p_child + translation."""

    rotation: np.ndarray
    translation: np.ndarray

    @classmethod
    def identity(cls) -> Transform:
        return cls(np.eye(3), np.zeros(3))

    @classmethod
    def from_quaternion(cls, translation, quaternion) -> Transform:
        """From (x, y, z) and a unit quaternion (qx, qy, qz, qw), as tf2 and geometry_msgs write it
        (normalized first, so rounding in a file still gives a rotation)."""
        q = np.asarray(quaternion, np.float64)
        x, y, z, w = q / np.linalg.norm(q)
        rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        return cls(rot, np.asarray(translation, np.float64).reshape(3))

    def quaternion(self) -> tuple[float, float, float, float]:
        """(qx, qy, qz, qw) of the rotation (qw >= 0)."""
        m = self.rotation
        w = np.sqrt(max(0.0, 1 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
        x = np.copysign(np.sqrt(max(0.0, 1 + m[0, 0] - m[1, 1] - m[2, 2])) / 2, m[2, 1] - m[1, 2])
        y = np.copysign(np.sqrt(max(0.0, 1 - m[0, 0] + m[1, 1] - m[2, 2])) / 2, m[0, 2] - m[2, 0])
        z = np.copysign(np.sqrt(max(0.0, 1 - m[0, 0] - m[1, 1] + m[2, 2])) / 2, m[1, 0] - m[0, 1])
        return float(x), float(y), float(z), float(w)

    def __matmul__(self, other: Transform) -> Transform:
        """self after other: (A @ B) maps B's child frame into A's parent frame."""
        return Transform(self.rotation @ other.rotation, self.rotation @ other.translation + self.translation)

    def inverse(self) -> Transform:
        rt = self.rotation.T
        return Transform(rt, -rt @ self.translation)

    def apply_row(self, i: int, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Coordinate ``i`` of the transformed points, from contiguous 1-D x, y, z."""
        r = self.rotation[i]
        out = x * r[0]
        out += y * r[1]
        out += z * r[2]
        out += self.translation[i]
        return out

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Points (N, 3) in the child frame -> float64 (N, 3) in the parent frame.

        Written out per coordinate: a BLAS matmul of (N, 3) x (3, 3) spins up threads that cost
        more than the arithmetic on a loaded machine."""
        p = np.asarray(points, np.float64)
        out = np.empty((len(p), 3))
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        for i in range(3):
            r = self.rotation[i]
            np.multiply(x, r[0], out=out[:, i])
            out[:, i] += y * r[1]
            out[:, i] += z * r[2]
            out[:, i] += self.translation[i]
        return out


def check_quaternion(quaternion, where: str) -> None:
    """Refuse anything but four finite numbers of unit norm (within ROTATION_TOLERANCE)."""
    q = np.asarray(quaternion, np.float64).ravel()
    if q.size != 4 or not np.isfinite(q).all() or abs(np.linalg.norm(q) - 1) > ROTATION_TOLERANCE:
        raise InputError(f"{where}: rotation {[float(v) for v in q] if q.size else quaternion} is not a unit "
                         "quaternion [qx, qy, qz, qw]; write the rotation as one")


class FrameTree:
    """Frames joined by transforms: each child has one parent, no cycles (like tf2's tree)."""

    def __init__(self, source: str = "transforms"):
        self.source = source
        self._parent: dict[str, tuple[str, Transform]] = {}

    @property
    def frames(self) -> set[str]:
        return set(self._parent) | {parent for parent, _ in self._parent.values()}

    def add(self, parent: str, child: str, transform: Transform, where: str = "") -> None:
        """Add (or replace, as /tf_static does) ``child``'s transform to ``parent``."""
        where = where or f"{self.source}: {parent} -> {child}"
        if not parent or not child or parent == child:
            raise InputError(f"{where}: parent and child must be two different frame names")
        old = self._parent.get(child)
        if old is not None and old[0] != parent:
            raise InputError(f"{where}: frame {child!r} already has parent {old[0]!r}; a frame has one parent")
        if child in self._chain(parent):
            raise InputError(f"{where}: {child!r} is an ancestor of {parent!r}; the transforms make a cycle")
        self._parent[child] = (parent, transform)

    def _chain(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._parent:
            chain.append(self._parent[chain[-1]][0])
        return chain

    def _to_root(self, frame: str) -> tuple[str, Transform]:
        out = Transform.identity()
        while frame in self._parent:
            parent, t = self._parent[frame]
            out = t @ out
            frame = parent
        return frame, out

    def can_transform(self, target: str, source: str) -> bool:
        return target == source or (target in self.frames and source in self.frames
                                    and self._to_root(target)[0] == self._to_root(source)[0])

    def lookup(self, target: str, source: str) -> Transform:
        """The transform mapping points in ``source`` into ``target``; InputError naming both when
        they are not connected."""
        if target == source:
            return Transform.identity()
        if not self.can_transform(target, source):
            missing = [f for f in (target, source) if f not in self.frames]
            why = f"unknown frame(s) {missing}" if missing else "the frames are not connected"
            raise InputError(f"no transform from {source!r} to {target!r} in {self.source} ({why})")
        root_t, target_t = self._to_root(target)
        _, source_t = self._to_root(source)
        return target_t.inverse() @ source_t

    def require(self, frames: Iterable[str], connected_to: str | None = None) -> None:
        """Refuse (naming the source) frames the tree lacks, or not connected to ``connected_to``."""
        for frame in frames:
            if frame not in self.frames:
                raise InputError(f"{self.source} has no frame {frame!r} (frames: {sorted(self.frames)}); "
                                 "add its transform")
            if connected_to and not self.can_transform(connected_to, frame):
                raise InputError(f"{self.source}: frame {frame!r} is not connected to {connected_to!r}")


_PARENT_KEYS, _CHILD_KEYS = ("parent", "frame_id"), ("child", "child_frame_id")


def _entry_value(entry: dict, keys: tuple[str, ...], where: str):
    for key in keys:
        if key in entry:
            return entry[key]
    raise InputError(f"{where}: missing {keys[0]!r}; each entry needs parent, child, translation, rotation")


def load_extrinsics(path: str | Path) -> FrameTree:
    """Read an extrinsics YAML: a list (or ``transforms:`` list) of entries
    ``{parent, child, translation: [x, y, z], rotation: [qx, qy, qz, qw]}`` (``frame_id`` /
    ``child_frame_id`` also accepted). Errors name the file and the entry."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read extrinsics file {path}: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("transforms")
    if not isinstance(data, list) or not data:
        raise InputError(f"extrinsics file {path} needs a list of transforms (or 'transforms:' with one)")
    tree = FrameTree(str(path))
    for i, entry in enumerate(data):
        where = f"{path} entry {i}"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: expected a mapping with parent, child, translation, rotation")
        parent = str(_entry_value(entry, _PARENT_KEYS, where))
        child = str(_entry_value(entry, _CHILD_KEYS, where))
        where = f"{path} entry {i} ({parent} -> {child})"
        translation = entry.get("translation")
        rotation = entry.get("rotation")
        try:
            translation = np.asarray(translation, np.float64).reshape(3)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: translation {translation!r} is not [x, y, z]") from exc
        if not np.isfinite(translation).all():
            raise InputError(f"{where}: translation {[float(v) for v in translation]} is not finite (NaN or "
                             "infinity); give [x, y, z] in metres")
        try:
            check_quaternion(rotation, where)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: rotation {rotation!r} is not [qx, qy, qz, qw]") from exc
        tree.add(parent, child, Transform.from_quaternion(translation, rotation), where)
    return tree


# ------------------------------------------------------------------------------------------
# Transforms that change over time (/tf)
# ------------------------------------------------------------------------------------------

TF_TOLERANCE_NS = 100_000_000
"""How far outside a dynamic transform's samples a lookup may be (answered with the nearest sample)."""
TF_CACHE_NS = 10 * 10**9
"""Samples older than this behind a transform's newest are dropped (tf2's default cache is 10 s)."""


def slerp(q0: np.ndarray, q1: np.ndarray, s: float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions (qx, qy, qz, qw), s in [0, 1], the short way."""
    q0, q1 = np.asarray(q0, np.float64), np.asarray(q1, np.float64)
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: linear, normalized (slerp's sine ratio loses precision)
        q = q0 + s * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(min(dot, 1.0))
    return (np.sin((1 - s) * theta) * q0 + np.sin(s * theta) * q1) / np.sin(theta)


class _Samples:
    """One dynamic edge's samples, sorted by stamp: translations and quaternions."""

    def __init__(self) -> None:
        self.stamps: list[int] = []
        self.translations: list[np.ndarray] = []
        self.quaternions: list[np.ndarray] = []

    def add(self, stamp_ns: int, transform: Transform) -> None:
        i = bisect.bisect_left(self.stamps, stamp_ns)
        q, t = np.asarray(transform.quaternion()), np.asarray(transform.translation, np.float64)
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:
            self.translations[i], self.quaternions[i] = t, q
        else:
            self.stamps.insert(i, stamp_ns)
            self.translations.insert(i, t)
            self.quaternions.insert(i, q)
        old = bisect.bisect_left(self.stamps, self.stamps[-1] - TF_CACHE_NS)
        if old:
            del self.stamps[:old], self.translations[:old], self.quaternions[:old]

    def at(self, stamp_ns: int, tolerance_ns: int) -> Transform | None:
        """Interpolated at ``stamp_ns`` (translation linearly, rotation by slerp, between the two
        nearest samples); the nearest sample within ``tolerance_ns`` outside the range; else None."""
        s = self.stamps
        if not s or stamp_ns < s[0] - tolerance_ns or stamp_ns > s[-1] + tolerance_ns:
            return None
        i = bisect.bisect_left(s, stamp_ns)
        if i == 0 or i == len(s):
            j = 0 if i == 0 else len(s) - 1
            return Transform.from_quaternion(self.translations[j], self.quaternions[j])
        if s[i] == stamp_ns:
            return Transform.from_quaternion(self.translations[i], self.quaternions[i])
        w = (stamp_ns - s[i - 1]) / (s[i] - s[i - 1])
        t = (1 - w) * self.translations[i - 1] + w * self.translations[i]
        return Transform.from_quaternion(t, slerp(self.quaternions[i - 1], self.quaternions[i], w))

    def span(self) -> str:
        return f"{self.stamps[0] / 1e9:.3f}..{self.stamps[-1] / 1e9:.3f} s" if self.stamps else "none"


class TransformBuffer(FrameTree):
    """A frame tree whose edges are static (:meth:`add`, as /tf_static) or dynamic
    (:meth:`add_sample`, as /tf: looked up at a stamp, interpolated between samples)."""

    def __init__(self, source: str = "transforms", tolerance_ns: int = TF_TOLERANCE_NS):
        super().__init__(source)
        self.tolerance_ns = int(tolerance_ns)
        self._dynamic: dict[str, _Samples] = {}

    def add(self, parent: str, child: str, transform: Transform, where: str = "") -> None:
        super().add(parent, child, transform, where)
        self._dynamic.pop(child, None)

    def add_sample(self, parent: str, child: str, stamp_ns: int, transform: Transform, where: str = "") -> None:
        """A sample of ``child``'s transform to ``parent`` at ``stamp_ns`` (a /tf entry)."""
        if child not in self._dynamic or self._parent.get(child, (None,))[0] != parent:
            FrameTree.add(self, parent, child, Transform.identity(), where)
            self._dynamic[child] = _Samples()
        self._dynamic[child].add(int(stamp_ns), transform)

    def _edge(self, child: str, stamp_ns: int | None) -> Transform:
        parent, static = self._parent[child]
        samples = self._dynamic.get(child)
        if samples is None:
            return static
        t = None if stamp_ns is None else samples.at(stamp_ns, self.tolerance_ns)
        if t is None:
            when = "without a stamp" if stamp_ns is None else f"at {stamp_ns / 1e9:.3f} s"
            raise InputError(f"no transform from {child!r} to {parent!r} {when} in {self.source} "
                             f"(samples {samples.span()}, tolerance {self.tolerance_ns / 1e6:g} ms)")
        return t

    def _to_ancestor(self, frame: str, ancestor: str, stamp_ns: int | None) -> Transform:
        out = Transform.identity()
        while frame != ancestor:
            out = self._edge(frame, stamp_ns) @ out
            frame = self._parent[frame][0]
        return out

    def lookup(self, target: str, source: str, stamp_ns: int | None = None) -> Transform:
        """Points in ``source`` into ``target``, every dynamic edge between them at ``stamp_ns`` (edges
        above their common ancestor are not looked at); InputError when the frames are not connected
        or a dynamic edge has no sample near the stamp."""
        if target == source:
            return Transform.identity()
        if not self.can_transform(target, source):
            super().lookup(target, source)  # raises, naming the frames
        above_target = set(self._chain(target))
        common = next(f for f in self._chain(source) if f in above_target)
        return self._to_ancestor(target, common, stamp_ns).inverse() @ self._to_ancestor(source, common, stamp_ns)

    def lookup_full(self, target: str, target_ns: int, source: str, source_ns: int, fixed: str) -> Transform:
        """As tf2's lookup_transform_full: ``source`` at ``source_ns`` into ``fixed``, then ``fixed``
        into ``target`` at ``target_ns``; ego motion between the two stamps is compensated when
        ``fixed`` does not move with the vehicle (odom, map)."""
        return self.lookup(target, fixed, target_ns) @ self.lookup(fixed, source, source_ns)

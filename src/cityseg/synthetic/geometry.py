"""The synthetic street's geometry: label ids, the pinhole camera, and a canvas that paints the
RGB image and its labelId mask with the same polygons (so they always agree).

Everything is in metres (x: right, y: up, z: forward); :class:`View` projects world points to
pixels for one frame. Labels come from ``cityseg.labels`` (never retyped ids).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cityseg.labels import LABELS

_ID = {label.name: label.id for label in LABELS}
EGO, ROAD, SIDEWALK, PARKING = _ID["ego vehicle"], _ID["road"], _ID["sidewalk"], _ID["parking"]
BUILDING, WALL, FENCE, POLE = _ID["building"], _ID["wall"], _ID["fence"], _ID["pole"]
TRAFFIC_LIGHT, TRAFFIC_SIGN = _ID["traffic light"], _ID["traffic sign"]
VEGETATION, TERRAIN, SKY = _ID["vegetation"], _ID["terrain"], _ID["sky"]
PERSON, RIDER, CAR, TRUCK, BUS = _ID["person"], _ID["rider"], _ID["car"], _ID["truck"], _ID["bus"]
MOTORCYCLE, BICYCLE = _ID["motorcycle"], _ID["bicycle"]

NEAR = 1.0
"""Objects closer than this (metres in front of the camera) are not drawn."""
FAR = 400.0
"""Depth of the skyline and of the far end of ground strips."""
SHIFT = 4
ONE = 1 << SHIFT  # OpenCV fixed-point drawing: 1/16 pixel precision

Color = tuple[int, int, int]


def shade(color: Color, factor: float) -> Color:
    """``color`` scaled by ``factor`` (clipped to 0..255)."""
    return tuple(int(min(255, max(0, c * factor))) for c in color)


@dataclass
class Camera:
    """Intrinsics relative to the image size, pose in metres, forward speed in m/s."""

    focal: float
    """Focal length as a fraction of the image width."""
    horizon: float
    """Row of the horizon as a fraction of the image height."""
    pan: float
    """Horizontal shift of the vanishing point as a fraction of the width (a small yaw)."""
    height: float
    x: float
    speed: float


class View:
    """The camera at time ``t`` for an image of ``height`` x ``width`` pixels."""

    def __init__(self, camera: Camera, height: int, width: int, t: float):
        self.f = camera.focal * width
        self.cx = width * (0.5 + camera.pan)
        self.cy = camera.horizon * height
        self.cam = camera
        self.z = camera.speed * t

    def depth(self, z: float) -> float:
        """Depth in front of the camera of world position ``z``."""
        return z - self.z

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> pixel coordinates (..., 2); points must be in front."""
        x, y, z = points[..., 0], points[..., 1], points[..., 2] - self.z
        u = self.cx + self.f * (x - self.cam.x) / z
        v = self.cy + self.f * (self.cam.height - y) / z
        return np.stack([u, v], axis=-1)

    def scale(self, z: float) -> float:
        """Pixels per metre at world depth ``z``."""
        return self.f / (z - self.z)


def fixed_point(polys: list[np.ndarray]) -> list[np.ndarray]:
    """Pixel polygons -> OpenCV fixed-point int32 polygons (draw them with ``shift=SHIFT``)."""
    return [np.round(np.asarray(p) * ONE).astype(np.int32) for p in polys]


class Canvas:
    """An RGB image and its labelId mask, drawn together so they always agree."""

    def __init__(self, height: int, width: int):
        self.image = np.zeros((height, width, 3), np.uint8)
        self.label = np.zeros((height, width), np.uint8)

    def polys(self, polys: list[np.ndarray], color: Color, label: int | None) -> None:
        """Fill pixel polygons with ``color``; also with ``label`` unless it is None (paint only)."""
        fixed = fixed_point(polys)
        cv2.fillPoly(self.image, fixed, color, cv2.LINE_8, SHIFT)
        if label is not None:
            cv2.fillPoly(self.label, fixed, label, cv2.LINE_8, SHIFT)

    def ellipse(self, center, axes, color: Color, label: int | None, angle: float = 0.0,
                thickness: int = -1) -> None:
        """A filled (or outlined) ellipse in pixel units."""
        c = tuple(int(round(v * ONE)) for v in center)
        a = tuple(max(1, int(round(v * ONE))) for v in axes)
        t = thickness if thickness < 0 else max(1, int(round(thickness)))
        cv2.ellipse(self.image, c, a, angle, 0, 360, color, t, cv2.LINE_8, SHIFT)
        if label is not None:
            cv2.ellipse(self.label, c, a, angle, 0, 360, label, t, cv2.LINE_8, SHIFT)

    def line(self, p0, p1, color: Color, label: int | None, thickness: float) -> None:
        """A straight line in pixel units."""
        a = tuple(int(round(v * ONE)) for v in p0)
        b = tuple(int(round(v * ONE)) for v in p1)
        t = max(1, int(round(thickness)))
        cv2.line(self.image, a, b, color, t, cv2.LINE_8, SHIFT)
        if label is not None:
            cv2.line(self.label, a, b, label, t, cv2.LINE_8, SHIFT)


def box_faces(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float,
              view: View) -> list[tuple[str, np.ndarray]]:
    """The camera-facing faces of an axis-aligned box as (name, world quad), far faces first."""
    cam = view.cam
    z0 = max(z0, view.z + NEAR)
    faces = []
    if cam.x < x0:
        faces.append(("left", [(x0, y0, z0), (x0, y1, z0), (x0, y1, z1), (x0, y0, z1)]))
    if cam.x > x1:
        faces.append(("right", [(x1, y0, z0), (x1, y1, z0), (x1, y1, z1), (x1, y0, z1)]))
    if cam.height > y1:
        faces.append(("top", [(x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1)]))
    faces.append(("front", [(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0)]))
    return [(name, np.asarray(quad, np.float64)) for name, quad in faces]


_FACE_LIGHT = {"left": 0.78, "right": 0.78, "top": 1.12, "front": 1.0}


def draw_box(canvas: Canvas, view: View, bounds: tuple[float, ...], color: Color, label: int,
             light: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Draw a shaded box; return its visible faces' pixel quads by face name."""
    x0, x1, y0, y1, z0, z1 = bounds
    if z1 - view.z <= NEAR:
        return {}
    light = light or _FACE_LIGHT
    out = {}
    for name, quad in box_faces(x0, x1, y0, y1, z0, z1, view):
        pix = view.project(quad)
        canvas.polys([pix], shade(color, light[name]), label)
        out[name] = pix
    return out


# --------------------------------------------------------------------------------------------
# Scene items. Each draws itself for a view; ``z_at(t)`` orders them far-to-near.
# --------------------------------------------------------------------------------------------


"""A tiny 3-D street world and its pinhole rendering into (RGB image, Cityscapes labelIds).

The world (sampled by :mod:`cityseg.data.street`) is a straight street seen from a car: ground
strips (road, parking, kerbs, sidewalks, verges), building rows with windows, fences/walls/hedges,
trees, poles carrying signs, lamps and traffic lights, vehicles, pedestrians and cyclists, a
distant skyline, the sky and the ego car's bonnet. Everything is placed in metres
(x: right, y: up, z: forward) and projected with a pinhole camera, so the scene has a real
vanishing point and objects shrink with distance. The camera moves forward with time ``t``, which
gives temporally coherent drives.

Image and label are painted by the same polygons (painter's order, far to near); the image then
gets per-class texture, shadows, global lighting, blur and sensor noise while labels stay exact.
Labels come from ``cityseg.labels`` (never retyped ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
_SHIFT = 4
_ONE = 1 << _SHIFT  # OpenCV fixed-point drawing: 1/16 pixel precision

# Per-class texture strength: fine grain and large blotches (multiplicative, in image units).
_GRAIN = np.zeros(256, np.float32)
_BLOTCH = np.zeros(256, np.float32)
for _ids, _g, _b in (((ROAD, PARKING), 0.07, 0.06), ((SIDEWALK,), 0.05, 0.08),
                     ((BUILDING, WALL), 0.04, 0.06), ((VEGETATION,), 0.22, 0.30),
                     ((TERRAIN,), 0.16, 0.22), ((SKY,), 0.0, 0.0), ((FENCE,), 0.06, 0.05)):
    _GRAIN[list(_ids)], _BLOTCH[list(_ids)] = _g, _b


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


class Canvas:
    """An RGB image and its labelId mask, drawn together so they always agree."""

    def __init__(self, height: int, width: int):
        self.image = np.zeros((height, width, 3), np.uint8)
        self.label = np.zeros((height, width), np.uint8)

    @staticmethod
    def _fixed(polys: list[np.ndarray]) -> list[np.ndarray]:
        return [np.round(np.asarray(p) * _ONE).astype(np.int32) for p in polys]

    def polys(self, polys: list[np.ndarray], color: Color, label: int | None) -> None:
        """Fill pixel polygons with ``color``; also with ``label`` unless it is None (paint only)."""
        fixed = self._fixed(polys)
        cv2.fillPoly(self.image, fixed, color, cv2.LINE_8, _SHIFT)
        if label is not None:
            cv2.fillPoly(self.label, fixed, label, cv2.LINE_8, _SHIFT)

    def ellipse(self, center, axes, color: Color, label: int | None, angle: float = 0.0,
                thickness: int = -1) -> None:
        """A filled (or outlined) ellipse in pixel units."""
        c = tuple(int(round(v * _ONE)) for v in center)
        a = tuple(max(1, int(round(v * _ONE))) for v in axes)
        t = thickness if thickness < 0 else max(1, int(round(thickness)))
        cv2.ellipse(self.image, c, a, angle, 0, 360, color, t, cv2.LINE_8, _SHIFT)
        if label is not None:
            cv2.ellipse(self.label, c, a, angle, 0, 360, label, t, cv2.LINE_8, _SHIFT)

    def line(self, p0, p1, color: Color, label: int | None, thickness: float) -> None:
        a = tuple(int(round(v * _ONE)) for v in p0)
        b = tuple(int(round(v * _ONE)) for v in p1)
        t = max(1, int(round(thickness)))
        cv2.line(self.image, a, b, color, t, cv2.LINE_8, _SHIFT)
        if label is not None:
            cv2.line(self.label, a, b, label, t, cv2.LINE_8, _SHIFT)


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

@dataclass
class Item:
    z: float
    """Nearest world z of the item (painter's order), at t=0."""
    speed: float = 0.0
    """Forward speed along z (m/s): moving vehicles and walkers."""

    def z_at(self, t: float) -> float:
        return self.z + self.speed * t

    def draw(self, canvas: Canvas, view: View, t: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class Building(Item):
    side: int = 1
    facade_x: float = 10.0
    length: float = 20.0
    depth: float = 12.0
    height: float = 15.0
    color: Color = (200, 190, 170)
    window_color: Color = (60, 70, 80)
    floor_height: float = 3.2
    window_pitch: float = 3.0
    window_size: tuple[float, float] = (1.4, 1.6)
    shop_color: Color | None = None

    def draw(self, canvas: Canvas, view: View, t: float) -> None:
        x_in = self.side * self.facade_x
        x_out = self.side * (self.facade_x + self.depth)
        x0, x1 = min(x_in, x_out), max(x_in, x_out)
        faces = draw_box(canvas, view, (x0, x1, 0.0, self.height, self.z, self.z + self.length),
                         self.color, BUILDING)
        if ("left" if self.side > 0 else "right") in faces:
            self._windows(canvas, view, x_in)

    def _windows(self, canvas: Canvas, view: View, x: float) -> None:
        z_start = max(self.z, view.z + NEAR)
        ww, wh = self.window_size
        zs = np.arange(self.z + 0.8, self.z + self.length - ww - 0.3, self.window_pitch)
        ys = np.arange(self.floor_height * 0.35, self.height - wh - 0.5, self.floor_height)
        if self.shop_color is not None:
            ys = ys[1:]
            quad = np.array([(x, 0.3, z_start), (x, 2.6, z_start), (x, 2.6, self.z + self.length),
                             (x, 0.3, self.z + self.length)])
            if self.z + self.length > z_start:
                canvas.polys([view.project(quad)], self.shop_color, None)
        zs = zs[zs > z_start]
        if zs.size == 0 or ys.size == 0:
            return
        zz, yy = np.meshgrid(zs, ys)
        zz, yy = zz.ravel(), yy.ravel()
        xx = np.full_like(zz, x)
        quads = np.stack([np.stack([xx, yy, zz], -1), np.stack([xx, yy + wh, zz], -1),
                          np.stack([xx, yy + wh, zz + ww], -1), np.stack([xx, yy, zz + ww], -1)], 1)
        pix = view.project(quads)
        canvas.polys(list(pix), self.window_color, None)
        frames = pix[::3]
        canvas.polys(list(frames), shade(self.window_color, 1.6), None)


@dataclass
class Slab(Item):
    """A box of one label: walls, hedges, distant skyline blocks, vegetation walls."""

    bounds: tuple[float, float, float, float, float] = (0, 1, 0, 1, 1)  # x0, x1, y0, y1, length
    color: Color = (128, 128, 128)
    label: int = WALL
    lattice: bool = False
    """Fences: paint a lattice over the face (the whole face is labelled fence, as in Cityscapes)."""

    def draw(self, canvas: Canvas, view: View, t: float) -> None:
        x0, x1, y0, y1, length = self.bounds
        faces = draw_box(canvas, view, (x0, x1, y0, y1, self.z, self.z + length), self.color, self.label)
        if self.lattice:
            for quad in faces.values():
                _lattice(canvas, quad, shade(self.color, 0.45))


def _lattice(canvas: Canvas, quad: np.ndarray, color: Color) -> None:
    """Vertical and horizontal bars across a projected quad (paint only)."""
    a, b, c, d = quad  # bottom-near, top-near, top-far, bottom-far
    bars = 12
    for k in np.linspace(0.0, 1.0, bars):
        canvas.line(a + (d - a) * k, b + (c - b) * k, color, None, 1)
    for k in (0.1, 0.9):
        canvas.line(a + (b - a) * k, d + (c - d) * k, color, None, 2)


@dataclass
class Tree(Item):
    x: float = 0.0
    trunk_height: float = 2.5
    crown: float = 2.0
    color: Color = (60, 110, 50)
    trunk_color: Color = (80, 60, 45)
    blobs: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    """(dx, dy, r) of the crown's blobs in metres, relative to the crown centre."""

    def draw(self, canvas: Canvas, view: View, t: float) -> None:
        if self.z - view.z < NEAR:
            return
        s = view.scale(self.z)
        u, v = view.project(np.array([self.x, 0.0, self.z]))
        trunk_w = 0.25 * s
        canvas.polys([np.array([(u - trunk_w, v), (u + trunk_w, v), (u + trunk_w * 0.7, v - self.trunk_height * s),
                                (u - trunk_w * 0.7, v - self.trunk_height * s)])], self.trunk_color, VEGETATION)
        cy = v - (self.trunk_height + self.crown * 0.8) * s
        for i, (dx, dy, r) in enumerate(self.blobs):
            tone = shade(self.color, 0.75 + 0.08 * (i % 5))
            canvas.ellipse((u + dx * s, cy + dy * s), (r * s, r * s * 0.9), tone, VEGETATION)


@dataclass
class PoleItem(Item):
    x: float = 0.0
    height: float = 4.0
    color: Color = (90, 90, 90)
    kind: str = "lamp"
    """lamp | sign | light | arm_light"""
    head_color: Color = (200, 30, 30)
    sign_shape: str = "circle"
    lit: int = 0

    def draw(self, canvas: Canvas, view: View, t: float) -> None:
        if self.z - view.z < NEAR:
            return
        s = view.scale(self.z)
        u, v = view.project(np.array([self.x, 0.0, self.z]))
        half = max(0.08 * s, 0.6)
        top = v - self.height * s
        canvas.polys([np.array([(u - half, v), (u + half, v), (u + half, top), (u - half, top)])],
                     self.color, POLE)
        if self.kind == "lamp":
            arm = -np.sign(self.x) * 1.2 * s
            canvas.line((u, top), (u + arm, top - 0.2 * s), self.color, POLE, max(1, 1.4 * half))
            canvas.ellipse((u + arm, top), (0.35 * s, 0.12 * s), (230, 230, 210), POLE)
        elif self.kind == "sign":
            self._sign(canvas, u, top, s)
        elif self.kind == "light":
            _traffic_light(canvas, u, top + 0.5 * s, s, self.lit)
        else:  # arm over the road with the light hanging from it
            end = u - np.sign(self.x) * 4.5 * s
            canvas.line((u, top), (end, top), self.color, POLE, max(1, 1.5 * half))
            _traffic_light(canvas, end, top + 0.6 * s, s, self.lit)

    def _sign(self, canvas: Canvas, u: float, top: float, s: float) -> None:
        r = 0.35 * s
        c = (u, top + r * 0.3)
        if self.sign_shape == "circle":
            canvas.ellipse(c, (r, r), self.head_color, TRAFFIC_SIGN)
            canvas.ellipse(c, (r * 0.7, r * 0.7), (235, 235, 235), None)
        elif self.sign_shape == "triangle":
            tri = np.array([(u - r, top + r), (u + r, top + r), (u, top - r)])
            canvas.polys([tri], self.head_color, TRAFFIC_SIGN)
            canvas.polys([c + (tri - c) * 0.65], (240, 240, 235), None)
        else:
            rect = np.array([(u - r, top - r * 0.8), (u + r, top - r * 0.8), (u + r, top + r * 0.8),
                             (u - r, top + r * 0.8)])
            canvas.polys([rect], self.head_color, TRAFFIC_SIGN)
            canvas.polys([u + (rect - (u, top)) * np.array([0.8, 0.3]) + (0, top)], (240, 240, 240), None)


def _traffic_light(canvas: Canvas, u: float, v: float, s: float, lit: int) -> None:
    w, h = 0.18 * s, 0.5 * s
    canvas.polys([np.array([(u - w, v - h), (u + w, v - h), (u + w, v + h), (u - w, v + h)])],
                 (30, 32, 30), TRAFFIC_LIGHT)
    on = [(255, 40, 30), (255, 190, 20), (60, 255, 120)]
    for i in range(3):
        color = on[i] if i == lit else (55, 55, 50)
        canvas.ellipse((u, v - h + (2 * i + 1) * h / 3), (w * 0.65, w * 0.65), color, None)


@dataclass
class Vehicle(Item):
    x: float = 0.0
    width: float = 1.8
    length: float = 4.4
    height: float = 1.5
    color: Color = (200, 200, 200)
    label: int = CAR
    cabin: float = 0.45
    """Height fraction taken by the cabin (glass)."""
    glass: Color = (50, 60, 70)

    def draw(self, canvas: Canvas, view: View, t: float) -> None:
        z = self.z_at(t)
        if z + self.length - view.z <= NEAR:
            return
        x0, x1 = self.x - self.width / 2, self.x + self.width / 2
        _ground_shadow(canvas, view, x0 - 0.15, x1 + 0.15, z - 0.2, z + self.length + 0.2)
        body_top = self.height * (1 - self.cabin)
        clearance = 0.25 if self.label == CAR else 0.45
        inset = 0.12 * self.width if self.label == CAR else 0.0
        z_cab0 = z + (0.25 * self.length if self.label == CAR else 0.0)
        z_cab1 = z + (0.8 * self.length if self.label == CAR else self.length)
        # wheels, body, cabin: far to near
        faces = draw_box(canvas, view, (x0, x1, clearance, body_top, z, z + self.length), self.color, self.label)
        cab = draw_box(canvas, view, (x0 + inset, x1 - inset, body_top, self.height, z_cab0, z_cab1),
                       self.color, self.label)
        for name, quad in cab.items():
            if name != "top":
                a, b, c, d = quad
                canvas.polys([np.array([a + (b - a) * 0.1 + (d - a) * 0.08, a + (b - a) * 0.9 + (d - a) * 0.08,
                                        d + (c - d) * 0.9 - (d - a) * 0.08, d + (c - d) * 0.1 - (d - a) * 0.08])],
                             self.glass, None)
        self._wheels(canvas, view, z, x0, x1, clearance)
        if "front" in faces:
            a, b, c, d = faces["front"]  # rear of the vehicle, facing us
            lamp = (170, 20, 20) if self.speed >= 0 else (240, 240, 220)
            for left in (True, False):
                p = a + (b - a) * 0.55 if left else d + (c - d) * 0.55
                q = (b - a) * 0.25
                side = (d - a) * (0.12 if left else -0.12)
                canvas.polys([np.array([p, p + q, p + q + side, p + side])], lamp, None)

    def _wheels(self, canvas: Canvas, view: View, z: float, x0: float, x1: float, clearance: float) -> None:
        r = max(clearance + 0.1, 0.33)
        x = x0 if view.cam.x < x0 else x1 if view.cam.x > x1 else None
        for zw in (z + 0.8, z + self.length - 0.8):
            if zw - view.z <= NEAR:
                continue
            s = view.scale(zw)
            if x is not None:
                u, v = view.project(np.array([x, r, zw]))
                canvas.ellipse((u, v), (r * s * 0.55, r * s), (20, 20, 22), self.label)
        if z - view.z > NEAR:  # rear tyres peeking under the body
            s = view.scale(z)
            for xw in (x0 + 0.3, x1 - 0.3):
                u, v = view.project(np.array([xw, 0.0, z]))
                canvas.polys([np.array([(u - 0.15 * s, v), (u + 0.15 * s, v), (u + 0.15 * s, v - clearance * s),
                                        (u - 0.15 * s, v - clearance * s)])], (20, 20, 22), self.label)


def _ground_shadow(canvas: Canvas, view: View, x0: float, x1: float, z0: float, z1: float) -> None:
    z0 = max(z0, view.z + NEAR)
    if z1 <= z0:
        return
    quad = np.array([(x0, 0, z0), (x1, 0, z0), (x1, 0, z1), (x0, 0, z1)], float)
    canvas.polys([view.project(quad)], (25, 25, 28), None)


@dataclass
class Walker(Item):
    """A pedestrian, or with ``bike`` a cyclist (rider + bicycle) or motorcyclist."""

    x: float = 0.0
    height: float = 1.75
    clothes: tuple[Color, Color] = ((40, 40, 60), (30, 30, 40))
    skin: Color = (200, 160, 130)
    phase: float = 0.0
    bike: str | None = None
    """None | 'bicycle' | 'motorcycle'"""
    bike_color: Color = (40, 40, 45)

    def draw(self, canvas: Canvas, view: View, t: float) -> None:
        z = self.z_at(t)
        if z - view.z < NEAR:
            return
        s = view.scale(z)
        u, v = view.project(np.array([self.x, 0.0, z]))
        swing = np.sin(self.phase + 5.0 * t)
        if self.bike:
            label = BICYCLE if self.bike == "bicycle" else MOTORCYCLE
            self._bike(canvas, u, v, s, label)
            self._body(canvas, u, v - 0.55 * s, s, RIDER, swing, seated=True)
        else:
            self._body(canvas, u, v, s, PERSON, swing, seated=False)

    def _body(self, canvas: Canvas, u: float, v: float, s: float, label: int, swing: float, seated: bool) -> None:
        h = self.height * s
        top, bottom = self.clothes
        hip = v - 0.5 * h
        if seated:
            canvas.polys([np.array([(u - 0.09 * h, hip), (u + 0.09 * h, hip), (u + 0.07 * h, v), (u - 0.07 * h, v)])],
                         bottom, label)
        else:
            for sign in (-1, 1):
                foot = u + sign * 0.09 * h * swing
                canvas.polys([np.array([(u + sign * 0.02 * h, hip), (u + sign * 0.09 * h, hip),
                                        (foot + sign * 0.035 * h, v), (foot - sign * 0.01 * h, v)])], bottom, label)
        shoulder = v - 0.82 * h
        torso = np.array([(u - 0.11 * h, shoulder), (u + 0.11 * h, shoulder), (u + 0.095 * h, hip + 0.03 * h),
                          (u - 0.095 * h, hip + 0.03 * h)])
        canvas.polys([torso], top, label)
        for sign in (-1, 1):
            hand = (u + sign * (0.13 * h + 0.04 * h * swing * sign), v - 0.45 * h)
            canvas.line((u + sign * 0.1 * h, shoulder + 0.02 * h), hand, shade(top, 0.9), label, 0.05 * h)
        canvas.ellipse((u, shoulder - 0.07 * h), (0.055 * h, 0.07 * h), self.skin, label)

    def _bike(self, canvas: Canvas, u: float, v: float, s: float, label: int) -> None:
        r = (0.34 if label == BICYCLE else 0.32) * s
        thick = max(1.0, (0.06 if label == BICYCLE else 0.14) * s)
        for dv in (0.0, -0.3 * s):  # seen from behind: wheels one over the other
            canvas.ellipse((u, v - r + dv), (r * 0.18, r), (25, 25, 25), label, thickness=thick)
        canvas.line((u, v - 2 * r), (u, v - 0.6 * s - r), self.bike_color, label, thick)
        canvas.line((u - 0.3 * s, v - 1.1 * s), (u + 0.3 * s, v - 1.1 * s), self.bike_color, label, thick * 0.8)
        if label == MOTORCYCLE:
            canvas.polys([np.array([(u - 0.25 * s, v - 0.4 * s), (u + 0.25 * s, v - 0.4 * s),
                                    (u + 0.2 * s, v - 0.85 * s), (u - 0.2 * s, v - 0.85 * s)])],
                         self.bike_color, label)


# --------------------------------------------------------------------------------------------
# The world: ground layout + items + lighting.
# --------------------------------------------------------------------------------------------

@dataclass
class World:
    seed: int
    camera: Camera
    strips: list[tuple[float, float, int, Color]]
    """Ground strips (x0, x1, labelId, colour) from left to right."""
    markings: list[tuple[float, float, float, float]]
    """Lane markings (x, width, dash length, gap; gap 0 = solid)."""
    back: list[Item]
    """Building rows, drawn first (they are behind everything lateral)."""
    middle: list[Item]
    """Walls, fences and hedges between sidewalk and buildings."""
    front: list[Item]
    """Everything on the sidewalk and road."""
    sky: tuple[Color, Color]
    """(zenith, horizon) colours."""
    clouds: float
    ego: tuple[float, Color] | None
    """(height fraction, colour) of the ego vehicle's bonnet, or None."""
    shadows: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    """Building shadows across the ground: (far x, edge x, z0, z1 at the edge, z1 far), paint only."""
    light: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------------------------

def render_world(world: World, height: int, width: int, t: float = 0.0,
                 noise: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render ``world`` at time ``t`` -> (RGB uint8 HxWx3, labelIds uint8 HxW)."""
    noise = noise or np.random.default_rng(world.seed)
    view = View(world.camera, height, width, t)
    canvas = Canvas(height, width)
    _draw_sky(canvas, view, world)
    _draw_ground(canvas, view, world, t)
    for layer in (world.back, world.middle, world.front):
        for item in sorted(layer, key=lambda it: -it.z_at(t)) if layer is world.front else layer:
            item.draw(canvas, view, t)
    if world.ego is not None:
        _draw_ego(canvas, world.ego)
    return _finish(canvas, world, noise), canvas.label


def _draw_sky(canvas: Canvas, view: View, world: World) -> None:
    h, w = canvas.label.shape
    rows = np.clip(np.arange(h, dtype=np.float32) / max(view.cy, 1.0), 0, 1)[:, None]
    zenith, horizon = (np.asarray(c, np.float32) for c in world.sky)
    sky = zenith + (horizon - zenith) * rows ** 0.7
    canvas.image[:] = sky[:, None, :].astype(np.uint8)
    canvas.label[:] = SKY


def _draw_ground(canvas: Canvas, view: View, world: World, t: float) -> None:
    h, w = canvas.label.shape
    horizon = int(np.clip(np.ceil(view.cy), 0, h))
    far_ground = world.strips[0][3]
    canvas.image[horizon:] = far_ground
    canvas.label[horizon:] = TERRAIN
    z0, z1 = view.z + NEAR * 0.5, view.z + FAR * 4
    for x0, x1, label, color in world.strips:
        quad = np.array([(x0, 0, z0), (x1, 0, z0), (x1, 0, z1), (x0, 0, z1)], float)
        canvas.polys([view.project(quad)], color, label)
    paint = (225, 225, 220)
    for x, mw, dash, gap in world.markings:
        if gap == 0.0:
            quads = [np.array([(x - mw / 2, 0, z0), (x + mw / 2, 0, z0), (x + mw / 2, 0, z1), (x - mw / 2, 0, z1)])]
        else:
            period = dash + gap
            starts = np.arange(np.floor(z0 / period) * period, view.z + 120.0, period)
            quads = [np.array([(x - mw / 2, 0, max(s, z0)), (x + mw / 2, 0, max(s, z0)), (x + mw / 2, 0, s + dash),
                               (x - mw / 2, 0, s + dash)]) for s in starts if s + dash > z0]
        if quads:
            canvas.polys([view.project(q) for q in quads], paint, None)
    _cast_shadows(canvas, view, world)


def _cast_shadows(canvas: Canvas, view: View, world: World) -> None:
    """Building shadows across the street (paint only: darken, labels unchanged)."""
    near = view.z + NEAR
    quads = [np.array([(x_far, 0, max(z0, near)), (x_edge, 0, max(z0, near)), (x_edge, 0, z1), (x_far, 0, z2)])
             for x_far, x_edge, z0, z1, z2 in world.shadows if min(z1, z2) > near]
    if not quads:
        return
    mask = np.zeros(canvas.label.shape, np.uint8)
    cv2.fillPoly(mask, [np.round(view.project(q) * _ONE).astype(np.int32) for q in quads], 1, cv2.LINE_8, _SHIFT)
    shadowed = mask.astype(bool)
    canvas.image[shadowed] = (canvas.image[shadowed] * world.light["shadow"]).astype(np.uint8)


def _draw_ego(canvas: Canvas, ego: tuple[float, Color]) -> None:
    h, w = canvas.label.shape
    frac, color = ego
    xs = np.linspace(0, w, 33)
    top = h * (1 - frac * (1 - 0.45 * ((xs - w / 2) / (w / 2)) ** 2))
    poly = np.concatenate([np.stack([xs, top], 1), [(w, h + 2), (0, h + 2)]])
    canvas.polys([poly], color, EGO)
    highlight = np.stack([xs[8:25], top[8:25] + frac * h * 0.25], 1)
    canvas.polys([np.concatenate([highlight, highlight[::-1] + (0, frac * h * 0.12)])], shade(color, 1.5), None)


def _finish(canvas: Canvas, world: World, rng: np.random.Generator) -> np.ndarray:
    """Texture, lighting, blur and sensor noise on the painted image (labels stay exact)."""
    h, w = canvas.label.shape
    label = canvas.label
    texture_rng = np.random.default_rng(world.seed)  # static texture: does not flicker in drives
    grain = _noise_field(texture_rng, h, w, 2)
    blotch = _noise_field(texture_rng, h, w, max(4, w // 96))
    image = canvas.image.astype(np.float32)
    image *= (1.0 + _GRAIN[label] * grain + _BLOTCH[label] * blotch)[..., None]
    if world.clouds > 0:
        sky = label == SKY
        clouds = np.clip(_noise_field(texture_rng, h, w, max(8, w // 24)), 0, None) * (255.0 * world.clouds)
        image[sky] += clouds[sky, None]
    textured = np.clip(image, 0, 255).astype(np.uint8)
    lit = cv2.GaussianBlur(cv2.LUT(textured, _light_lut(world.light)), (0, 0), world.light["blur"])
    noisy = lit + rng.standard_normal((h, w, 3), dtype=np.float32) * world.light["noise"]
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def _light_lut(light: dict) -> np.ndarray:
    """(1, 256, 3) uint8 LUT: exposure gain, white-balance tint and gamma per channel."""
    values = np.arange(256, dtype=np.float64)[:, None] / 255.0
    lut = np.clip(values * light["gain"] * np.asarray(light["tint"])[None, :], 0.0, 1.0) ** light["gamma"]
    return np.round(lut * 255.0).astype(np.uint8)[None]


def _noise_field(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth zero-mean unit-ish noise with features about ``cell`` pixels wide."""
    small = rng.standard_normal((max(2, h // cell + 2), max(2, w // cell + 2)), dtype=np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


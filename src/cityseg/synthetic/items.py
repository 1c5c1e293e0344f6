"""The things in a synthetic street, each drawing itself for a view: buildings with windows,
walls/fences/hedges (slabs), trees, poles with lamps, signs and traffic lights, vehicles,
pedestrians and cyclists. ``z_at(t)`` gives the painter's order (far to near) at time ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cityseg.synthetic.geometry import (
    BICYCLE,
    BUILDING,
    CAR,
    MOTORCYCLE,
    NEAR,
    PERSON,
    POLE,
    RIDER,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    VEGETATION,
    WALL,
    Canvas,
    Color,
    View,
    draw_box,
    shade,
)


@dataclass
class Item:
    """Something in the street at depth ``z``, moving forward at ``speed``."""

    z: float
    """Nearest world z of the item (painter's order), at t=0."""
    speed: float = 0.0
    """Forward speed along z (m/s): moving vehicles and walkers."""

    def z_at(self, t: float) -> float:
        """Nearest world z at time ``t``."""
        return self.z + self.speed * t

    def draw(self, canvas: Canvas, view: View, t: float) -> None:  # pragma: no cover - abstract
        """Paint the item (image and labels) as seen from ``view`` at time ``t``."""
        raise NotImplementedError


@dataclass
class Building(Item):
    """A row-house block beside the street: facade with windows, optionally a shop front."""

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
    """A trunk and a crown of overlapping blobs (all labelled vegetation)."""

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
    """A pole carrying a lamp, a sign or a traffic light (on the pole or on an arm over the road)."""

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
    """A car, truck or bus: body, cabin with glass, wheels, rear lights; parked or driving."""

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
        self._windows(canvas, cab)
        self._wheels(canvas, view, z, x0, x1, clearance)
        if "front" in faces:
            self._rear_lights(canvas, faces["front"])

    def _windows(self, canvas: Canvas, cab: dict[str, np.ndarray]) -> None:
        """Glass inset into the cabin's visible side faces (paint only)."""
        for name, quad in cab.items():
            if name != "top":
                a, b, c, d = quad
                canvas.polys([np.array([a + (b - a) * 0.1 + (d - a) * 0.08, a + (b - a) * 0.9 + (d - a) * 0.08,
                                        d + (c - d) * 0.9 - (d - a) * 0.08, d + (c - d) * 0.1 - (d - a) * 0.08])],
                             self.glass, None)

    def _rear_lights(self, canvas: Canvas, rear: np.ndarray) -> None:
        """Two lamps on the face turned to the camera: red tail lights, or headlights if oncoming."""
        a, b, c, d = rear
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



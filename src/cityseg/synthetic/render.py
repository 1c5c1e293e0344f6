"""A tiny 3-D street world and its pinhole rendering into (RGB image, Cityscapes labelIds).

The world (sampled by :mod:`cityseg.synthetic.street`) is a straight street seen from a car: ground
strips (road, parking, kerbs, sidewalks, verges), building rows with windows, fences/walls/hedges,
trees, poles carrying signs, lamps and traffic lights, vehicles, pedestrians and cyclists, a
distant skyline, the sky and the ego car's bonnet (:mod:`cityseg.synthetic.items`). Everything is
placed in metres (x: right, y: up, z: forward) and projected with a pinhole camera
(:mod:`cityseg.synthetic.geometry`), so the scene has a real vanishing point and objects shrink
with distance. The camera moves forward with time ``t``, which gives temporally coherent drives.

Image and label are painted by the same polygons (painter's order, far to near); the image then
gets per-class texture, shadows, global lighting, blur and sensor noise while labels stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from cityseg.synthetic.geometry import (
    BUILDING,
    EGO,
    FAR,
    FENCE,
    NEAR,
    PARKING,
    ROAD,
    SHIFT,
    SIDEWALK,
    SKY,
    TERRAIN,
    VEGETATION,
    WALL,
    Camera,
    Canvas,
    Color,
    View,
    fixed_point,
    shade,
)
from cityseg.synthetic.items import Item

# Per-class texture strength: fine grain and large blotches (multiplicative, in image units).
_GRAIN = np.zeros(256, np.float32)
_BLOTCH = np.zeros(256, np.float32)
for _ids, _g, _b in (((ROAD, PARKING), 0.07, 0.06), ((SIDEWALK,), 0.05, 0.08),
                     ((BUILDING, WALL), 0.04, 0.06), ((VEGETATION,), 0.22, 0.30),
                     ((TERRAIN,), 0.16, 0.22), ((SKY,), 0.0, 0.0), ((FENCE,), 0.06, 0.05)):
    _GRAIN[list(_ids)], _BLOTCH[list(_ids)] = _g, _b


# --------------------------------------------------------------------------------------------
# The world: ground layout + items + lighting.
# --------------------------------------------------------------------------------------------

@dataclass
class World:
    """One street: camera, ground strips and markings, items in three layers, sky and light."""

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
    _draw_markings(canvas, view, world, z0, z1)
    _cast_shadows(canvas, view, world)


def _draw_markings(canvas: Canvas, view: View, world: World, z0: float, z1: float) -> None:
    """Solid and dashed lane markings between depths ``z0`` and ``z1`` (paint only)."""
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


def _cast_shadows(canvas: Canvas, view: View, world: World) -> None:
    """Building shadows across the street (paint only: darken, labels unchanged)."""
    near = view.z + NEAR
    quads = [np.array([(x_far, 0, max(z0, near)), (x_edge, 0, max(z0, near)), (x_edge, 0, z1), (x_far, 0, z2)])
             for x_far, x_edge, z0, z1, z2 in world.shadows if min(z1, z2) > near]
    if not quads:
        return
    mask = np.zeros(canvas.label.shape, np.uint8)
    cv2.fillPoly(mask, fixed_point([view.project(q) for q in quads]), 1, cv2.LINE_8, SHIFT)
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


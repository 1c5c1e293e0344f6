"""Sampling a random street: layout, buildings, furniture, traffic, people, light.

:func:`make_world` draws everything that is in one street from a numpy Generator, in metres
(x: right, y: up, z: forward); :mod:`cityseg.synthetic.render` renders it. Colours are drawn per
instance from overlapping families (grey cars / grey road, beige walls / paving), so colour alone
never gives the class away.
"""

from __future__ import annotations

import colorsys

import numpy as np

from cityseg.synthetic.geometry import (
    BUILDING,
    BUS,
    CAR,
    FAR,
    FENCE,
    PARKING,
    ROAD,
    SIDEWALK,
    TERRAIN,
    TRUCK,
    VEGETATION,
    WALL,
    Camera,
    Color,
    shade,
)
from cityseg.synthetic.items import Building, PoleItem, Slab, Tree, Vehicle, Walker
from cityseg.synthetic.render import World


def jitter_color(rng: np.random.Generator, base: Color, hue: float = 0.04, sat: float = 0.25,
                 val: float = 0.25) -> Color:
    """``base`` RGB with random hue, saturation and brightness changes (instance variation)."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in base))
    h = (h + rng.uniform(-hue, hue)) % 1.0
    s = float(np.clip(s * rng.uniform(1 - sat, 1 + sat), 0, 1))
    v = float(np.clip(v * rng.uniform(1 - val, 1 + val), 0, 1))
    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v))


def pick(rng: np.random.Generator, choices: list[Color], **jitter) -> Color:
    """One of ``choices`` at random, jittered."""
    return jitter_color(rng, choices[rng.integers(len(choices))], **jitter)


# Colour families. They overlap on purpose (grey cars / grey road, beige walls / sidewalks).
ASPHALT = [(90, 90, 95), (110, 108, 105), (70, 72, 78), (128, 124, 118)]
PAVING = [(150, 140, 135), (170, 160, 150), (120, 120, 125), (165, 120, 110), (140, 140, 130)]
FACADE = [(200, 185, 160), (220, 215, 205), (150, 150, 155), (170, 95, 80), (215, 190, 120),
          (160, 175, 190), (120, 110, 100), (235, 225, 200)]
FOLIAGE = [(60, 110, 50), (85, 130, 55), (40, 80, 40), (110, 140, 60), (150, 120, 50)]
GRASS = [(95, 130, 60), (120, 140, 70), (140, 125, 85), (80, 110, 55)]
CAR_PAINT = [(230, 230, 230), (25, 25, 28), (140, 140, 145), (170, 30, 30), (30, 60, 140),
             (90, 95, 100), (200, 190, 170), (40, 90, 60)]
CLOTHES = [(30, 30, 40), (60, 60, 120), (140, 30, 30), (200, 200, 190), (90, 70, 50),
           (40, 90, 60), (170, 150, 40), (110, 110, 115)]
METAL = [(70, 70, 75), (110, 110, 110), (50, 70, 55), (150, 150, 150)]


def make_world(rng: np.random.Generator, length: float = 160.0) -> World:
    """Sample a street of ``length`` metres ahead of the camera (plus margin) from ``rng``."""
    lanes = int(rng.integers(2, 5))
    lane_w = rng.uniform(3.0, 3.6)
    half = lanes * lane_w / 2
    camera = _camera(rng, lanes, lane_w, half)
    asphalt = pick(rng, ASPHALT, val=0.15)
    strips: list[tuple[float, float, int, Color]] = [(-half, half, ROAD, asphalt)]
    back, middle, front = [], [], []
    for side in (-1, 1):
        _roadside(rng, side, half, asphalt, length, strips, back, middle, front)
    strips.sort(key=lambda s: s[0])
    markings = _markings(rng, half, lanes, lane_w)
    _traffic(rng, front, half, lanes, lane_w, length)
    _skyline(rng, back)
    for layer in (front, back, middle):
        layer.sort(key=lambda item: -item.z)
    sky = _sky(rng)
    ego = _ego(rng)
    shadows = _shadows(rng, length)
    light = _light(rng)
    return World(int(rng.integers(2**31)), camera, strips, markings, back, middle, front,
                 sky, rng.uniform(0, 0.5), ego, shadows, light)


def _camera(rng, lanes: int, lane_w: float, half: float) -> Camera:
    """The ego car's camera, in one of the lanes (right half of a wide road)."""
    lane = int(rng.integers(lanes // 2, lanes)) if lanes > 2 else int(rng.integers(lanes))
    return Camera(focal=rng.uniform(0.75, 1.05), horizon=rng.uniform(0.36, 0.48),
                  pan=rng.uniform(-0.07, 0.07), height=rng.uniform(1.2, 1.6),
                  x=-half + (lane + 0.5) * lane_w + rng.uniform(-0.4, 0.4), speed=rng.uniform(6.0, 12.0))


def _roadside(rng, side: int, half: float, asphalt: Color, length: float, strips: list,
              back: list, middle: list, front: list) -> None:
    """One side of the street, kerb outwards: parking, sidewalk, verge, boundary, buildings or park."""
    edge = half
    if rng.random() < 0.3:
        strips.append(_strip(side, edge, edge + 2.2, PARKING, shade(asphalt, rng.uniform(0.85, 1.2))))
        _parked_cars(rng, front, side, edge + 1.1, length)
        edge += 2.2
    elif rng.random() < 0.6:
        _parked_cars(rng, front, side, edge - 1.1, length)
    walk = rng.uniform(2.0, 5.0)
    paving = pick(rng, PAVING)
    strips.append(_strip(side, edge, edge + 0.25, SIDEWALK, shade(paving, 1.2)))  # kerb
    strips.append(_strip(side, edge + 0.25, edge + walk, SIDEWALK, paving))
    _street_furniture(rng, front, side, edge + 0.6, length)
    _pedestrians(rng, front, side, edge + 0.8, edge + walk - 0.5, length)
    edge += walk
    if rng.random() < 0.5:
        verge = rng.uniform(1.0, 4.0)
        strips.append(_strip(side, edge, edge + verge, TERRAIN, pick(rng, GRASS)))
        _trees(rng, front, side, edge + verge / 2, length)
        edge += verge
    strips.append(_strip(side, edge, edge + 60.0, TERRAIN, pick(rng, GRASS)))
    _boundary(rng, middle, side, edge, length)
    if rng.random() < 0.15:
        _park(rng, back, side, edge + 0.5, length)
    else:
        _building_row(rng, back, side, edge + rng.uniform(0.3, 1.5), length)


def _sky(rng) -> tuple[Color, Color]:
    """(zenith, horizon) colours of a clear or overcast sky."""
    overcast = rng.random() < 0.35
    zenith = pick(rng, [(170, 175, 180), (200, 200, 205)] if overcast else [(70, 120, 200), (100, 150, 220)])
    horizon = pick(rng, [(215, 215, 215), (230, 228, 225)] if overcast else [(180, 205, 235), (215, 225, 240)])
    return zenith, horizon


def _ego(rng) -> tuple[float, Color] | None:
    """The ego car's bonnet (height fraction, colour), in most frames."""
    return (rng.uniform(0.08, 0.16), pick(rng, [(30, 30, 35), (200, 200, 205), (90, 90, 100)])) \
        if rng.random() < 0.7 else None


def _shadows(rng, length: float) -> list[tuple[float, float, float, float, float]]:
    """Building shadows falling across the street (see ``World.shadows``)."""
    return [(side * 40.0, rng.uniform(-8.0, 8.0), z, z + rng.uniform(5, 30), z + rng.uniform(5, 30))
            for side, z in zip(rng.choice([-1.0, 1.0], 12), np.sort(rng.uniform(0.0, length, 12)))
            if rng.random() < 0.3]


def _light(rng) -> dict:
    """Exposure, white balance, gamma, sensor noise, blur and shadow depth of the frame."""
    return {"gain": rng.uniform(0.65, 1.25), "tint": rng.uniform(0.9, 1.1, 3), "gamma": rng.uniform(0.8, 1.25),
            "noise": rng.uniform(1.5, 7.0), "blur": rng.uniform(0.4, 1.1), "shadow": rng.uniform(0.45, 0.7)}


def _strip(side: int, a: float, b: float, label: int, color: Color) -> tuple[float, float, int, Color]:
    lo, hi = sorted((side * a, side * b))
    return lo, hi, label, color


def _markings(rng, half: float, lanes: int, lane_w: float) -> list[tuple[float, float, float, float]]:
    out = []
    for k in range(1, lanes):
        x = -half + k * lane_w
        solid = k == lanes // 2 and rng.random() < 0.5
        out.append((x, rng.uniform(0.12, 0.2), 3.0, 0.0 if solid else rng.uniform(4.0, 9.0)))
    if rng.random() < 0.7:
        for side in (-1, 1):
            out.append((side * (half - 0.3), 0.15, 1.0, 0.0))
    return out


def _parked_cars(rng, items: list, side: int, x: float, length: float) -> None:
    z = rng.uniform(-2.0, 6.0)
    while z < length:
        if rng.random() < 0.6:
            items.append(_vehicle(rng, side * x, z, 0.0, kinds=(0.9, 0.1, 0.0)))
        z += rng.uniform(5.2, 7.0)


def _vehicle(rng, x: float, z: float, speed: float, kinds=(0.8, 0.12, 0.08)) -> Vehicle:
    kind = rng.choice(3, p=kinds)
    paint = pick(rng, CAR_PAINT, hue=0.03, sat=0.3, val=0.2)
    glass = pick(rng, [(50, 60, 70), (90, 100, 110), (30, 30, 35)])
    if kind == 0:
        return Vehicle(z, speed, x, rng.uniform(1.7, 1.9), rng.uniform(3.9, 4.9), rng.uniform(1.4, 1.65),
                       paint, CAR, rng.uniform(0.38, 0.5), glass)
    if kind == 1:
        return Vehicle(z, speed, x, 2.4, rng.uniform(6.5, 10.0), rng.uniform(2.8, 3.8), paint, TRUCK, 0.0, glass)
    bus_paint = pick(rng, [(230, 200, 40), (220, 220, 225), (200, 40, 40)])
    return Vehicle(z, speed, x, 2.5, rng.uniform(11.0, 13.0), 3.1, bus_paint, BUS, 0.4, glass)


def _traffic(rng, items: list, half: float, lanes: int, lane_w: float, length: float) -> None:
    for k in range(lanes):
        x = -half + (k + 0.5) * lane_w
        oncoming = x < 0 and lanes > 1
        for _ in range(int(rng.integers(0, 3))):
            speed = -rng.uniform(6, 12) if oncoming else rng.uniform(4, 11)
            items.append(_vehicle(rng, x + rng.uniform(-0.3, 0.3), rng.uniform(8.0, length), speed))
    for _ in range(int(rng.poisson(0.6))):
        side = rng.choice([-1, 1])
        bike = "bicycle" if rng.random() < 0.75 else "motorcycle"
        items.append(_walker(rng, side * (half - 0.8), rng.uniform(6.0, length * 0.6),
                             rng.uniform(3.0, 7.0) if bike == "bicycle" else rng.uniform(6.0, 11.0), bike))


def _walker(rng, x: float, z: float, speed: float, bike: str | None = None) -> Walker:
    return Walker(z, speed, x, rng.uniform(1.55, 1.95), (pick(rng, CLOTHES), pick(rng, CLOTHES)),
                  jitter_color(rng, (200, 160, 130), hue=0.03, val=0.45), rng.uniform(0, 6.28), bike,
                  pick(rng, METAL + CAR_PAINT))


def _pedestrians(rng, items: list, side: int, x0: float, x1: float, length: float) -> None:
    for _ in range(int(rng.poisson(4.0))):
        z = rng.uniform(3.0, length * 0.5)
        group = 1 + int(rng.poisson(0.4))
        for g in range(group):
            items.append(_walker(rng, side * rng.uniform(x0, max(x0, x1)), z + g * 0.7,
                                 rng.choice([-1, 1]) * rng.uniform(0.0, 1.5)))
    if rng.random() < 0.25:  # a parked bicycle
        items.append(Walker(rng.uniform(3.0, length * 0.5), 0.0, side * x1, 0.0, bike="bicycle",
                            bike_color=pick(rng, METAL + CAR_PAINT)))


def _street_furniture(rng, items: list, side: int, x: float, length: float) -> None:
    z = rng.uniform(2.0, 15.0)
    while z < length:
        kind = rng.choice(["lamp", "sign", "light", "arm_light"], p=[0.35, 0.4, 0.15, 0.1])
        height = {"lamp": rng.uniform(5.0, 8.0), "sign": rng.uniform(2.3, 3.2)}.get(kind, rng.uniform(3.5, 5.0))
        sign_color = pick(rng, [(200, 30, 30), (30, 70, 170), (235, 200, 40), (240, 240, 240)], val=0.15)
        items.append(PoleItem(z, 0.0, side * x, height, pick(rng, METAL), kind, sign_color,
                              rng.choice(["circle", "triangle", "rect"]), int(rng.integers(3))))
        z += rng.uniform(12.0, 35.0)


def _trees(rng, items: list, side: int, x: float, length: float) -> None:
    z = rng.uniform(0.0, 10.0)
    while z < length:
        if rng.random() < 0.7:
            items.append(_tree(rng, side * x, z))
        z += rng.uniform(6.0, 14.0)


def _tree(rng, x: float, z: float) -> Tree:
    crown = rng.uniform(1.5, 3.2)
    n = int(rng.integers(4, 9))
    blobs = np.stack([rng.normal(0, crown * 0.45, n), rng.normal(0, crown * 0.35, n),
                      rng.uniform(0.5, 0.9, n) * crown], 1)
    return Tree(z, 0.0, x, rng.uniform(1.8, 3.5), crown, pick(rng, FOLIAGE, hue=0.05),
                pick(rng, [(80, 60, 45), (100, 90, 80), (60, 50, 40)]), blobs)


def _boundary(rng, items: list, side: int, x: float, length: float) -> None:
    z = rng.uniform(-5.0, 20.0)
    while z < length:
        run = rng.uniform(8.0, 40.0)
        roll = rng.random()
        if roll < 0.45:
            x0, x1 = sorted((side * x, side * (x + 0.3)))
            kind = rng.choice(3, p=[0.35, 0.4, 0.25])
            if kind == 0:
                items.append(Slab(z, 0.0, (x0, x1, 0, rng.uniform(0.8, 2.2), run), pick(rng, FACADE), WALL))
            elif kind == 1:
                items.append(Slab(z, 0.0, (x0, x1, 0, rng.uniform(1.0, 2.0), run), pick(rng, METAL + PAVING),
                                  FENCE, lattice=True))
            else:
                x0, x1 = sorted((side * x, side * (x + 1.0)))
                items.append(Slab(z, 0.0, (x0, x1, 0, rng.uniform(0.8, 1.8), run), pick(rng, FOLIAGE), VEGETATION))
        z += run + rng.uniform(5.0, 30.0)


def _building_row(rng, items: list, side: int, x: float, length: float) -> None:
    z = rng.uniform(-30.0, 0.0)
    while z < length + 40:
        size = rng.uniform(8.0, 30.0)
        if rng.random() < 0.12:  # a gap: trees or the sky show through
            items.append(_tree(rng, side * (x + rng.uniform(2, 6)), z + size / 2))
            z += size
            continue
        facade = pick(rng, FACADE, hue=0.03)
        items.append(Building(z, 0.0, side, x + rng.uniform(0.0, 1.2), size, rng.uniform(8, 20),
                              rng.uniform(7.0, 26.0), facade, pick(rng, [(40, 50, 60), (70, 80, 95),
                                                                         (150, 170, 190), (25, 25, 30)]),
                              rng.uniform(3.0, 3.8), rng.uniform(2.4, 4.0),
                              (rng.uniform(1.0, 1.8), rng.uniform(1.3, 1.9)),
                              pick(rng, FACADE + CAR_PAINT) if rng.random() < 0.4 else None))
        z += size


def _park(rng, items: list, side: int, x: float, length: float) -> None:
    z = rng.uniform(-20.0, 0.0)
    while z < length + 40:
        run = rng.uniform(10.0, 30.0)
        x0, x1 = sorted((side * x, side * (x + 20)))
        items.append(Slab(z, 0.0, (x0, x1, 0, rng.uniform(5.0, 12.0), run), pick(rng, FOLIAGE), VEGETATION))
        z += run


def _skyline(rng, items: list) -> None:
    x = -150.0
    while x < 150.0:
        w = rng.uniform(8.0, 30.0)
        if rng.random() < 0.25:
            items.append(Slab(FAR, 0.0, (x, x + w, 0, rng.uniform(8, 20), 10), pick(rng, FOLIAGE), VEGETATION))
        else:
            items.append(Slab(FAR, 0.0, (x, x + w, 0, rng.uniform(10, 45), 10), pick(rng, FACADE), BUILDING))
        x += w

"""Synthetic street scenes written exactly like a Cityscapes download (our test and demo data).

``write_dataset`` writes::

    <out>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png   RGB street image
    <out>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png    Cityscapes labelIds
    <out>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_color.png       the official palette
    <out>/synth.json                                                        how it was generated

Image ``i`` of a split depends only on (seed, split, i): a larger ``count`` extends a smaller one.
Streets are sampled by :mod:`cityseg.synthetic.street` and rendered by :mod:`cityseg.synthetic.render`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from cityseg.data.cityscapes import DatasetError
from cityseg.fileio import write_json_atomic, write_png
from cityseg.labels import class_space
from cityseg.synthetic.render import render_world
from cityseg.synthetic.street import make_world

DEFAULT_SIZE = (1024, 512)
"""(width, height) of generated images: half the Cityscapes resolution, twice the default
training resolution (so the resize step is exercised)."""
DEFAULT_SPLITS = {"train": 0.8, "val": 0.2}
"""Fractions of ``count`` written to each official split folder."""
SPLIT_NAMES = ("train", "val", "test")
CITIES = {"train": ("altdorf", "bergheim", "dornbach"), "val": ("eichwald",), "test": ("fuchsberg",)}
"""Fictional city names (one folder each), so synthetic keys never collide with real ones."""
FRAME = 19
"""Cityscapes annotates the 20th frame of each 30-frame snippet: keys end in _000019."""
SYNTH_VERSION = 1


def render_scene(rng: np.random.Generator, height: int, width: int,
                 t: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One random street scene -> (RGB uint8 HxWx3, labelIds uint8 HxW), camera at time ``t``."""
    world = make_world(rng)
    return render_world(world, height, width, t)


def drive_frames(count: int, height: int, width: int, seed: int = 0,
                 fps: float = 10.0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A short drive: ``count`` frames of one street with the camera moving forward at ``fps``."""
    rng = np.random.default_rng(seed)
    duration = count / fps
    world = make_world(rng, length=160.0 + 12.0 * duration)
    _keep_ego_lane_clear(world)
    for i in range(count):
        noise = np.random.default_rng([seed, i])  # fresh sensor noise per frame
        yield render_world(world, height, width, i / fps, noise)


def _keep_ego_lane_clear(world, lane_half_width: float = 1.8, margin: float = 1.0) -> None:
    """Make vehicles and riders ahead in the camera's lane at least as fast as the camera.

    A single still image may show a slow truck ahead; a drive must never run through it.
    """
    camera = world.camera
    for item in world.front:
        x = getattr(item, "x", None)
        if x is not None and abs(x - camera.x) < lane_half_width and item.z > 0:
            item.speed = max(item.speed, camera.speed + margin)


def split_counts(count: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Share ``count`` images among splits by ``fractions`` (largest remainder, sums to count)."""
    if count <= 0:
        raise DatasetError(f"--count must be positive, got {count}")
    unknown = [name for name in fractions if name not in SPLIT_NAMES]
    if unknown or not fractions:
        raise DatasetError(f"split names {unknown or '(none)'} are not Cityscapes splits; "
                           f"use {', '.join(SPLIT_NAMES)}, e.g. train=0.8,val=0.2")
    total = sum(fractions.values())
    if any(f < 0 for f in fractions.values()) or total <= 0:
        raise DatasetError(f"split fractions must be non-negative with a positive sum, got {dict(fractions)}")
    exact = {name: count * f / total for name, f in fractions.items()}
    counts = {name: int(np.floor(v)) for name, v in exact.items()}
    by_remainder = sorted(exact, key=lambda n: exact[n] - counts[n], reverse=True)
    for name in by_remainder[: count - sum(counts.values())]:
        counts[name] += 1
    return counts


def sample_key(split: str, index: int) -> tuple[str, str]:
    """(city, key) of the ``index``-th image of ``split``: ``<city>_<seq:06d>_000019``."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{FRAME:06d}"


def _clear_previous(out: Path, force: bool) -> None:
    """Refuse an existing dataset in ``out``; with ``force`` replace one that ``synth`` wrote.

    A tree without synth.json (e.g. a real Cityscapes download) is never touched, even with force.
    """
    existing = [d for d in (out / "leftImg8bit", out / "gtFine") if d.exists()]
    if not existing:
        return
    if not force:
        raise DatasetError(f"{existing[0]} already exists; pass --force to replace it "
                           "or choose an empty --out folder")
    if not (out / "synth.json").is_file():
        raise DatasetError(f"{existing[0]} already exists and was not written by `cityseg synth` "
                           f"(no {out / 'synth.json'}); it is left untouched - choose another --out")
    for folder in existing:
        shutil.rmtree(folder)


def write_dataset(out: Path, count: int, size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0,
                  splits: Mapping[str, float] = DEFAULT_SPLITS, *, force: bool = False,
                  progress: bool = False) -> dict[str, int]:
    """Render ``count`` scenes into ``out`` in Cityscapes layout; return images written per split.

    Refuses a folder that already holds a Cityscapes tree; ``force`` replaces an earlier synth
    output (never a tree it did not write), so no stale scenes of another run stay mixed in.
    """
    out = Path(out)
    width, height = size
    if width < 32 or height < 32:
        raise DatasetError(f"--size {width}x{height} is too small; use at least 32x32 (e.g. 512x256)")
    counts = split_counts(count, splits)
    _clear_previous(out, force)
    jobs = [(split, i) for split in SPLIT_NAMES for i in range(counts.get(split, 0))]
    palette = class_space("labelid").palette

    def write_one(job: tuple[str, int]) -> None:
        split, index = job
        rng = np.random.default_rng([seed, SPLIT_NAMES.index(split), index])
        image, label = render_scene(rng, height, width)
        city, key = sample_key(split, index)
        write_png(out / "leftImg8bit" / split / city / f"{key}_leftImg8bit.png",
                  cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        gt = out / "gtFine" / split / city
        write_png(gt / f"{key}_gtFine_labelIds.png", label)
        write_png(gt / f"{key}_gtFine_color.png", cv2.cvtColor(palette[label], cv2.COLOR_RGB2BGR))

    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for _ in tqdm(pool.map(write_one, jobs), total=len(jobs), unit="img", disable=not progress,
                      desc="synth"):
            pass
    write_json_atomic(out / "synth.json", {"generator": "cityseg synth", "version": SYNTH_VERSION,
                                           "seed": seed, "size": [width, height], "counts": counts})
    return counts


"""Network output -> class mask at frame resolution -> colour mask -> overlay.

Everything is vectorised: argmax runs in row blocks on a small thread pool (numpy releases the
GIL), ids are remapped and coloured through 256-entry LUTs at network resolution, and only the
final nearest-neighbour upsample and the alpha blend touch full-resolution pixels. Because nearest
upsampling commutes with per-pixel lookups, colouring before upsampling gives identical output.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import cv2
import numpy as np

from cityseg.preprocess import into_out

_ARGMAX_MIN_ROWS = 64
_ARGMAX_WORKERS = max(1, min(4, os.cpu_count() or 1))
"""Threads of the argmax pool (kept here: ThreadPoolExecutor has no public worker count)."""


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_ARGMAX_WORKERS, thread_name_prefix="cityseg-argmax")


def _row_bands(rows: int, min_rows: int) -> list[slice]:
    """Split ``rows`` into one band per pool worker (a single band when too small to pay off)."""
    workers = _ARGMAX_WORKERS
    if workers == 1 or rows < 2 * min_rows:
        return [slice(0, rows)]
    bounds = np.linspace(0, rows, workers + 1, dtype=int)
    return [slice(bounds[i], bounds[i + 1]) for i in range(workers)]


def _run_bands(work, bands: list[slice]) -> None:
    if len(bands) == 1:
        work(bands[0])
    else:
        list(_pool().map(work, bands))


def scores_to_classes(scores: np.ndarray) -> np.ndarray:
    """Argmax over the last axis of ``...xC`` scores -> uint8 class indices."""
    if scores.shape[-1] > 256:
        raise ValueError(f"at most 256 classes fit a uint8 mask, got {scores.shape[-1]}")
    flat = scores.reshape(-1, scores.shape[-2], scores.shape[-1])  # rows x W x C
    out = np.empty(flat.shape[:2], dtype=np.uint8)

    def work(band: slice) -> None:
        out[band] = np.argmax(flat[band], axis=-1)

    _run_bands(work, _row_bands(flat.shape[0], _ARGMAX_MIN_ROWS))
    return out.reshape(scores.shape[:-1])


def to_classes(output: np.ndarray, kind: str) -> np.ndarray:
    """Model output of ``kind`` ('probabilities', 'logits' or 'argmax') -> uint8 class indices."""
    if kind == "argmax":
        return output.astype(np.uint8, copy=False)
    return scores_to_classes(output)


def remap(classes: np.ndarray, lut: np.ndarray | None) -> np.ndarray:
    """Apply a uint8[256] id LUT (None = identity)."""
    if lut is None:
        return classes
    return lut[classes]


@lru_cache(maxsize=16)
def _color_lut(palette_bytes: bytes, bgr: bool) -> np.ndarray:
    palette = np.frombuffer(palette_bytes, dtype=np.uint8).reshape(256, 3)
    if bgr:
        palette = palette[:, ::-1]
    return np.ascontiguousarray(palette).reshape(256, 1, 3)


def colorize(classes: np.ndarray, palette: np.ndarray, order: str = "RGB") -> np.ndarray:
    """uint8 HxW class mask -> HxWx3 colour image through a uint8[256,3] RGB palette."""
    lut = _color_lut(np.ascontiguousarray(palette, dtype=np.uint8).tobytes(), order.upper() == "BGR")
    return cv2.LUT(cv2.cvtColor(classes, cv2.COLOR_GRAY2BGR), lut)


def overlay(frame: np.ndarray, color: np.ndarray, alpha: float, out: np.ndarray | None = None) -> np.ndarray:
    """Alpha-blend ``color`` over ``frame`` (same size and channel order): alpha=1 is all colour.
    One uint8 pass (OpenCV's saturating blend), into ``out`` when given."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha must be within [0, 1], got {alpha}")
    if frame.shape != color.shape:
        raise ValueError(f"overlay needs frame and colour of one shape, got {frame.shape} and {color.shape}")
    if out is None:
        return cv2.addWeighted(color, alpha, frame, 1.0 - alpha, 0.0)
    return into_out(out, cv2.addWeighted(color, alpha, frame, 1.0 - alpha, 0.0, dst=out))

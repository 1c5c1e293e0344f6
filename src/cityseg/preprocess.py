"""Frame preprocessing shared by training and inference, so both see identical pixels.

The training cache is built with :func:`resize_image` and inference resizes with the same
function and the method recorded in the model card; normalisation is one affine map per channel.
Masks go back to the frame's size with :func:`upsample_nearest` (inference, export parity, the node).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from cityseg.errors import InputError

RESIZE_METHODS = ("lanczos3", "area", "bilinear", "nearest")
"""Image resize methods a model card may name.

``lanczos3``: antialiased Lanczos-3 (Pillow), the original study's choice (slow: ~20 ms per
2048x1024 frame); ``area``: OpenCV INTER_AREA, the fast antialiased choice for downscaling;
``bilinear``: OpenCV INTER_LINEAR; ``nearest``: OpenCV INTER_NEAREST_EXACT (used for label masks).
"""

_CV2_METHODS = {
    "area": cv2.INTER_AREA,
    "bilinear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST_EXACT,
}


@dataclass(frozen=True)
class Normalization:
    """``x = (pixel * scale - mean) / std`` per channel, pixel in 0..255, channels in model order."""

    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("normalization mean and std need 3 values (one per channel)")
        if any(s <= 0 for s in self.std) or self.scale <= 0:
            raise ValueError("normalization scale and std must be positive")

    def coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """(multiplier, offset) float32[3] with ``x = pixel * multiplier + offset``."""
        std = np.asarray(self.std, dtype=np.float64)
        mul = self.scale / std
        off = -np.asarray(self.mean, dtype=np.float64) / std
        return mul.astype(np.float32), off.astype(np.float32)


def resize_image(image: np.ndarray, height: int, width: int, method: str) -> np.ndarray:
    """Resize an HxW[xC] uint8 image to ``height`` x ``width`` with a named method."""
    if method not in RESIZE_METHODS:
        raise ValueError(f"unknown resize method {method!r}; use one of {', '.join(RESIZE_METHODS)}")
    if image.shape[:2] == (height, width):
        return image
    if method == "lanczos3":
        return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))
    return cv2.resize(image, (width, height), interpolation=_CV2_METHODS[method])


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a label mask with nearest-neighbour sampling (labels are never interpolated)."""
    return resize_image(mask, height, width, "nearest")


def upsample_nearest(image: np.ndarray, height: int, width: int, out: np.ndarray | None = None) -> np.ndarray:
    """Nearest-neighbour resize of a mask or colour image (pixel-centre aligned); written into
    ``out`` (a contiguous uint8 array of the result's shape) when given."""
    if image.shape[:2] == (height, width):
        if out is None:
            return image
        np.copyto(out, image)
        return out
    if out is None:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    return into_out(out, cv2.resize(image, (width, height), dst=out, interpolation=cv2.INTER_NEAREST_EXACT))


def into_out(out: np.ndarray, result: np.ndarray) -> np.ndarray:
    """``out`` after an OpenCV call given ``dst=out`` (copied over if OpenCV had to allocate)."""
    if result is not out and not np.shares_memory(result, out):
        np.copyto(out, result)
    return out


def as_rgb(frame: np.ndarray, channel_order: str) -> np.ndarray:
    """Validate an 8-bit frame and return it as HxWx3 RGB (gray and 4-channel inputs accepted)."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise InputError(f"frames must be uint8 numpy arrays, got {getattr(frame, 'dtype', type(frame))}")
    if frame.ndim not in (2, 3) or frame.size == 0:
        raise InputError(f"a frame must be a non-empty HxW or HxWxC image, got shape {frame.shape}")
    order = channel_order.upper()
    if order not in ("RGB", "BGR"):
        raise InputError(f"unknown channel order {channel_order!r}; use RGB or BGR")
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2RGB)
    channels = frame.shape[2]
    if channels == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB if order == "BGR" else cv2.COLOR_RGBA2RGB)
    if channels != 3:
        raise InputError(f"a frame needs 1, 3 or 4 channels, got {channels}")
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if order == "BGR" else frame


def to_channel_order(frame: np.ndarray, channel_order: str, wanted: str) -> np.ndarray:
    """An 8-bit frame (grey, 3 or 4 channels, in ``channel_order``) as HxWx3 in ``wanted`` order
    (the frame itself when it already is)."""
    order, wanted = channel_order.upper(), wanted.upper()
    if frame.ndim == 3 and frame.shape[2] == 3 and order == wanted and frame.dtype == np.uint8:
        return frame
    rgb = as_rgb(frame, channel_order)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if wanted == "BGR" else rgb


def normalize(images: np.ndarray, norm: Normalization) -> np.ndarray:
    """uint8 NHWC/HWC RGB -> float32 network input: ``pixel * multiplier + offset`` per channel.

    OpenCV's per-channel SIMD multiply/add computes the same float32 operations as numpy's
    ``astype(float32) * m + o`` (bit-identical) at ~4x the speed.
    """
    mul, off = norm.coefficients()
    if images.dtype != np.uint8 or images.shape[-1] != 3 or not images.flags.c_contiguous:
        return images.astype(np.float32) * mul + off
    planar = images.reshape(-1, images.shape[-2], 3)  # (N*H) x W x 3 view, what OpenCV takes
    out = cv2.multiply(planar, (float(mul[0]), float(mul[1]), float(mul[2]), 0.0), dtype=cv2.CV_32F)
    cv2.add(out, (float(off[0]), float(off[1]), float(off[2]), 0.0), dst=out)
    return out.reshape(images.shape)


def prepare_frame(frame: np.ndarray, channel_order: str, height: int, width: int,
                  method: str, model_order: str = "RGB") -> np.ndarray:
    """Any 8-bit frame -> uint8 HxWx3 at network size in the model's channel order."""
    rgb = as_rgb(frame, channel_order)
    resized = resize_image(rgb, height, width, method)
    if model_order.upper() == "BGR":
        resized = resized[..., ::-1]
    return np.ascontiguousarray(resized)


FIT_POLICIES = ("stretch", "letterbox", "tiles")
"""How a frame whose aspect differs from the model input's fills it: ``stretch`` resizes it to the
input size (aspect lost); ``letterbox`` keeps the aspect, pads the rest with black, and the mask is
cut back to the frame's part (:func:`letterbox_box`) before it goes to the frame's size; ``tiles``
resizes the frame by the card's ``tile_scale`` and covers it with input-sized tiles (:func:`tile_grid`),
one network input each, whose masks are stitched (each pixel from the tile whose centre is nearest)."""


def letterbox_box(frame_size: tuple[int, int], height: int, width: int) -> tuple[int, int, int, int]:
    """Where a letterboxed frame of ``frame_size`` (H, W) lies in the height x width input:
    (top, left, content height, content width), centred."""
    scale = min(height / frame_size[0], width / frame_size[1])
    inner_h = min(height, max(1, round(frame_size[0] * scale)))
    inner_w = min(width, max(1, round(frame_size[1] * scale)))
    return (height - inner_h) // 2, (width - inner_w) // 2, inner_h, inner_w


def tile_starts(length: int, tile: int) -> tuple[int, ...]:
    """Where the tiles covering ``length`` pixels start: ceil(length / tile) tiles spread evenly from
    0 to length - tile (overlapping where they must); one centred tile, starting before 0 (black
    padding), when ``length`` is shorter than a tile."""
    if length <= tile:
        return (-((tile - length) // 2),)
    n = -(-length // tile)
    return tuple(i * (length - tile) // (n - 1) for i in range(n))


def tile_spans(starts: Sequence[int], length: int, tile: int) -> list[tuple[int, int, int]]:
    """(tile index, first, end) of the pixels each tile gives the stitched mask along one axis: the
    ones whose centre is nearest that tile's centre (overlaps split halfway, a tie to the earlier tile)."""
    cuts = [(starts[i] + starts[i + 1] + tile + 1) // 2 for i in range(len(starts) - 1)]
    edges = [0, *cuts, length]
    return [(i, edges[i], edges[i + 1]) for i in range(len(starts))]


@dataclass(frozen=True)
class TileGrid:
    """How one frame is covered by tiles (fit ``tiles``): the frame resized to ``scaled`` (H', W'),
    tile rows starting at ``rows`` and columns at ``cols`` (row-major order, ``tile`` = input size)."""

    scaled: tuple[int, int]
    tile: tuple[int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @property
    def count(self) -> int:
        """Number of tiles (network inputs) for the frame."""
        return len(self.rows) * len(self.cols)

    @property
    def boxes(self) -> list[tuple[int, int]]:
        """(top, left) of every tile in the scaled frame, row-major."""
        return [(top, left) for top in self.rows for left in self.cols]

    def cut(self, image: np.ndarray) -> np.ndarray:
        """The scaled frame (H'xWx3 uint8) -> T x h x w x 3 tiles, black where a tile passes its edge."""
        (h, w), (height, width) = self.tile, self.scaled
        tiles = np.zeros((self.count, h, w, *image.shape[2:]), image.dtype)
        for k, (top, left) in enumerate(self.boxes):
            y0, x0 = max(top, 0), max(left, 0)
            y1, x1 = min(top + h, height), min(left + w, width)
            tiles[k, y0 - top:y1 - top, x0 - left:x1 - left] = image[y0:y1, x0:x1]
        return tiles

    def stitch(self, tiles: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Per-tile outputs (T x h x w [x C], any dtype: class ids, scores, confidence) -> one
        H' x W' [x C] array, each pixel from the tile whose centre is nearest."""
        first = tiles[0]
        out = np.empty((*self.scaled, *first.shape[2:]), first.dtype)
        height, width = self.scaled
        for r, y0, y1 in tile_spans(self.rows, height, self.tile[0]):
            top = self.rows[r]
            for c, x0, x1 in tile_spans(self.cols, width, self.tile[1]):
                left = self.cols[c]
                out[y0:y1, x0:x1] = tiles[r * len(self.cols) + c][y0 - top:y1 - top, x0 - left:x1 - left]
        return out


def tile_grid(frame_size: tuple[int, int], height: int, width: int, scale: float = 1.0) -> TileGrid:
    """The tiles of a ``frame_size`` (H, W) frame resized by ``scale`` for a height x width input."""
    if not scale > 0:
        raise ValueError(f"tile_scale must be positive, got {scale}")
    scaled = (max(1, round(frame_size[0] * scale)), max(1, round(frame_size[1] * scale)))
    return TileGrid(scaled, (height, width), tile_starts(scaled[0], height), tile_starts(scaled[1], width))


def prepare_frame_tiles(frame: np.ndarray, channel_order: str, height: int, width: int, method: str,
                        model_order: str = "RGB", scale: float = 1.0) -> tuple[np.ndarray, TileGrid]:
    """Any 8-bit frame -> (T x height x width x 3 uint8 tiles in the model's channel order, their grid):
    the frame resized by ``scale`` with ``method``, then cut as :func:`tile_grid` says."""
    grid = tile_grid(frame.shape[:2], height, width, scale)
    scaled = prepare_frame(frame, channel_order, *grid.scaled, method, model_order)
    return grid.cut(scaled), grid


def prepare_frame_fit(frame: np.ndarray, channel_order: str, height: int, width: int, method: str,
                      model_order: str = "RGB", fit: str = "stretch", tile_scale: float = 1.0) -> np.ndarray:
    """:func:`prepare_frame` under a fit policy (:data:`FIT_POLICIES`): one network input for the
    frame (for ``tiles`` its middle tile, a sample of what the model sees; all tiles:
    :func:`prepare_frame_tiles`)."""
    if fit == "stretch":
        return prepare_frame(frame, channel_order, height, width, method, model_order)
    if fit == "tiles":
        tiles, grid = prepare_frame_tiles(frame, channel_order, height, width, method, model_order, tile_scale)
        return tiles[(len(grid.rows) // 2) * len(grid.cols) + len(grid.cols) // 2]
    if fit != "letterbox":
        raise ValueError(f"unknown fit {fit!r}; use one of {', '.join(FIT_POLICIES)}")
    top, left, inner_h, inner_w = letterbox_box(frame.shape[:2], height, width)
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[top:top + inner_h, left:left + inner_w] = prepare_frame(frame, channel_order, inner_h, inner_w,
                                                                    method, model_order)
    return canvas


LAYOUTS = ("NHWC", "NCHW")


def to_layout(batch: np.ndarray, layout: str) -> np.ndarray:
    """An NHWC batch in ``layout``: itself for NHWC, a contiguous Nx3xHxW copy for NCHW."""
    if layout == "NHWC":
        return batch
    if layout != "NCHW":
        raise ValueError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))

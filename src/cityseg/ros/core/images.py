"""sensor_msgs Image / CompressedImage <-> numpy frames, for every common camera encoding.

Decoding returns a :class:`DecodedImage`: an 8-bit frame and its channel order, ready for
:meth:`cityseg.inference.Segmenter.segment`, plus the encoding the overlay is published in.
Messages are read duck-typed (``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``,
``data`` / ``format``, ``data``), so rclpy's classes, rosbags' ROS 2 classes and rosbags' ROS 1
classes all work. ``data`` may be bytes, ``array.array('B')`` or a numpy uint8 array.

How each encoding becomes network input:

* ``rgb8`` / ``bgr8`` / ``rgba8`` / ``bgra8``: used as they are (alpha dropped).
* ``mono8`` / ``8UC1``: grey, replicated to three channels by the segmenter.
* ``mono16`` / ``16UC1``: byte order from ``is_bigendian``; scaled linearly to 8 bit with
  ``value * 255 / mono16_max`` (``mono16_max`` = 65535 by default; 4095 for a 12-bit sensor).
* ``yuv422`` = ``uyvy`` (U Y0 V Y1) and ``yuv422_yuy2`` = ``yuyv`` (Y0 U Y1 V): OpenCV cvtColor.
* ``bayer_rggb8`` / ``bayer_bggr8`` / ``bayer_gbrg8`` / ``bayer_grbg8``: OpenCV bilinear demosaic.
  ROS names the pattern by its top-left 2x2 block; OpenCV's classic constants are named by the
  second row (``COLOR_BayerBG2RGB`` is ROS ``rggb``), so the table below uses OpenCV's explicit
  ``COLOR_BayerRGGB2RGB``-style aliases where they exist.
* CompressedImage (``jpeg`` / ``png``, plain or image_transport's ``"rgb8; jpeg compressed bgr8"``):
  ``cv2.imdecode``; colour comes out BGR. ``compressedDepth`` is refused.

Overlay encoding ("same family as the input"): ``bgr8`` for bgr8/bgra8 and compressed input,
``rgb8`` for everything else (rgb8, rgba8, mono, yuv, bayer).
"""

from __future__ import annotations

import abc
import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from cityseg.errors import InputError


class ImageError(InputError):
    """An image message that cannot be decoded; ``reason`` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _bayer_code(ros_pattern: str, classic: str) -> int:
    return getattr(cv2, f"COLOR_Bayer{ros_pattern.upper()}2RGB", getattr(cv2, f"COLOR_Bayer{classic}2RGB"))


_BAYER = {
    "bayer_rggb8": _bayer_code("rggb", "BG"),
    "bayer_bggr8": _bayer_code("bggr", "RG"),
    "bayer_gbrg8": _bayer_code("gbrg", "GR"),
    "bayer_grbg8": _bayer_code("grbg", "GB"),
}
_YUV = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2, "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}
_DIRECT = {  # encoding -> (channels, channel order)
    "rgb8": (3, "RGB"), "bgr8": (3, "BGR"), "rgba8": (4, "RGB"), "bgra8": (4, "BGR"),
    "mono8": (1, "RGB"), "8uc1": (1, "RGB"),
}
_MONO16 = ("mono16", "16uc1")

BYTES_PER_PIXEL = {**{e: c for e, (c, _) in _DIRECT.items()}, **{e: 2 for e in _MONO16},
                   **{e: 2 for e in _YUV}, **{e: 1 for e in _BAYER}}
"""Bytes per pixel of every supported raw encoding (lower case)."""

SUPPORTED_ENCODINGS = tuple(BYTES_PER_PIXEL)


@dataclass(frozen=True)
class DecodedImage:
    """An 8-bit frame decoded from a message."""

    frame: np.ndarray
    """uint8 HxW (grey), HxWx3 or HxWx4 in ``channel_order``."""
    channel_order: str
    """'RGB' or 'BGR' (grey frames say 'RGB')."""
    overlay_encoding: str
    """'rgb8' or 'bgr8': the encoding the overlay of this frame is published in."""

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frame.shape[0]), int(self.frame.shape[1])

    def color_frame(self) -> np.ndarray:
        """The frame as HxWx3 in ``overlay_encoding``'s channel order (grey replicated, alpha dropped)."""
        if self.frame.ndim == 2:
            return cv2.cvtColor(self.frame, cv2.COLOR_GRAY2RGB)
        return np.ascontiguousarray(self.frame[..., :3])


@dataclass(frozen=True)
class RawImage:
    """The fields of a sensor_msgs/Image, with ``data`` as a flat uint8 array."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray


def as_uint8_buffer(data) -> np.ndarray:
    """A message's ``data`` (bytes, array.array('B'), list or numpy array) as a flat uint8 array."""
    if isinstance(data, np.ndarray):
        flat = np.ascontiguousarray(data).reshape(-1)
        return flat.view(np.uint8) if flat.dtype.itemsize == 1 else np.frombuffer(flat.tobytes(), np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    try:
        return np.frombuffer(memoryview(data), dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8)


def is_compressed(msg) -> bool:
    """True for a sensor_msgs/CompressedImage (it has ``format``, a raw Image has ``encoding``)."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def decode_message(msg, mono16_max: int = 65535) -> DecodedImage:
    """Decode an Image or CompressedImage message; raise :class:`ImageError` if it is unusable."""
    return decode_compressed(msg, mono16_max) if is_compressed(msg) else decode_image(msg, mono16_max)


def _pixel_rows(msg, bpp: int) -> np.ndarray:
    """The message's pixels as a uint8 (height, width * bpp) view, ``step`` padding removed."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageError(f"zero-size image ({width}x{height})")
    if step < width * bpp:
        raise ImageError(f"step {step} is smaller than width*bytes_per_pixel = {width}*{bpp} = {width * bpp}")
    data = as_uint8_buffer(msg.data)
    if data.size < step * height:
        raise ImageError(f"data has {data.size} bytes, fewer than step*height = {step}*{height} "
                         f"= {step * height}")
    return data[: step * height].reshape(height, step)[:, : width * bpp]


def decode_image(msg, mono16_max: int = 65535) -> DecodedImage:
    """Decode a raw sensor_msgs/Image (see the module docstring for each encoding)."""
    encoding = str(msg.encoding).strip().lower()
    if encoding not in BYTES_PER_PIXEL:
        raise ImageError(f"unsupported encoding {msg.encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    bpp = BYTES_PER_PIXEL[encoding]
    rows = _pixel_rows(msg, bpp)
    height, width = rows.shape[0], int(msg.width)
    try:
        if encoding in _DIRECT:
            channels, order = _DIRECT[encoding]
            shape = (height, width) if channels == 1 else (height, width, channels)
            frame = np.ascontiguousarray(rows).reshape(shape)
            return DecodedImage(frame, order, "bgr8" if order == "BGR" else "rgb8")
        if encoding in _MONO16:
            dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
            values = np.ascontiguousarray(rows).view(dtype).reshape(height, width).astype(np.uint16)
            return DecodedImage(scale_16bit(values, mono16_max), "RGB", "rgb8")
        if encoding in _YUV:
            if width % 2:
                raise ImageError(f"{encoding} needs an even width (pixel pairs share chroma), got {width}")
            packed = np.ascontiguousarray(rows).reshape(height, width, 2)
            return DecodedImage(cv2.cvtColor(packed, _YUV[encoding]), "RGB", "rgb8")
        mosaic = np.ascontiguousarray(rows).reshape(height, width)
        return DecodedImage(cv2.cvtColor(mosaic, _BAYER[encoding]), "RGB", "rgb8")
    except cv2.error as exc:
        raise ImageError(f"OpenCV cannot convert this {width}x{height} {encoding} image: "
                         f"{str(exc).strip().splitlines()[-1]}") from None


def scale_16bit(values: np.ndarray, white: int = 65535) -> np.ndarray:
    """uint16 pixels -> uint8 with ``round(v * 255 / white)``, saturating above ``white``."""
    if not 1 <= white <= 65535:
        raise ValueError(f"the 16-bit white level must be within [1, 65535], got {white}")
    return cv2.convertScaleAbs(values, alpha=255.0 / white)


def _compressed_order(fmt: str) -> str:
    """Channel order of imdecode's colour output for an image_transport format string."""
    target = fmt.split("compressed", 1)[1].strip() if "compressed" in fmt else ""
    return "RGB" if target.startswith("rgb") else "BGR"


def decode_compressed(msg, mono16_max: int = 65535) -> DecodedImage:
    """Decode a sensor_msgs/CompressedImage (jpeg or png) with OpenCV."""
    fmt = str(msg.format).strip().lower()
    if "compresseddepth" in fmt or "rvl" in fmt.split():
        raise ImageError(f"unsupported compressed format {msg.format!r}: depth images "
                         "(compressedDepth) cannot be segmented; subscribe to a colour camera")
    if fmt and not any(codec in fmt for codec in ("jpeg", "jpg", "png")):
        raise ImageError(f"unsupported compressed format {msg.format!r}; jpeg or png is supported")
    data = as_uint8_buffer(msg.data)
    if data.size == 0:
        raise ImageError("compressed image with empty data")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise ImageError(f"cannot decode {data.size} bytes of compressed data (format {msg.format!r}); "
                         "corrupt or truncated image")
    if image.dtype == np.uint16:
        image = scale_16bit(image, mono16_max)
    if image.dtype != np.uint8:
        raise ImageError(f"compressed image decodes to {image.dtype} pixels; 8 or 16 bit expected")
    if image.ndim == 2:
        return DecodedImage(image, "RGB", "rgb8")
    order = _compressed_order(fmt)
    return DecodedImage(image, order, "bgr8" if order == "BGR" else "rgb8")


# ------------------------------------------------------------------------------------------
# Encoding: ndarray -> Image fields (outputs, synthetic camera bags, tests).
# ------------------------------------------------------------------------------------------

def raw_image(array: np.ndarray, encoding: str) -> RawImage:
    """Image fields for an already-encoded array (HxW or HxWxC, uint8 or uint16), rows unpadded."""
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    step = array.strides[0]
    data = array.reshape(-1).view(np.uint8)
    order = array.dtype.byteorder
    big = array.dtype.itemsize > 1 and (order == ">" or (order == "=" and sys.byteorder == "big"))
    return RawImage(int(height), int(width), encoding, int(big), int(step), data)


def encode_rgb(rgb: np.ndarray, encoding: str, *, bigendian: bool = False, padding: int = 0) -> RawImage:
    """Encode an RGB uint8 HxWx3 frame as ``encoding`` (any decodable raw encoding).

    ``padding`` extra bytes are added to every row (``step`` grows accordingly); ``bigendian``
    applies to 16-bit encodings. Used for synthetic camera bags and round-trip tests.
    """
    key = encoding.lower()
    if key not in BYTES_PER_PIXEL:
        raise ImageError(f"cannot encode to {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if key == "rgb8":
        pixels = rgb
    elif key == "bgr8":
        pixels = rgb[..., ::-1]
    elif key in ("rgba8", "bgra8"):
        color = rgb if key == "rgba8" else rgb[..., ::-1]
        pixels = np.dstack([color, np.full(rgb.shape[:2], 255, np.uint8)])
    elif key in ("mono8", "8uc1"):
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    elif key in _MONO16:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
        pixels = gray.astype(">u2" if bigendian else "<u2")
    elif key in _YUV:
        code = getattr(cv2, "COLOR_RGB2YUV_UYVY" if key in ("yuv422", "uyvy") else "COLOR_RGB2YUV_YUY2", None)
        if code is None:
            raise ImageError(f"encoding to {encoding} needs OpenCV >= 4.10 (this is {cv2.__version__}); "
                             "pip install -U opencv-python-headless")
        pixels = cv2.cvtColor(rgb, code)
    else:
        pixels = bayer_mosaic(rgb, key[len("bayer_"):len("bayer_") + 4])
    raw = raw_image(pixels, encoding)
    if padding:
        rows = raw.data.reshape(raw.height, raw.step)
        padded = np.zeros((raw.height, raw.step + padding), np.uint8)
        padded[:, : raw.step] = rows
        raw = RawImage(raw.height, raw.width, encoding, raw.is_bigendian, raw.step + padding, padded.reshape(-1))
    return raw


def bayer_mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample an RGB frame through a Bayer colour filter named by its top-left 2x2 (e.g. 'rggb')."""
    pattern = pattern.lower()
    if sorted(pattern) != sorted("rggb") or len(pattern) != 4:
        raise ValueError(f"unknown Bayer pattern {pattern!r}; use rggb, bggr, gbrg or grbg")
    channel = {"r": 0, "g": 1, "b": 2}
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    for i, letter in enumerate(pattern):
        dy, dx = divmod(i, 2)
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, channel[letter]]
    return mosaic


PNG_PARAMS = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE)
"""zlib settings of PNG outputs: run-length strategy at level 1. On a 2048x1024 street mask it is as
fast as plain level 1 and half its size, and faster than image_transport's level 9 for about the
same size (benchmarks/compressed_outputs.py)."""


def encode_compressed(pixels: np.ndarray, codec: str = "jpeg", quality: int = 95,
                      encoding: str = "rgb8") -> tuple[str, np.ndarray]:
    """(format string, data) of a CompressedImage holding ``pixels`` (HxWx3 rgb8 or bgr8, or HxW mono8),
    written as image_transport's compressed publisher writes it: colour is encoded as bgr8
    (``"rgb8; jpeg compressed bgr8"``), grey as it is (``"mono8; png compressed "``)."""
    codec, encoding = codec.lower(), encoding.lower()
    if codec not in ("jpeg", "png"):
        raise ValueError(f"unknown codec {codec!r}; use jpeg or png")
    if encoding not in ("rgb8", "bgr8", "mono8"):
        raise ValueError(f"cannot compress {encoding!r} pixels; use rgb8, bgr8 or mono8")
    if encoding == "rgb8":
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == "jpeg" else list(PNG_PARAMS)
    ok, encoded = cv2.imencode(".jpg" if codec == "jpeg" else ".png", pixels, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {pixels.shape} frame as {codec}")
    target = "" if encoding == "mono8" else "bgr8"
    return f"{encoding}; {codec} compressed {target}", encoded.reshape(-1)


class OutgoingImage(abc.ABC):
    """An output Image whose pixels are written in place before it is sent."""

    pixels: np.ndarray
    """Writable uint8 HxW or HxWxC array: the message's pixels."""

    @abc.abstractmethod
    def message(self) -> Any:
        """What the publisher or bag writer takes: a message object or its CDR bytes."""

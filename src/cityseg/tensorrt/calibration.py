"""INT8 calibration for TensorRT engine builds: which images, in which batches, through which calibrator.

Calibration images are preprocessed exactly as the model card says (the same entry point as
inference); the entropy calibrator copies each batch to the GPU and keeps TensorRT's cache
beside the engines (named by :func:`cityseg.tensorrt.engine_cache.calibration_cache_path`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cityseg.bundle import ModelCard
from cityseg.errors import InputError
from cityseg.fileio import read_image, write_bytes_atomic
from cityseg.tensorrt.runtime import DeviceBuffer, cuda_call, import_cudart

log = logging.getLogger(__name__)

DEFAULT_CALIB_BATCH = 8
DEFAULT_CALIB_LIMIT = 512
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")


def calibrator_for(card: ModelCard, cache: Path, precision: str, calib_images: Path | None,
                   calib_batch: int, calib_limit: int | None, *, recalibrate: bool):
    """(calibrator or None, calibration facts for the sidecar) for ``precision``. An existing cache
    for this ONNX is used unless ``recalibrate`` (--force with --calib-images)."""
    if precision != "int8":
        return None, None
    if calib_images is None and not cache.is_file():
        raise InputError("--precision int8 needs --calib-images DIR (representative frames, e.g. a few "
                         "hundred from leftImg8bit/train); no calibration cache exists yet for this ONNX")
    files = calibration_files(calib_images, calib_limit) if calib_images is not None else []
    batches = CalibrationBatches(files, card, calib_batch) if files else None
    if batches is None:  # cache only: TensorRT reads it and asks for no batches
        batches = EmptyBatches(card, calib_batch)
    facts = {"images": len(files), "batch": calib_batch, "cache": cache.name,
             "source": str(calib_images) if calib_images else "cache"}
    return make_calibrator(batches, cache, read_cache=not recalibrate), facts


def calibration_files(directory: Path, limit: int | None = DEFAULT_CALIB_LIMIT) -> list[Path]:
    """Images under ``directory`` (recursively, sorted), at most ``limit`` spread evenly over them."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"--calib-images {directory}: no such directory; point it at a folder of "
                         "representative frames (e.g. leftImg8bit/train/aachen)")
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"--calib-images {directory}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    if limit is not None and len(files) > limit:
        picks = np.linspace(0, len(files) - 1, limit).round().astype(int)
        files = [files[i] for i in picks]
    return files


class CalibrationBatches:
    """Full float32 batches of calibration images, preprocessed exactly as the card says."""

    def __init__(self, files: list[Path], card: ModelCard, batch_size: int = DEFAULT_CALIB_BATCH):
        if batch_size < 1:
            raise InputError(f"calibration batch size must be positive, got {batch_size}")
        if len(files) < batch_size:
            raise InputError(f"INT8 calibration needs at least {batch_size} images (one batch), got "
                             f"{len(files)}; add images or lower --calib-batch")
        self.files = files
        self.card = card
        self.batch_size = batch_size

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.batch_size, *self.card.input_shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * 4

    def __len__(self) -> int:
        return len(self.files) // self.batch_size

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            chunk = self.files[i * self.batch_size:(i + 1) * self.batch_size]
            frames = [read_image(p) for p in chunk]  # BGR
            yield np.ascontiguousarray(self.card.preprocess(frames, "BGR"), dtype=np.float32)


class EmptyBatches(CalibrationBatches):
    """No images: the calibrator serves the cache only."""

    def __init__(self, card: ModelCard, batch_size: int):
        self.files, self.card, self.batch_size = [], card, batch_size


def make_calibrator(batches: CalibrationBatches, cache: Path, *, read_cache: bool = True):
    """An IInt8EntropyCalibrator2 feeding ``batches`` to the GPU, reading (unless ``read_cache`` is
    False: recalibrate) and writing ``cache``."""
    import tensorrt as trt

    cudart = import_cudart()

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = iter(batches)
            self.device = DeviceBuffer(batches.nbytes)
            self.used = 0

        def get_batch_size(self) -> int:
            return batches.batch_size

        def get_batch(self, names):
            try:
                batch = next(self.batches)
            except StopIteration:
                return None
            cuda_call(cudart.cudaMemcpy(self.device.ptr, batch.ctypes.data, batch.nbytes,
                                        cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
            self.used += len(batch)
            return [self.device.ptr]

        def read_calibration_cache(self):
            if read_cache and cache.is_file():
                log.info("INT8: using calibration cache %s", cache)
                return cache.read_bytes()
            return None

        def write_calibration_cache(self, data) -> None:
            write_bytes_atomic(cache, bytes(data))

    return EntropyCalibrator()

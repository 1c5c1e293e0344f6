"""From samples to training batches: decode, resize, cache, normalise, augment, batch.

Decoding uses the same ``cityseg.preprocess.resize_image`` that inference uses, so a model sees
identical pixels in training and deployment. The first use of a sample list decodes every PNG
once (both CPU cores) into a uint8 cache at training resolution under ``data.cache_dir``::

    <cache_dir>/<space>-<H>x<W>-<resize>-<N>-<digest>/{images.npy, labels.npy, meta.json}

The digest covers the sample keys, file sizes and modification times, the size, resize method,
label set (for a label-set YAML: its name and label map) and cache format, so any change to
the data or these settings makes a new entry.
Entries are built in a temporary folder and renamed into place (atomic). Later epochs and runs
memory-map the arrays and never decode a PNG again. ``cache_dir: null`` decodes every epoch.

TensorFlow is imported only inside :func:`make_dataset`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from cityseg.data.cityscapes import DatasetError, Sample
from cityseg.data.config import DataConfig, DatasetSettings
from cityseg.errors import InputError
from cityseg.fileio import read_image, read_label_png, write_json_atomic
from cityseg.labels import LABELS, LabelSet, load_label_set
from cityseg.preprocess import Normalization, resize_image, resize_mask

CACHE_FORMAT = 1
_MAX_LABEL_ID = max(label.id for label in LABELS)
_CHUNK = 64
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Decoding one sample.
# --------------------------------------------------------------------------------------------

def decode_sample(sample: Sample, data: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 HxWx3 RGB image, uint8 HxW class indices) of ``sample`` at training resolution."""
    if sample.label is None:
        raise DatasetError(f"{sample.image}: has no label file; only labelled splits can be used here")
    try:
        image = cv2.cvtColor(read_image(sample.image), cv2.COLOR_BGR2RGB)
        label_ids = read_label_png(sample.label)
    except InputError as exc:
        raise DatasetError(f"{exc}; re-extract the file from the dataset's archive (or regenerate it)") from None
    if label_ids.shape != image.shape[:2]:
        raise DatasetError(f"{sample.label}: size {label_ids.shape[::-1]} differs from its image "
                           f"{sample.image} ({image.shape[1::-1]}); the pair does not belong together")
    space = data_space(data)
    check_label_values(sample.label, label_ids, space)
    image = resize_image(image, data.height, data.width, data.resize)
    label = resize_mask(label_ids, data.height, data.width)
    return np.ascontiguousarray(image), space.from_label_id[label]


def invalid_label_values(values: np.ndarray, space: LabelSet) -> list[int]:
    """The values among ``values`` (distinct annotation values) that are neither a class nor void
    of ``space``: above 33 for the Cityscapes sets, outside ``space.valid_values`` for the others."""
    if space.is_cityscapes:
        return [int(v) for v in values if v > _MAX_LABEL_ID]
    if space.valid_values is None:
        return []
    return [int(v) for v in values if int(v) not in space.valid_values]


def check_label_values(path: Path, label_ids: np.ndarray, space: LabelSet) -> None:
    """DatasetError naming ``path`` when its annotation holds values the label set does not know."""
    bad = invalid_label_values(np.flatnonzero(np.bincount(label_ids.ravel(), minlength=256)), space)
    if not bad:
        return
    if space.is_cityscapes:
        raise DatasetError(f"{path}: contains value {max(bad)}, which is not a Cityscapes labelId "
                           f"(0-{_MAX_LABEL_ID}); use the *_gtFine_labelIds.png files, not trainIds")
    allowed = sorted(space.valid_values)
    raise DatasetError(f"{path}: contains value(s) {bad[:8]}, which are neither a class nor void of the "
                       f"label set {space.name} (values {allowed[0]}-{allowed[-1]}); is it an annotation "
                       "of this dataset, or is data.class_space the wrong label set?")


def data_space(data: DataConfig) -> LabelSet:
    """The label set of ``data.class_space`` (a built-in name or a label-set YAML, read once per
    file version); its ``from_label_id`` turns the dataset's labelIds into training targets."""
    spec = data.class_space
    path = Path(spec)
    stamp = path.stat().st_mtime_ns if path.is_file() else 0
    return _load_space(spec, stamp)


@lru_cache(maxsize=16)
def _load_space(spec: str, stamp: int) -> LabelSet:
    try:
        return load_label_set(spec)
    except InputError as exc:
        raise DatasetError(f"data.class_space: {exc}") from None


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _decode_into(samples: list[Sample], data: DataConfig, images: np.ndarray, labels: np.ndarray,
                 progress: bool, desc: str) -> None:
    """Decode ``samples`` in parallel threads (OpenCV and Pillow release the GIL) into arrays."""
    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        results = pool.map(lambda s: decode_sample(s, data), samples)
        for i, (image, label) in enumerate(tqdm(results, total=len(samples), unit="img", desc=desc,
                                                disable=not progress)):
            images[i] = image
            labels[i] = label


def _require_labels(samples: list[Sample]) -> None:
    if not samples:
        raise DatasetError("no samples given; check the data root and split (see `cityseg synth` for test data)")
    unlabelled = [s.image for s in samples if s.label is None]
    if unlabelled:
        raise DatasetError(f"{len(unlabelled)} samples have no label file (e.g. {unlabelled[0]}); "
                           "training and evaluation need a labelled split (train/val)")


# --------------------------------------------------------------------------------------------
# The on-disk cache.
# --------------------------------------------------------------------------------------------

def cache_digest(samples: list[Sample], data: DataConfig) -> str:
    """Hash of everything the cached arrays depend on (keys, file sizes/mtimes, size, method, space)."""
    files = []
    for s in samples:
        for path in (s.image, s.label):
            st = path.stat()
            files.append((s.key, st.st_size, st.st_mtime_ns))
    space = data_space(data)
    facts = {"format": CACHE_FORMAT, "size": [data.height, data.width], "resize": data.resize,
             "space": space.name, "files": files}
    if not space.is_cityscapes:  # a label set of its own: its targets depend on the whole map
        facts["label_map"] = space.from_label_id.tolist()
        facts["classes"] = len(space.names)
    blob = json.dumps(facts)
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_path(samples: list[Sample], data: DataConfig) -> Path | None:
    """The cache entry folder for ``samples`` under ``data.cache_dir`` (None: caching disabled)."""
    if data.cache_dir is None:
        return None
    name = (f"{_safe_name(data_space(data).name)}-{data.height}x{data.width}-{data.resize}-{len(samples)}-"
            f"{cache_digest(samples, data)[:20]}")
    return Path(data.cache_dir).expanduser() / name


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "labels"


def _open_cache(folder: Path, samples: list[Sample], data: DataConfig) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        images = np.load(folder / "images.npy", mmap_mode="r")
        labels = np.load(folder / "labels.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    n, h, w = len(samples), data.height, data.width
    if (meta.get("keys") != [s.key for s in samples] or images.shape != (n, h, w, 3)
            or labels.shape != (n, h, w)):
        return None
    return images, labels


def _build_cache(folder: Path, samples: list[Sample], data: DataConfig, progress: bool) -> None:
    """Decode every sample into ``folder`` (built beside it, then renamed into place)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        n, h, w = len(samples), data.height, data.width
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, h, w, 3))
        labels = np.lib.format.open_memmap(tmp / "labels.npy", mode="w+", dtype=np.uint8, shape=(n, h, w))
        _decode_into(samples, data, images, labels, progress, f"caching {n} samples")
        images.flush()
        labels.flush()
        del images, labels
        write_json_atomic(tmp / "meta.json", {"format": CACHE_FORMAT, "keys": [s.key for s in samples],
                                              "height": h, "width": w, "resize": data.resize,
                                              "class_space": data_space(data).name})
        if folder.exists():
            if _open_cache(folder, samples, data) is not None:
                return  # another process finished the same entry first: keep theirs
            shutil.rmtree(folder, ignore_errors=True)  # a broken entry
        os.rename(tmp, folder)
    except OSError as exc:
        raise DatasetError(f"{folder.parent}: cannot write the data cache ({exc}); free disk space, "
                           "set data.cache_dir to a writable folder, or null to disable the cache") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_arrays(samples: list[Sample], data: DataConfig, *,
                progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N,H,W,3 RGB) and labels (N,H,W class indices, ignore 255) of ``samples``.

    From the on-disk cache (memory-mapped, built on first use), or decoded into memory when
    ``data.cache_dir`` is None.
    """
    _require_labels(samples)
    folder = cache_path(samples, data)
    if folder is None:
        n, h, w = len(samples), data.height, data.width
        images, labels = np.empty((n, h, w, 3), np.uint8), np.empty((n, h, w), np.uint8)
        _decode_into(samples, data, images, labels, progress, f"decoding {n} samples")
        return images, labels
    cached = _open_cache(folder, samples, data)
    if cached is None:
        log.info("building the data cache %s", folder)
        _build_cache(folder, samples, data, progress)
        cached = _open_cache(folder, samples, data)
        if cached is None:
            raise DatasetError(f"{folder}: the data cache just built cannot be read back; "
                               "delete the folder and retry, or set data.cache_dir to null")
    return cached


# --------------------------------------------------------------------------------------------
# Statistics of the training split.
# --------------------------------------------------------------------------------------------

def fit_normalization(samples: list[Sample], data: DataConfig) -> Normalization:
    """'scale': pixel/255. 'mean_std': per-channel mean/std of ``samples`` (pass the TRAINING split)."""
    if data.normalization == "scale":
        return Normalization()
    images, _ = load_arrays(samples, data)
    hist = np.zeros((3, 256), np.int64)
    for start in range(0, len(images), _CHUNK):
        chunk = np.asarray(images[start:start + _CHUNK])
        for c in range(3):
            hist[c] += np.bincount(chunk[..., c].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    total = hist.sum(axis=1)
    mean = (hist * values).sum(axis=1) / total
    var = (hist * values ** 2).sum(axis=1) / total - mean ** 2
    std = np.sqrt(np.maximum(var, 1e-12))
    return Normalization(scale=1.0 / 255.0, mean=tuple(float(m) for m in mean),
                         std=tuple(float(s) for s in std))


def class_pixel_counts(samples: list[Sample], data: DataConfig) -> np.ndarray:
    """int64[num_classes]: pixels of each class in ``samples`` at training resolution (ignore excluded)."""
    _, labels = load_arrays(samples, data)
    counts = np.zeros(256, np.int64)
    for start in range(0, len(labels), _CHUNK):
        counts += np.bincount(np.asarray(labels[start:start + _CHUNK]).ravel(), minlength=256)
    return counts[: data_space(data).num_classes]


# --------------------------------------------------------------------------------------------
# tf.data.
# --------------------------------------------------------------------------------------------

def make_dataset(samples: list[Sample], cfg: DatasetSettings, normalization: Normalization, training: bool,
                 *, progress: bool = True):
    """A tf.data.Dataset of (float32 images (B,H,W,3), int32 labels (B,H,W)), one pass per epoch.

    Images are normalised exactly as ``cityseg.preprocess.normalize``. ``training=True`` shuffles
    (seeded by ``cfg.seed``) and augments (``cfg.augment``); both are batched and prefetched.
    """
    import tensorflow as tf

    from cityseg.data.augment import augment, check_augment

    data = cfg.data
    _require_labels(samples)
    h, w = data.height, data.width
    fetch = _fetcher(samples, data, progress)

    def load(index):
        image, label = tf.numpy_function(fetch, [index], (tf.uint8, tf.uint8), stateful=False)
        image = tf.cast(tf.ensure_shape(image, (h, w, 3)), tf.float32)
        return image, tf.cast(tf.ensure_shape(label, (h, w)), tf.int32)

    ds = tf.data.Dataset.range(len(samples))
    if training:
        ds = ds.shuffle(max(1, min(len(samples), data.shuffle_buffer)), seed=cfg.seed,
                        reshuffle_each_iteration=True)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        check_augment(cfg.augment)
        ignore = data_space(data).target_ignore_index
        pad = ignore if ignore is not None else 0
        seeds = tf.data.Dataset.random(seed=cfg.seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda pair, seed: augment(pair[0], pair[1], seed, cfg.augment, pad),
            num_parallel_calls=tf.data.AUTOTUNE)
    mul, off = (tf.constant(v) for v in normalization.coefficients())
    ds = ds.batch(data.batch_size).map(lambda x, y: (x * mul + off, y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _fetcher(samples: list[Sample], data: DataConfig, progress: bool):
    """index -> (uint8 image, uint8 label): from the cache memmaps, or by decoding the PNGs."""
    if data.cache_dir is None:
        return lambda index: decode_sample(samples[int(index)], data)
    images, labels = load_arrays(samples, data, progress=progress)
    return lambda index: (np.asarray(images[int(index)]), np.asarray(labels[int(index)]))

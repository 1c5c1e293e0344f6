"""The data of a run: splits, normalisation and class weights fitted on train, tf.data datasets."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cityseg.config import from_mapping, to_mapping
from cityseg.labels import LabelSet
from cityseg.preprocess import Normalization
from cityseg.training.config import TrainConfig
from cityseg.training.run_state import RunState, TrainingError


@dataclass
class RunData:
    """The datasets and data-derived facts of a run."""

    train: Any
    """tf.data.Dataset of the training split (one pass per epoch, or repeated)."""
    validation: Any
    validation_split: str
    train_count: int
    validation_count: int
    steps_per_epoch: int
    normalization: Normalization
    class_weights: Any
    """float weights per class for weighted_ce, else None."""
    preview_images: Any
    preview_labels: Any


Share = Callable[[Callable[[], Any], int], np.ndarray]
"""``share(compute, size)``: the float values of ``compute()`` run once (on the chief) and handed
to every worker; ``size`` is how many values it returns."""


def compute_here(compute: Callable[[], Any], size: int) -> np.ndarray:
    """The :data:`Share` of a single process: compute locally."""
    return np.asarray(compute(), dtype=np.float64).reshape(size)


def prepare_data(cfg: TrainConfig, space: LabelSet, state: RunState, *, progress: bool = True,
                 share: Share = compute_here) -> RunData:
    """Splits -> normalisation (fitted on train) -> class weights -> tf.data datasets.

    Normalisation statistics and class weights are computed once through ``share`` (by the chief
    of a multi-worker run) so every worker trains with the same values.
    """
    from cityseg.data.layouts import make_splits, validation_split
    from cityseg.data.pipeline import class_pixel_counts, fit_normalization, load_arrays, make_dataset

    splits = make_splits(cfg.data)
    val_name = validation_split(cfg.data)
    train_samples, val_samples = splits.get("train", []), splits.get(val_name, [])
    where = cfg.data.root or "the data root"
    if not train_samples or not val_samples:
        raise TrainingError(f"{where}: the {cfg.data.split} split has {len(train_samples)} training "
                            f"and {len(val_samples)} {val_name} samples; training needs both - check "
                            "--data-root / data.root and data.max_samples")
    if state.normalization is None:
        values = share(lambda: normalization_vector(fit_normalization(train_samples, cfg.data)), 7)
        normalization = Normalization(float(values[0]), tuple(map(float, values[1:4])),
                                      tuple(map(float, values[4:7])))
        state.normalization = to_mapping(normalization)
    else:
        normalization = from_mapping(Normalization, state.normalization, where="state.normalization")
    weights = None
    if cfg.loss.name == "weighted_ce" or cfg.loss.weight_ce:
        from cityseg.training.losses import class_weights

        weights = share(lambda: class_weights(class_pixel_counts(train_samples, cfg.data),
                                              cfg.loss.class_weights), space.num_classes)
        weights = weights.astype(np.float32)
    train_ds = make_dataset(train_samples, cfg, normalization, training=True, progress=progress)
    val_ds = make_dataset(val_samples, cfg, normalization, training=False, progress=progress)
    steps = cfg.steps_per_epoch or batches_per_pass(train_ds, len(train_samples), cfg.data.batch_size)
    if cfg.steps_per_epoch:
        train_ds = train_ds.repeat()  # epochs of a fixed step count, independent of the split size
    images = labels = None
    if cfg.preview_count > 0:  # the validation split's cache entry (memory-mapped), first samples
        images, labels = (np.array(a[:cfg.preview_count])
                          for a in load_arrays(val_samples, cfg.data, progress=progress))
    return RunData(train_ds, val_ds, val_name, len(train_samples), len(val_samples), steps,
                   normalization, weights, images, labels)


def batches_per_pass(dataset, count: int, batch_size: int) -> int:
    """Batches in one pass of ``dataset`` (its cardinality, else ceil(count / batch_size))."""
    cardinality = int(dataset.cardinality())
    return cardinality if cardinality > 0 else max(1, math.ceil(count / batch_size))


def normalization_vector(normalization: Normalization) -> list[float]:
    """[scale, mean x3, std x3]: a Normalization as 7 floats (to share between workers)."""
    return [normalization.scale, *normalization.mean, *normalization.std]

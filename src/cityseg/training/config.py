"""The training config (`cityseg train --config FILE`): its schema and how a YAML file becomes one.

:class:`TrainConfig` gathers the sections; ``data`` and ``augment`` are :mod:`cityseg.data.config`.
:func:`load_train_config` resolves the ``base:`` chain, makes a relative label-set path absolute
against the file naming it, and fills the schema through the generic :func:`cityseg.config.from_mapping`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cityseg.config import ConfigError, from_mapping, load_yaml, merge_mappings
from cityseg.data.config import AugmentConfig, DataConfig
from cityseg.labels import builtin_name


@dataclass
class ModelConfig:
    name: str = "unet_lite"
    """A name registered in cityseg.models (see `docs/MODELS.md`)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the model builder (width, depth, dropout, upsampling, ...)."""
    batchnorm_momentum: float | None = None
    """Momentum of every BatchNormalization's moving statistics (None: the model's own, Keras'
    0.99). Short runs (a few hundred steps) need ~0.9, or validation uses stale statistics."""


@dataclass
class LossConfig:
    name: Literal["ce", "weighted_ce", "dice", "ce_dice"] = "ce"
    class_weights: Literal["study_rank", "inverse", "median", "enet"] = "median"
    """weighted_ce (and ce / ce_dice with weight_ce): the study's rank weights (6,5,5,4,4,3,3,2x8),
    inverse or median frequency, or ENet's 1/ln(1.02 + p), from the training split's pixel counts."""
    weight_ce: bool = False
    """ce / ce_dice: weight the cross-entropy term by ``class_weights`` too (weighted_ce always
    does): rare thin classes (poles, signs, cyclists) count more (SegNet's CamVid recipe)."""
    dice_smooth: float = 1.0
    dice_weight: float = 1.0
    """ce_dice only: total = ce + dice_weight * dice."""


@dataclass
class OptimizerConfig:
    name: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    clipnorm: float | None = None

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise ValueError(f"optimizer.learning_rate must be > 0, got {self.learning_rate}")
        if self.weight_decay < 0 or self.clipnorm is not None and not self.clipnorm > 0:
            raise ValueError("optimizer.weight_decay must be >= 0 and optimizer.clipnorm > 0 (or null)")


@dataclass
class ScheduleConfig:
    lr: Literal["constant", "step", "poly", "cosine"] = "constant"
    step_epochs: tuple[int, ...] = (20,)
    """step: epochs at which the rate is multiplied by step_factor (the study: 1e-3 -> 1e-4 at 20)."""
    step_factor: float = 0.1
    warmup_epochs: float = 0.0
    poly_power: float = 0.9
    min_lr: float = 0.0
    dropout: dict[int, float] = field(default_factory=dict)
    """Epoch -> rate for every Dropout layer (the study: {13: 0.35, 22: 0.4})."""


@dataclass
class TrainConfig:
    """One training experiment. YAML keys mirror these fields; unknown keys are rejected."""

    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    epochs: int = 40
    steps_per_epoch: int | None = None
    seed: int = 0
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    """auto: float16 compute when a GPU is present."""
    distribute: Literal["none", "mirrored", "multi_worker"] = "none"
    """tf.distribute strategy: mirrored = all local GPUs; multi_worker = TF_CONFIG cluster."""
    preview_count: int = 2
    """Validation samples drawn in the per-epoch prediction preview PNG."""
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ValueError("epochs must be positive")
        crop = self.augment.crop
        if crop is not None and (crop[0] > self.data.height or crop[1] > self.data.width):
            raise ValueError(f"augment.crop {list(crop)} is larger than the training size "
                             f"{self.data.height}x{self.data.width} (data.height, data.width)")


BASE_KEY = "base"
"""Top-level key of a training config naming another config (relative path) merged underneath."""


def load_layered_yaml(path: str | Path, schema: type | None = None,
                      _chain: tuple[Path, ...] = ()) -> dict:
    """A YAML mapping with its ``base:`` chain resolved (bases underneath, this file's keys win).

    ``base`` is a path relative to the file that names it. With ``schema``, every file of the chain
    is checked on its own first, so an unknown key is reported with the file it is in.
    """
    p = Path(path)
    resolved = p.resolve()
    if resolved in _chain:
        cycle = " -> ".join(str(c) for c in (*_chain, resolved))
        raise ConfigError(f"{p}: the base chain {cycle} is a cycle; a config may not be its own "
                          "base - fix the `base:` key of one of them")
    data = resolve_label_set_path(load_yaml(p), p)
    base = data.pop(BASE_KEY, None)
    if schema is not None:
        from_mapping(schema, data, where=str(p))
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{p}.{BASE_KEY}: expected the relative path of another config file, "
                          f"got {base!r}")
    base_path = p.parent / base
    if not base_path.is_file():
        raise ConfigError(f"{p}.{BASE_KEY}: {base_path} does not exist; `base:` is a path "
                          "relative to the config that names it")
    return merge_mappings(load_layered_yaml(base_path, schema, (*_chain, resolved)), data)


def resolve_label_set_path(data: dict, path: Path) -> dict:
    """``data`` with a relative label-set YAML in ``data.class_space`` made absolute against the
    folder of the config file ``path`` (like ``base:``); built-in set names stay as they are."""
    section = data.get("data")
    value = section.get("class_space") if isinstance(section, dict) else None
    if not isinstance(value, str):
        return data
    if builtin_name(value) is not None or Path(value).is_absolute():
        return data
    return {**data, "data": {**section, "class_space": str((path.parent / value).resolve())}}


def load_train_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Read a TrainConfig from YAML (or defaults when ``path`` is None); apply dotted overrides.

    A ``base: OTHER.yaml`` key merges that config underneath (see :func:`load_layered_yaml`).
    ``overrides`` keys use '__' for nesting: ``load_train_config(p, data__root="/data")``.
    """
    data = load_layered_yaml(path, TrainConfig) if path is not None else {}
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return from_mapping(TrainConfig, data, where=str(path) if path else "")


def shipped_config(relative: str) -> Path:
    """A training config shipped with cityseg (e.g. 'demo.yaml', 'seed/v01.yaml').

    Looked up in the source checkout's training_configs/, then where pip or colcon installed them
    (<prefix>/share/cityseg/training_configs, prefixes from sys.prefix and AMENT_PREFIX_PATH).
    """
    import os
    import sys

    prefixes = [sys.prefix, *filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep))]
    candidates = [Path(__file__).resolve().parents[3] / "training_configs" / relative]
    candidates += [Path(p) / "share" / "cityseg" / "training_configs" / relative for p in prefixes]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"shipped config {relative!r} not found (looked in "
                      f"{', '.join(str(c.parent) for c in candidates)}); reinstall cityseg")

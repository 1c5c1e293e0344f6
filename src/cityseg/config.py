"""Typed configuration: dataclasses filled from YAML/JSON mappings, unknown keys rejected.

:func:`from_mapping` is the one loader every config and the model card go through; it checks
types of scalars, recurses into nested dataclasses, converts lists to tuples where the field is
a tuple, and reports the dotted path of any bad or unknown key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from cityseg.errors import CitysegError

T = TypeVar("T")


class ConfigError(CitysegError):
    """A configuration file or mapping does not match its schema."""


def shipped_config(relative: str) -> Path:
    """A training config shipped with cityseg (e.g. 'demo.yaml', 'seed/v01.yaml').

    Looked up in the source checkout's training_configs/, then where pip or colcon installed them
    (<prefix>/share/cityseg/training_configs, prefixes from sys.prefix and AMENT_PREFIX_PATH).
    """
    import os
    import sys

    prefixes = [sys.prefix, *filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep))]
    candidates = [Path(__file__).resolve().parents[2] / "training_configs" / relative]
    candidates += [Path(p) / "share" / "cityseg" / "training_configs" / relative for p in prefixes]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"shipped config {relative!r} not found (looked in "
                      f"{', '.join(str(c.parent) for c in candidates)}); reinstall cityseg")


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping from ``path`` with an actionable error on failure."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file; check the path")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                          "re-save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys, found {type(data).__name__}")
    return data


def to_mapping(obj: Any) -> Any:
    """A dataclass (recursively) as plain dicts/lists, ready for YAML or JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj


def from_mapping(cls: type[T], data: Any, *, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; raise ConfigError naming the key on any mismatch."""
    label = where or cls.__name__
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{label}: unknown key(s) {', '.join(map(str, unknown))}; "
                          f"allowed: {', '.join(fields)}")
    kwargs = {}
    for name in fields:
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], f"{label}.{name}" if where else name)
    missing = [n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{label}: missing required key(s) {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{label}: {exc}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {hint}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, where=where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_t, val_t = args if args else (Any, Any)
        return {_convert(key_t, k, f"{where}.{k}"): _convert(val_t, v, f"{where}.{k}") for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# The training configuration schema (`cityseg train --config FILE`).
# --------------------------------------------------------------------------------------------

@dataclass
class DataConfig:
    """Where the data is, how it is split, and how frames become network input."""

    root: str | None = None
    """Cityscapes root (holding leftImg8bit/ and gtFine/); `--data-root` overrides it."""
    split: Literal["official", "study"] = "official"
    """official: train / val; study: train+val pooled, sorted, split 60/15/25 (train/dev/test)."""
    split_seed: int | None = None
    """study split only: None keeps the study's sorted order; an int shuffles with that seed."""
    study_order: Literal["key", "path"] = "key"
    """study split only: sort the pool by city_seq_frame key (cities of train and val interleave),
    or by file path as the study did (then train and dev come from the official train folder and
    its test split holds all 500 official val images)."""
    class_space: str = "trainid"
    """What the network learns: 'trainid' (19 classes), 'labelid' (34), or a label-set YAML file
    (classes with id/name/color, a label_map from the dataset's labelIds; a relative path is
    resolved against the config file naming it). See docs/TRAINING.md."""
    height: int = 256
    width: int = 512
    resize: Literal["lanczos3", "area", "bilinear"] = "lanczos3"
    normalization: Literal["scale", "mean_std"] = "scale"
    """scale: pixel/255; mean_std: per-channel mean/std measured on the training split only."""
    batch_size: int = 8
    shuffle_buffer: int = 1024
    cache_dir: str | None = "~/.cache/cityseg"
    """Preprocessed uint8 cache at training resolution; null disables it."""
    max_samples: int | None = None
    """Use only the first N samples of each split (quick experiments)."""

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0 or self.batch_size <= 0:
            raise ValueError("data.height, data.width and data.batch_size must be positive")
        from cityseg.errors import InputError
        from cityseg.labels import load_label_set

        try:
            load_label_set(self.class_space)
        except InputError as exc:
            raise ValueError(f"data.class_space: {exc}") from None


@dataclass
class AugmentConfig:
    """Training-time augmentation, applied per sample in the data pipeline (never at inference)."""

    photometric_prob: float = 0.0
    """Probability that a sample gets the photometric set below (the study: 0.5)."""
    hue: float = 0.0
    """Max hue delta (the study: 0.1)."""
    brightness: float = 0.0
    """Max brightness delta, in [0, 1] pixel units."""
    contrast: tuple[float, float] | None = None
    """Contrast factor range, e.g. [0.8, 1.2]."""
    saturation: tuple[float, float] | None = None
    """Saturation factor range, e.g. [0.8, 1.2]."""
    hflip_prob: float = 0.0
    vflip_prob: float = 0.0
    """Up-down flip: the study's "bad" augmentation, kept for the ablation."""
    scale_crop_prob: float = 0.0
    scale_range: tuple[float, float] = (0.75, 1.5)
    """Random scale then crop back to the training size (modern Cityscapes recipes)."""

    def __post_init__(self) -> None:
        probs = (self.photometric_prob, self.hflip_prob, self.vflip_prob, self.scale_crop_prob)
        if any(not 0.0 <= p <= 1.0 for p in probs):
            raise ValueError("augment probabilities must be within [0, 1]")


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
    class_weights: Literal["study_rank", "inverse", "median"] = "median"
    """weighted_ce only: the study's rank weights (6,5,5,4,4,3,3,2x8), inverse or median frequency."""
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


BASE_KEY = "base"
"""Top-level key of a training config naming another config (relative path) merged underneath."""


def merge_mappings(base: dict, override: dict) -> dict:
    """``override`` on top of ``base``: nested mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_mappings(merged[key], value)
        else:
            merged[key] = value
    return merged


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
    from cityseg.labels import builtin_name

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

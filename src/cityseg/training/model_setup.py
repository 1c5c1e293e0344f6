"""The model of a run: built (one function for training and for the bundle), compiled, restored."""

from __future__ import annotations

import logging
from pathlib import Path

from cityseg.config import ConfigError
from cityseg.labels import LabelSet
from cityseg.training.config import OptimizerConfig, TrainConfig
from cityseg.training.run_state import STATE_FILE, RunState, TrainingError
from cityseg.training.version_fence import check_versions

log = logging.getLogger(__name__)


def build_run_model(cfg: TrainConfig, space: LabelSet, *, sync_batchnorm: bool = False,
                    any_size: bool = False):
    """The configured architecture with the configured BatchNorm momentum (float32 or the dtype
    policy in force). ``sync_batchnorm``: batch statistics over all replicas (the global batch).
    ``any_size``: for training on ``augment.crop`` crops and validating on whole frames (checked
    first: the crop must suit the model's stride)."""
    from cityseg.models import ModelError, build_model

    shape = (cfg.data.height, cfg.data.width, 3)
    if any_size:
        build_model(cfg.model.name, (*cfg.augment.crop, 3), space.num_classes, **cfg.model.params)
        shape = (None, None, 3)
    try:
        model = build_model(cfg.model.name, shape, space.num_classes, **cfg.model.params)
    except (ModelError, ValueError, TypeError) as exc:
        if not any_size:
            raise
        raise ConfigError(f"augment.crop: model {cfg.model.name} cannot be built for any input size "
                          f"({exc}); train it without augment.crop") from None
    if cfg.model.batchnorm_momentum is not None:
        set_batchnorm_momentum(model, cfg.model.batchnorm_momentum)
    if sync_batchnorm:
        for layer in batchnorm_layers(model):
            layer.synchronized = True  # read at call time: set before the first step is traced
    return model


def batchnorm_layers(model) -> list:
    """Every BatchNormalization layer of ``model``, nested ones included (through the private
    ``_flatten_layers``: Keras has no public recursive walk; see :mod:`cityseg.training.version_fence`)."""
    import keras

    check_versions("finding nested BatchNormalization layers (cityseg.training.model_setup.batchnorm_layers)")
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


def build_and_compile(cfg: TrainConfig, space: LabelSet, *, steps_per_epoch: int, class_weights,
                      sync_batchnorm: bool = False):
    """Build the run's model and compile it with loss, optimizer (+ LR schedule) and metrics."""
    from cityseg.training.losses import make_loss
    from cityseg.training.metrics import keras_metrics
    from cityseg.training.schedules import make_lr_schedule

    model = build_run_model(cfg, space, sync_batchnorm=sync_batchnorm, any_size=cfg.augment.crop is not None)
    schedule = make_lr_schedule(cfg.schedule, cfg.optimizer.learning_rate, steps_per_epoch,
                                cfg.epochs)
    model.compile(optimizer=make_optimizer(cfg.optimizer, schedule),
                  loss=make_loss(cfg.loss, space.num_classes, space.target_ignore_index, class_weights),
                  metrics=keras_metrics(space.num_classes, space.target_ignore_index))
    return model


def set_batchnorm_momentum(model, momentum: float) -> int:
    """Set the moving-statistics momentum of every BatchNormalization layer; return how many.

    Must run before the first training step is traced (Keras reads it as a constant).
    """
    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"model.batchnorm_momentum must be within [0, 1), got {momentum}")
    layers = batchnorm_layers(model)
    for layer in layers:
        layer.momentum = float(momentum)
    return len(layers)


def make_optimizer(opt: OptimizerConfig, learning_rate):
    """Adam / AdamW / SGD (momentum) with optional gradient clipping and weight decay."""
    import keras

    common = {"learning_rate": learning_rate, "clipnorm": opt.clipnorm}
    decay = opt.weight_decay or None
    if opt.name == "adam":
        return keras.optimizers.Adam(weight_decay=decay, **common)
    if opt.name == "adamw":
        return keras.optimizers.AdamW(weight_decay=opt.weight_decay, **common)
    return keras.optimizers.SGD(momentum=opt.momentum, weight_decay=decay, **common)


def restore_checkpoint(model, path: Path, state: RunState) -> None:
    """Load weights and optimizer state (iteration counter included) from ``path``."""
    import keras

    model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(path)
    except Exception as exc:  # Keras raises many types for mismatched or corrupt files
        raise TrainingError(f"{path}: cannot restore the checkpoint ({exc}); it does not match this "
                            "config's model, or it is damaged - start the run again with --force") from None
    steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    if steps != state.iterations:
        log.warning("%s holds optimizer step %d but %s records %d; the run was interrupted while "
                    "saving - continuing from the checkpoint's step", path, steps, STATE_FILE,
                    state.iterations)
    log.info("resuming from %s: epoch %d done, optimizer step %d", path, state.epochs_done, steps)


def check_dropout_schedule(cfg: TrainConfig, model) -> None:
    """A dropout schedule needs ScheduledDropout layers to act on."""
    from cityseg.models import dropout_layers
    from cityseg.training.schedules import validate_dropout_schedule

    if not cfg.schedule.dropout:
        return
    try:
        validate_dropout_schedule(cfg.schedule.dropout)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not dropout_layers(model):
        raise TrainingError(f"schedule.dropout is set but model {cfg.model.name!r} (params "
                            f"{cfg.model.params}) has no dropout layers; enable its dropout in "
                            "model.params or remove schedule.dropout")

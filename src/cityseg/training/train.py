"""The training run: config -> data -> model -> ``fit`` with callbacks -> model bundle.

Run directory (``out_dir``)::

    config.yaml                 the resolved config of the run (what --resume compares against)
    checkpoints/last.keras      model + optimizer state after the last good epoch
    checkpoints/best.keras      the epoch with the best validation mIoU
    checkpoints/state.json      epochs done, optimizer step, best metric, history so far
    history.csv                 one row of logged values per epoch (Keras CSVLogger)
    history.png                 loss / pixel accuracy / Dice / mIoU, train vs val
    previews/epoch_NNN.png      image | ground truth | prediction for fixed validation samples
    tensorboard/                TensorBoard event files (config: tensorboard)
    bundle/                     model.json + model.keras: the deliverable (best checkpoint)

Read top-down: :func:`train` is the whole story; the helpers below it each do one step.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from cityseg.bundle import CARD_FILE, Artifact, Bundle, ModelCard, framework_versions
from cityseg.config import (ConfigError, OptimizerConfig, TrainConfig, from_mapping,
                            load_train_config, to_mapping)
from cityseg.fileio import atomic_path, write_bytes_atomic
from cityseg.labels import ClassSpace, class_space
from cityseg.preprocess import Normalization
from cityseg.training.callbacks import (BEST_CHECKPOINT, LAST_CHECKPOINT, STATE_FILE,
                                        RunState, TrainingError)

log = logging.getLogger(__name__)

MONITOR = "val_miou"
"""The validation metric that selects the best checkpoint (higher is better)."""

RESUME_MAY_CHANGE = ("epochs", "data.root", "data.cache_dir", "tensorboard", "preview_count")
"""Config keys that may differ between a run and its resumption."""


class TrainingDiverged(TrainingError):
    """The loss became NaN or Inf; the run stopped and kept its last good checkpoint."""


@dataclass(frozen=True)
class RunPaths:
    """Where each output of a run lives."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT

    @property
    def best(self) -> Path:
        return self.checkpoints / BEST_CHECKPOINT

    @property
    def state(self) -> Path:
        return self.checkpoints / STATE_FILE

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def history_csv(self) -> Path:
        return self.root / "history.csv"

    @property
    def history_png(self) -> Path:
        return self.root / "history.png"

    @property
    def previews(self) -> Path:
        return self.root / "previews"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    def outputs(self) -> tuple[Path, ...]:
        """Everything a run writes (what --force deletes; nothing else in the directory)."""
        return (self.checkpoints, self.config, self.history_csv, self.history_png, self.previews,
                self.tensorboard, self.bundle)


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


def train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
          force: bool = False, extra_callbacks: Sequence[Any] = ()) -> Bundle:
    """Train ``cfg`` into ``out_dir`` and return the model bundle written at the end.

    ``resume`` continues the run in ``out_dir`` from ``checkpoints/last.keras``; ``force`` deletes a
    previous run's outputs there first. Without either, a non-empty ``out_dir`` is refused.
    ``extra_callbacks`` are appended after the run's own Keras callbacks.
    Raises TrainingDiverged if the loss becomes NaN/Inf (``last.keras`` keeps the last good epoch).
    """
    import keras

    paths = RunPaths(Path(out_dir))
    state = prepare_run_dir(paths, cfg, resume=resume, force=force)
    strategy = make_strategy(cfg.distribute)  # first: multi-worker must precede other TF ops
    keras.utils.set_random_seed(cfg.seed + state.epochs_done)
    space = class_space(cfg.data.class_space)
    data = prepare_data(cfg, space, state, progress=progress)
    write_run_config(paths, cfg)
    mixed = use_mixed_precision(cfg.mixed_precision)
    log.info("%s: %s on %d train / %d %s samples, %d steps per epoch, %s, %d replica(s), "
             "mixed precision %s", cfg.name, cfg.model.name, data.train_count, data.validation_count,
             data.validation_split, data.steps_per_epoch, cfg.distribute, strategy.num_replicas_in_sync,
             "on" if mixed else "off")
    if state.epochs_done < cfg.epochs:
        with dtype_policy("mixed_float16" if mixed else "float32"):
            with strategy.scope():
                model = build_and_compile(cfg, space, data)
                if state.epochs_done:
                    restore_checkpoint(model, paths.last, state)
            check_dropout_schedule(cfg, model)
            guard, callbacks = make_callbacks(cfg, paths, state, data, space, model,
                                              chief=is_chief(strategy))
            model.fit(data.train, validation_data=data.validation, epochs=cfg.epochs,
                      initial_epoch=state.epochs_done, steps_per_epoch=cfg.steps_per_epoch,
                      shuffle=False,  # the training dataset shuffles itself
                      callbacks=[*callbacks, *extra_callbacks], verbose=fit_verbosity(progress))
        if guard.failure is not None:
            raise TrainingDiverged(diverged_message(guard.failure, paths, state))
    if not is_chief(strategy):
        return None  # type: ignore[return-value]  # only the chief writes the bundle
    bundle = write_bundle(paths, cfg, space, state, data, mixed=mixed,
                          replicas=strategy.num_replicas_in_sync)
    log.info("best %s %.4f at epoch %s; bundle written to %s", state.monitor, state.best_value,
             state.best_epoch, bundle.path)
    return bundle


# --------------------------------------------------------------------------------------------
# Run directory
# --------------------------------------------------------------------------------------------

def prepare_run_dir(paths: RunPaths, cfg: TrainConfig, *, resume: bool, force: bool) -> RunState:
    """Check ``paths.root`` may be used and return the state to start from (empty for a new run)."""
    root = paths.root
    if root.exists() and not root.is_dir():
        raise TrainingError(f"{root}: exists and is not a directory; choose another output directory")
    if resume and force:
        raise TrainingError("--resume continues a run and --force deletes it: pass only one of them")
    if resume:
        return resumable_state(paths, cfg)
    if root.is_dir() and any(root.iterdir()):
        if not force:
            raise TrainingError(f"{root}: the run directory is not empty; pass --resume to continue "
                                "the run in it, --force to start it over (deleting its previous "
                                "outputs), or choose another output directory")
        clear_run_outputs(paths)
    root.mkdir(parents=True, exist_ok=True)
    return RunState(monitor=MONITOR)


def resumable_state(paths: RunPaths, cfg: TrainConfig) -> RunState:
    """The saved state of the run in ``paths``, after checking ``cfg`` may continue it."""
    if not paths.last.is_file() or not paths.state.is_file():
        raise TrainingError(f"{paths.root}: nothing to resume - {paths.last} or {paths.state.name} is "
                            "missing (no epoch was completed); start the run again with --force")
    check_resume_config(paths.config, cfg)
    state = RunState.load(paths.state)
    if state.epochs_done >= cfg.epochs and (paths.bundle / CARD_FILE).is_file():
        raise TrainingError(f"{paths.root}: the run has already trained {state.epochs_done} epochs "
                            f"(the config asks for {cfg.epochs}); pass --epochs N with N > "
                            f"{state.epochs_done} to train it further")
    return state


def check_resume_config(saved_path: Path, cfg: TrainConfig) -> None:
    """Refuse to resume a run with a config that differs beyond RESUME_MAY_CHANGE."""
    if not saved_path.is_file():
        raise TrainingError(f"{saved_path}: the run's config is missing; cannot check that the "
                            "resumed run trains the same experiment - start it again with --force")
    saved = _flatten(to_mapping(load_train_config(saved_path)))
    given = _flatten(to_mapping(cfg))
    changed = sorted(k for k in set(saved) | set(given)
                     if saved.get(k) != given.get(k) and k not in RESUME_MAY_CHANGE)
    if changed:
        details = "; ".join(f"{k}: {saved.get(k)!r} in the run, {given.get(k)!r} now" for k in changed)
        raise TrainingError(f"cannot resume {saved_path.parent}: the config differs from the run's "
                            f"({details}); resume with the run's own config ({saved_path}) or start "
                            "a new run")


def _flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def clear_run_outputs(paths: RunPaths) -> None:
    """Delete a previous run's outputs (and nothing else) from ``paths.root``."""
    for path in paths.outputs():
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def write_run_config(paths: RunPaths, cfg: TrainConfig) -> None:
    """Write the resolved config as ``config.yaml`` (a comment header, then plain YAML)."""
    text = yaml.safe_dump(to_mapping(cfg), sort_keys=False)
    write_bytes_atomic(paths.config, f"# resolved config of run {cfg.name!r} (cityseg train)\n{text}".encode())


# --------------------------------------------------------------------------------------------
# Data, model, optimizer
# --------------------------------------------------------------------------------------------

def prepare_data(cfg: TrainConfig, space: ClassSpace, state: RunState, *,
                 progress: bool = True) -> RunData:
    """Splits -> normalisation (fitted on train) -> class weights -> tf.data datasets."""
    from cityseg.data.cityscapes import make_splits, validation_split
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
        normalization = fit_normalization(train_samples, cfg.data)
        state.normalization = to_mapping(normalization)
    else:
        normalization = from_mapping(Normalization, state.normalization, where="state.normalization")
    weights = None
    if cfg.loss.name == "weighted_ce":
        from cityseg.training.losses import class_weights

        weights = class_weights(class_pixel_counts(train_samples, cfg.data), cfg.loss.class_weights)
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


def build_and_compile(cfg: TrainConfig, space: ClassSpace, data: RunData):
    """Build the configured model and compile it with loss, optimizer (+ LR schedule) and metrics."""
    from cityseg.models import build_model
    from cityseg.training.losses import make_loss
    from cityseg.training.metrics import keras_metrics
    from cityseg.training.schedules import make_lr_schedule

    model = build_model(cfg.model.name, (cfg.data.height, cfg.data.width, 3), space.num_classes,
                        **cfg.model.params)
    if cfg.model.batchnorm_momentum is not None:
        set_batchnorm_momentum(model, cfg.model.batchnorm_momentum)
    schedule = make_lr_schedule(cfg.schedule, cfg.optimizer.learning_rate, data.steps_per_epoch,
                                cfg.epochs)
    model.compile(optimizer=make_optimizer(cfg.optimizer, schedule),
                  loss=make_loss(cfg.loss, space.num_classes, space.ignore_index, data.class_weights),
                  metrics=keras_metrics(space.num_classes, space.ignore_index))
    return model


def set_batchnorm_momentum(model, momentum: float) -> int:
    """Set the moving-statistics momentum of every BatchNormalization layer; return how many.

    Must run before the first training step is traced (Keras reads it as a constant).
    """
    import keras

    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"model.batchnorm_momentum must be within [0, 1), got {momentum}")
    layers = [layer for layer in model._flatten_layers(include_self=False)
              if isinstance(layer, keras.layers.BatchNormalization)]
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


# --------------------------------------------------------------------------------------------
# Devices: precision and distribution
# --------------------------------------------------------------------------------------------

def use_mixed_precision(setting: str, gpus: list | None = None) -> bool:
    """``on``/``off`` as given; ``auto`` only when TensorFlow sees a GPU."""
    if setting in ("on", "off"):
        return setting == "on"
    if gpus is None:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    return bool(gpus)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Set Keras' global dtype policy for the block, then restore the previous one."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def make_strategy(kind: str):
    """The tf.distribute strategy of ``distribute`` (the default strategy for 'none')."""
    import tensorflow as tf

    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi_worker":
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (RuntimeError, ValueError) as exc:
            raise TrainingError(f"cannot start MultiWorkerMirroredStrategy ({exc}); set TF_CONFIG "
                                "for every worker and run `cityseg train` in a fresh process") from None
    return tf.distribute.get_strategy()


def is_chief(strategy) -> bool:
    """True on the worker that writes checkpoints, plots and the bundle (always, for one worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not task_type:
        return True
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and resolver.task_id == 0 and not has_chief


# --------------------------------------------------------------------------------------------
# Callbacks and progress
# --------------------------------------------------------------------------------------------

def make_callbacks(cfg: TrainConfig, paths: RunPaths, state: RunState, data: RunData,
                   space: ClassSpace, model, *, chief: bool):
    """(NaN guard, callbacks in the order they must run). Only the chief writes files."""
    import keras

    from cityseg.training.callbacks import (DropoutScheduler, GoodEpochCSVLogger, HistoryPlot,
                                            LearningRateLogger, NonFiniteLossGuard,
                                            PredictionPreview, RunCheckpoint, rewrite_history_csv)

    guard = NonFiniteLossGuard()
    callbacks = [LearningRateLogger(), guard]
    if cfg.schedule.dropout:
        callbacks.append(DropoutScheduler(cfg.schedule.dropout, state))
    if not chief:
        return guard, callbacks
    if state.epochs_done:
        rewrite_history_csv(paths.history_csv, state.history)
    callbacks += [RunCheckpoint(paths.checkpoints, state, guard),
                  GoodEpochCSVLogger(guard, str(paths.history_csv), append=state.epochs_done > 0),
                  HistoryPlot(paths.history_png, state, guard, title=cfg.name)]
    if data.preview_images is not None and len(data.preview_images):
        callbacks.append(PredictionPreview(data.preview_images, data.preview_labels,
                                           data.normalization, space.palette, paths.previews, guard))
    if cfg.tensorboard and tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(str(paths.tensorboard), write_graph=False))
    return guard, callbacks


def tensorboard_available() -> bool:
    """True if tf.summary can write (the tensorboard package); else warn and say how to fix it."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        return True
    log.warning("TensorBoard logging skipped: the tensorboard package is not installed "
                "(pip install tensorboard), or set `tensorboard: false` in the config")
    return False


def fit_verbosity(progress: bool) -> int:
    """Keras verbosity: a progress bar on a terminal, one line per epoch in logs, or silence."""
    if not progress:
        return 0
    return 1 if sys.stdout.isatty() else 2


def diverged_message(failure: str, paths: RunPaths, state: RunState) -> str:
    kept = (f"{paths.last} keeps the last good epoch ({state.epochs_done})" if state.epochs_done
            else "no epoch completed, so no checkpoint was written")
    return (f"training diverged at {failure}; the run stopped and {kept}. Lower "
            "optimizer.learning_rate, set optimizer.clipnorm or add warm-up (schedule.warmup_epochs), "
            "check the data, then continue with --resume (or restart with --force)")


# --------------------------------------------------------------------------------------------
# The deliverable
# --------------------------------------------------------------------------------------------

def write_bundle(paths: RunPaths, cfg: TrainConfig, space: ClassSpace, state: RunState,
                 data: RunData, *, mixed: bool, replicas: int) -> Bundle:
    """Write ``bundle/`` from the best checkpoint: a float32 model.keras and its model card."""
    from cityseg.models import build_model

    checkpoint = paths.best if paths.best.is_file() else paths.last
    model = build_model(cfg.model.name, (cfg.data.height, cfg.data.width, 3), space.num_classes,
                        **cfg.model.params)  # float32, outside any strategy: the portable copy
    if cfg.model.batchnorm_momentum is not None:
        set_batchnorm_momentum(model, cfg.model.batchnorm_momentum)  # same layer config as trained
    model.load_weights(checkpoint)
    paths.bundle.mkdir(parents=True, exist_ok=True)
    with atomic_path(paths.bundle / "model.keras") as tmp:
        model.save(tmp)
    card = ModelCard(
        name=cfg.name, architecture=cfg.model.name, input_height=cfg.data.height,
        input_width=cfg.data.width, class_space=space.name, class_names=space.names,
        artifacts={"keras": Artifact("model.keras", "keras", "probabilities")},
        resize=cfg.data.resize, normalization=data.normalization,
        frameworks=framework_versions("tensorflow", "keras", "numpy"),
        metrics=card_metrics(state, data.validation_split, space.name),
        training=card_training(cfg, state, data, mixed=mixed, replicas=replicas))
    return Bundle.create(paths.bundle, card, overwrite=True)


def card_metrics(state: RunState, split: str, space_name: str) -> dict[str, Any]:
    """Validation metrics of the best epoch, plus the per-epoch validation curves."""
    best = state.history[state.best_epoch - 1] if state.best_epoch else {}
    metrics: dict[str, Any] = {k[len("val_"):]: v for k, v in best.items() if k.startswith("val_")}
    metrics.update({
        "split": split, "selected_by": state.monitor, "best_epoch": state.best_epoch,
        "note": f"Keras metrics at training resolution over the {space_name} classes; "
                "`cityseg evaluate` gives the official Cityscapes scores",
        "per_epoch": {k: [record.get(k) for record in state.history]
                      for k in ("val_miou", "val_pixel_accuracy", "val_dice", "val_loss")
                      if any(k in record for record in state.history)},
    })
    return metrics


def card_training(cfg: TrainConfig, state: RunState, data: RunData, *, mixed: bool,
                  replicas: int) -> dict[str, Any]:
    """What was trained and how: the config, epochs, steps, time, precision, replicas."""
    return {
        "config": to_mapping(cfg), "epochs": state.epochs_done, "optimizer_steps": state.iterations,
        "steps_per_epoch": data.steps_per_epoch, "train_seconds": round(state.train_seconds, 1),
        "train_samples": data.train_count, "validation_samples": data.validation_count,
        "validation_split": data.validation_split, "mixed_precision": mixed, "replicas": replicas,
    }

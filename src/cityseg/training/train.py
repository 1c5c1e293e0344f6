"""The training run: config -> data -> model -> ``fit`` with callbacks -> model bundle.

Read top-down: :func:`train` is the whole story; each step is a function here or in a sibling
module: ``run_dir`` (the output directory, resume), ``run_data`` (splits, normalisation,
datasets), ``model_setup`` (build, compile, restore), ``distribute`` (strategies, the chief,
what the workers agree on), ``callbacks`` (what happens after each epoch), ``deliverable`` (bundle/).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cityseg.bundle import Bundle
from cityseg.config import to_mapping
from cityseg.errors import CitysegError
from cityseg.labels import LabelSet
from cityseg.training.config import TrainConfig
from cityseg.training.distribute import (
    JOIN_TIMEOUT_S,
    WORKER_LOCAL_KEYS,
    agree,
    broadcast_from_chief,
    config_digest,
    is_chief,
    join_watchdog,
    make_strategy,
    num_workers,
)
from cityseg.training.run_data import RunData, Share, compute_here, prepare_data
from cityseg.training.run_dir import RunPaths, flatten, prepare_run_dir, resumable_state, write_run_config
from cityseg.training.run_state import MONITOR, RunState, TrainingError

log = logging.getLogger(__name__)


class TrainingDiverged(TrainingError):
    """The loss became NaN or Inf; the run stopped and kept its last good checkpoint."""


def train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
          force: bool = False, extra_callbacks: Sequence[Any] = (),
          join_timeout: float = JOIN_TIMEOUT_S) -> Bundle | None:
    """Train ``cfg`` into ``out_dir`` and return the model bundle written at the end.

    ``resume`` continues the run in ``out_dir`` from ``checkpoints/last.keras``; ``force`` deletes a
    previous run's outputs there first. Without either, a non-empty ``out_dir`` is refused.
    ``extra_callbacks`` are appended after the run's own Keras callbacks. In a multi-worker run
    only the chief writes ``out_dir`` and returns the bundle; other workers return None.
    Raises TrainingDiverged if the loss becomes NaN/Inf (``last.keras`` keeps the last good epoch).
    """
    import keras

    shared = RunPaths(Path(out_dir))
    with join_watchdog(cfg.distribute, join_timeout):
        strategy = make_strategy(cfg.distribute)  # before any other TF op
        paths, state = open_run(strategy, cfg, shared, resume=resume, force=force)
    try:
        keras.utils.set_random_seed(cfg.seed + state.epochs_done)
        from cityseg.data.pipeline import data_space

        space = data_space(cfg.data)
        data = prepare_data(cfg, space, state, progress=progress, share=chief_shares(strategy))
        write_run_config(paths, cfg)
        mixed = use_mixed_precision(cfg.mixed_precision)
        replicas = strategy.num_replicas_in_sync
        log.info("%s: %s on %d train / %d %s samples, %d steps per epoch, %s, %d replica(s), "
                 "mixed precision %s", cfg.name, cfg.model.name, data.train_count,
                 data.validation_count, data.validation_split, data.steps_per_epoch,
                 cfg.distribute, replicas, "on" if mixed else "off")
        if state.epochs_done < cfg.epochs:
            fit(cfg, strategy, paths, shared, state, data, space, mixed=mixed,
                extra_callbacks=extra_callbacks, progress=progress)
        if paths is not shared:
            return None  # only the chief writes the bundle
        from cityseg.training.bundle_writer import write_bundle

        bundle = write_bundle(paths, cfg, space, state, data, mixed=mixed, replicas=replicas)
        log.info("best %s %.4f at epoch %s; bundle written to %s", state.monitor, state.best_value,
                 state.best_epoch, bundle.path)
        return bundle
    finally:
        if paths is not shared:
            shutil.rmtree(paths.root, ignore_errors=True)


def open_run(strategy, cfg: TrainConfig, shared: RunPaths, *, resume: bool,
             force: bool) -> tuple[RunPaths, RunState]:
    """(where this process writes, the state to start from), once every worker agrees to start.

    The chief prepares ``shared`` (the run directory); other workers read it only (to resume, it
    must be on a filesystem they all see) and write to a temporary directory, deleted at the end.
    """
    chief = is_chief(strategy)
    paths = shared if chief else RunPaths(Path(tempfile.mkdtemp(prefix="cityseg-worker-")))
    state, error = None, None
    try:
        if chief:
            state = prepare_run_dir(shared, cfg, resume=resume, force=force)
        else:
            state = resumable_state(shared, cfg) if resume else RunState(monitor=MONITOR)
    except CitysegError as exc:
        error = exc
    agreed = {k: v for k, v in flatten(to_mapping(cfg)).items() if k not in WORKER_LOCAL_KEYS}
    try:
        agree(strategy, digest=config_digest(agreed), epochs_done=state.epochs_done if state else -1,
              error=error)
    except CitysegError:
        if not chief:
            shutil.rmtree(paths.root, ignore_errors=True)
        raise
    return paths, state


def chief_shares(strategy) -> Share:
    """How data statistics are computed once: locally, or by the chief and sent to all workers."""
    import numpy as np

    if num_workers(strategy) == 1:
        return compute_here
    chief = is_chief(strategy)

    def share(compute, size: int):
        values = compute() if chief else np.zeros(size)
        return broadcast_from_chief(strategy, np.asarray(values, dtype=np.float64).reshape(size))

    return share


def fit(cfg: TrainConfig, strategy, paths: RunPaths, shared: RunPaths, state: RunState,
        data: RunData, space: LabelSet, *, mixed: bool, extra_callbacks: Sequence[Any],
        progress: bool) -> None:
    """Build (or restore) the model under ``strategy`` and train it from ``state.epochs_done``."""
    from cityseg.training.distribute import adapt_to_strategy
    from cityseg.training.model_setup import build_and_compile, check_dropout_schedule, restore_checkpoint

    replicas = strategy.num_replicas_in_sync
    with dtype_policy("mixed_float16" if mixed else "float32"):
        with strategy.scope():
            model = build_and_compile(cfg, space, steps_per_epoch=data.steps_per_epoch,
                                      class_weights=data.class_weights,
                                      sync_batchnorm=replicas > 1)
            if state.epochs_done:
                restore_checkpoint(model, shared.last, state)
        check_dropout_schedule(cfg, model)
        adapt_to_strategy(model, data.train, strategy)
        guard, callbacks = make_callbacks(cfg, paths, state, data, space)
        model.fit(data.train, validation_data=data.validation, epochs=cfg.epochs,
                  initial_epoch=state.epochs_done, steps_per_epoch=cfg.steps_per_epoch,
                  shuffle=False,  # the training dataset shuffles itself
                  callbacks=[*callbacks, *extra_callbacks], verbose=fit_verbosity(progress))
    if guard.failure is not None:
        raise TrainingDiverged(diverged_message(guard.failure, shared, state))


# --------------------------------------------------------------------------------------------
# Devices: precision
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



# --------------------------------------------------------------------------------------------
# Callbacks and progress
# --------------------------------------------------------------------------------------------

def make_callbacks(cfg: TrainConfig, paths: RunPaths, state: RunState, data: RunData,
                   space: LabelSet):
    """(NaN guard, the epoch's callbacks in the order they must run).

    Keras calls callbacks in list order at every hook, and each one depends on those before it:

    1. LearningRateLogger adds ``learning_rate`` to the epoch's logs, so the checkpoint's history,
       the CSV and the plot record it;
    2. NonFiniteLossGuard decides whether the epoch is good: everything after it that writes
       consults ``guard.failure`` so a diverged epoch is never checkpointed, logged or drawn;
    3. DropoutScheduler sets the rate at epoch begin and logs ``dropout_rate`` at epoch end, again
       before the writers read the logs;
    4. RunCheckpoint appends the epoch to ``state.history`` and saves last/best + state.json;
       HistoryPlot draws from that history, so it must come after the checkpoint;
    5. GoodEpochCSVLogger, HistoryPlot, PredictionPreview and TensorBoard only report.

    Every worker of a multi-worker run runs the same list (predict and metric reads are
    collective, so all must take part); a non-chief's ``paths`` is a temporary directory.
    """
    import keras

    from cityseg.training.callbacks import (
        DropoutScheduler,
        GoodEpochCSVLogger,
        HistoryPlot,
        LearningRateLogger,
        NonFiniteLossGuard,
        PredictionPreview,
        RunCheckpoint,
        rewrite_history_csv,
    )

    guard = NonFiniteLossGuard()
    callbacks = [LearningRateLogger(), guard]
    if cfg.schedule.dropout:
        callbacks.append(DropoutScheduler(cfg.schedule.dropout, state))
    if state.epochs_done:
        rewrite_history_csv(paths.history_csv, state.history)
    callbacks += [RunCheckpoint(paths.checkpoints, state, guard),
                  GoodEpochCSVLogger(guard, str(paths.history_csv), append=state.epochs_done > 0),
                  HistoryPlot(paths.history_png, state, guard, title=cfg.name)]
    if data.preview_images is not None and len(data.preview_images):
        callbacks.append(PredictionPreview(data.preview_images, data.preview_labels,
                                           data.normalization, space.index_palette(), paths.previews, guard))
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

"""Keras callbacks of a training run: checkpoints + run state, schedules, plots, NaN guard.

The run state itself (:class:`~cityseg.training.run_state.RunState`, what ``--resume`` reads) is
:mod:`cityseg.training.run_state`, free of Keras. Checkpoints and state are written atomically
(temp file + rename), ``last.keras`` before ``state.json``, so a run killed at any moment leaves a
loadable ``last.keras`` and a state that does not claim more than it holds.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path

import keras
import numpy as np

from cityseg.fileio import atomic_path
from cityseg.models import dropout_layers, set_dropout_rate
from cityseg.preprocess import Normalization, normalize
from cityseg.training.plots import plot_history, plot_predictions
from cityseg.training.run_state import BEST_CHECKPOINT, LAST_CHECKPOINT, MONITOR, STATE_FILE, RunState, TrainingError
from cityseg.training.schedules import dropout_rate_at

log = logging.getLogger(__name__)

def _scalars(logs: dict | None) -> dict[str, float]:
    return {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}


def save_model_atomic(model, path: Path) -> None:
    """``model.save`` to a temp file beside ``path``, then rename it over ``path``."""
    with atomic_path(path) as tmp:
        model.save(tmp)


class LearningRateLogger(keras.callbacks.Callback):
    """Adds ``learning_rate`` (the rate of the next optimizer step) to each epoch's logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            rate = self.model.optimizer.learning_rate
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(rate))


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops training at the first NaN/Inf loss and remembers where it happened.

    Unlike ``keras.callbacks.TerminateOnNaN`` it keeps a message naming the epoch and batch,
    and the checkpoint callback consults it so that a diverged epoch is never saved.
    """

    def __init__(self):
        super().__init__()
        self.failure: str | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if self.failure is None and loss is not None and not math.isfinite(float(loss)):
            self.failure = f"epoch {self._epoch + 1}, batch {batch + 1}: the training loss is {float(loss)}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.failure is not None:
            return
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                self.failure = f"epoch {epoch + 1}: {key} is {float(value)}"
                self.model.stop_training = True
                return


class DropoutScheduler(keras.callbacks.Callback):
    """Sets every ScheduledDropout's rate from an epoch -> rate schedule at each epoch start."""

    def __init__(self, schedule: dict[int, float], state: RunState):
        super().__init__()
        self.schedule = dict(schedule)
        self.state = state

    def on_epoch_begin(self, epoch, logs=None):
        rate = dropout_rate_at(self.schedule, epoch)
        if rate is not None and rate != self.state.dropout_rate:
            count = set_dropout_rate(self.model, rate)
            self.state.dropout_rate = rate
            log.info("epoch %d: dropout rate %.3g on %d layers", epoch + 1, rate, count)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if self.state.dropout_rate is not None:
            logs["dropout_rate"] = self.state.dropout_rate
        elif layers := dropout_layers(self.model):
            logs["dropout_rate"] = layers[0].rate  # before the schedule's first entry


class RunCheckpoint(keras.callbacks.Callback):
    """After each good epoch: best.keras (when ``monitor`` improves), last.keras, state.json."""

    def __init__(self, directory: Path, state: RunState, guard: NonFiniteLossGuard):
        super().__init__()
        self.directory = Path(directory)
        self.state = state
        self.guard = guard
        self._started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.failure is not None:
            return  # never checkpoint a diverged model: last.keras stays the last good one
        values = _scalars(logs)
        monitor = self.state.monitor
        if monitor not in values:
            raise TrainingError(f"the metric {monitor!r} that selects the best checkpoint is not "
                                f"in the epoch logs ({', '.join(sorted(values))})")
        state = self.state
        state.history.append({"epoch": float(epoch), **values})
        state.epochs_done = epoch + 1
        state.iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        state.train_seconds += time.perf_counter() - self._started
        if state.best_value is None or values[monitor] > state.best_value:
            state.best_value, state.best_epoch = values[monitor], epoch + 1
            save_model_atomic(self.model, self.directory / BEST_CHECKPOINT)
        save_model_atomic(self.model, self.directory / LAST_CHECKPOINT)
        state.save(self.directory / STATE_FILE)


class HistoryPlot(keras.callbacks.Callback):
    """Redraws the history PNG (train vs val per metric) from the run state after each epoch."""

    def __init__(self, path: Path, state: RunState, guard: NonFiniteLossGuard, title: str = ""):
        super().__init__()
        self.path, self.state, self.guard, self.title = Path(path), state, guard, title

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.failure is None and self.state.history:
            plot_history(self.state.history, self.path, self.title)


class PredictionPreview(keras.callbacks.Callback):
    """Writes ``previews/epoch_NNN.png``: image | ground truth | prediction for fixed samples."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, normalization: Normalization,
                 palette: np.ndarray, directory: Path, guard: NonFiniteLossGuard):
        super().__init__()
        self.images, self.labels, self.palette = images, labels, palette
        self.inputs = normalize(images, normalization)
        self.directory = Path(directory)
        self.guard = guard

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.failure is not None:
            return
        scores = np.asarray(self.model.predict_on_batch(self.inputs))
        predictions = scores.argmax(axis=-1).astype(np.uint8)
        miou = (logs or {}).get(MONITOR)
        title = f"epoch {epoch + 1}" + (f" - val mIoU {float(miou):.3f}" if miou is not None else "")
        plot_predictions(self.images, self.labels, predictions, self.palette,
                         self.directory / f"epoch_{epoch + 1:03d}.png", title)


class GoodEpochCSVLogger(keras.callbacks.CSVLogger):
    """Keras' CSVLogger, skipping the epoch a NaN/Inf loss stopped (it was not checkpointed)."""

    def __init__(self, guard: NonFiniteLossGuard, filename: str, append: bool = False):
        super().__init__(filename, append=append)
        self.guard = guard

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.failure is None:
            super().on_epoch_end(epoch, logs)


def rewrite_history_csv(path: Path, history: list[dict[str, float]]) -> None:
    """Make ``history.csv`` hold exactly the checkpointed epochs (before appending on resume)."""
    keys = sorted({k for record in history for k in record if k != "epoch"})
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["epoch", *keys])
            for record in history:
                writer.writerow([int(record["epoch"]), *(record.get(k, "") for k in keys)])

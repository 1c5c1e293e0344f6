"""Learning-rate and dropout schedules.

The learning rate is a :class:`EpochLearningRate` (a Keras ``LearningRateSchedule``) keyed on the
optimizer's iteration counter. That counter is saved in every checkpoint, so a resumed run lands
on exactly the learning rate an uninterrupted run would have used at that step.

Epochs are counted as Keras counts them, from 0: ``step_epochs=(20,)`` keeps the base rate for
epochs 0-19 (the first 20) and multiplies it by ``step_factor`` from epoch 20 on - the study's
"1e-3 for 20 epochs, then 1e-4". Dropout schedules use the same epoch numbering.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from cityseg.training.config import ScheduleConfig

LR_KINDS = ("constant", "step", "poly", "cosine")


@keras.saving.register_keras_serializable(package="cityseg")
class EpochLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate as a function of the optimizer step, defined in epochs.

    ``lr(step) = warmup(step) * decay(step)`` where ``warmup`` ramps linearly from
    ``1/warmup_steps`` to 1 over ``warmup_epochs`` and ``decay`` is one of:

    * ``constant``: ``base_lr``
    * ``step``: ``base_lr * step_factor ** (number of step_epochs <= current epoch)``
    * ``poly``: ``min_lr + (base_lr - min_lr) * (1 - t) ** poly_power``
    * ``cosine``: ``min_lr + (base_lr - min_lr) * (1 + cos(pi * t)) / 2``

    with ``t`` the fraction of the post-warm-up steps done (0 -> 1 over the run).
    """

    def __init__(self, kind: str, base_lr: float, steps_per_epoch: int, total_epochs: int,
                 step_epochs: tuple[int, ...] = (20,), step_factor: float = 0.1,
                 warmup_epochs: float = 0.0, poly_power: float = 0.9, min_lr: float = 0.0):
        if kind not in LR_KINDS:
            raise ValueError(f"unknown learning-rate schedule {kind!r}; use one of {', '.join(LR_KINDS)}")
        if steps_per_epoch <= 0 or total_epochs <= 0:
            raise ValueError("steps_per_epoch and total_epochs must be positive")
        if base_lr <= 0 or min_lr < 0 or warmup_epochs < 0:
            raise ValueError("base_lr must be positive, min_lr and warmup_epochs non-negative")
        self.kind = kind
        self.base_lr = float(base_lr)
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_epochs = int(total_epochs)
        self.step_epochs = tuple(int(e) for e in step_epochs)
        self.step_factor = float(step_factor)
        self.warmup_epochs = float(warmup_epochs)
        self.poly_power = float(poly_power)
        self.min_lr = float(min_lr)

    @property
    def warmup_steps(self) -> float:
        return self.warmup_epochs * self.steps_per_epoch

    @property
    def total_steps(self) -> int:
        return self.total_epochs * self.steps_per_epoch

    def __call__(self, step):
        step = ops.cast(step, "float32")
        return self._warmup_factor(step) * self._decayed(step)

    def _warmup_factor(self, step):
        if self.warmup_steps <= 0:
            return ops.convert_to_tensor(1.0, "float32")
        return ops.minimum(1.0, (step + 1.0) / self.warmup_steps)

    def _progress(self, step):
        """Fraction in [0, 1] of the steps after warm-up that are done."""
        span = max(self.total_steps - self.warmup_steps, 1.0)
        return ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)

    def _decayed(self, step):
        if self.kind == "constant":
            return ops.convert_to_tensor(self.base_lr, "float32")
        if self.kind == "step":
            epoch = ops.floor(step / self.steps_per_epoch)
            drops = sum((ops.cast(epoch >= e, "float32") for e in self.step_epochs),
                        ops.convert_to_tensor(0.0, "float32"))
            return self.base_lr * ops.power(self.step_factor, drops)
        t = self._progress(step)
        if self.kind == "poly":
            remaining = ops.power(1.0 - t, self.poly_power)
        else:
            remaining = 0.5 * (1.0 + ops.cos(math.pi * t))
        return self.min_lr + (self.base_lr - self.min_lr) * remaining

    def get_config(self) -> dict:
        return {"kind": self.kind, "base_lr": self.base_lr, "steps_per_epoch": self.steps_per_epoch,
                "total_epochs": self.total_epochs, "step_epochs": list(self.step_epochs),
                "step_factor": self.step_factor, "warmup_epochs": self.warmup_epochs,
                "poly_power": self.poly_power, "min_lr": self.min_lr}


def make_lr_schedule(schedule: ScheduleConfig, base_lr: float, steps_per_epoch: int,
                     total_epochs: int) -> EpochLearningRate:
    """The learning-rate schedule a training config asks for."""
    return EpochLearningRate(schedule.lr, base_lr, steps_per_epoch, total_epochs,
                             step_epochs=schedule.step_epochs, step_factor=schedule.step_factor,
                             warmup_epochs=schedule.warmup_epochs, poly_power=schedule.poly_power,
                             min_lr=schedule.min_lr)


def learning_rate_at(lr: EpochLearningRate, step: int) -> float:
    """The learning rate ``lr`` gives at optimizer step ``step`` (as a Python float)."""
    return float(ops.convert_to_numpy(lr(step)))


def dropout_rate_at(schedule: dict[int, float], epoch: int) -> float | None:
    """The dropout rate in force at ``epoch``: the entry with the largest key <= epoch.

    None before the first entry (the model keeps the rate it was built with).
    """
    due = [key for key in schedule if key <= epoch]
    return schedule[max(due)] if due else None


def validate_dropout_schedule(schedule: dict[int, float]) -> None:
    """Reject negative epochs and rates outside [0, 1)."""
    for epoch, rate in schedule.items():
        if epoch < 0 or not 0.0 <= rate < 1.0:
            raise ValueError(f"schedule.dropout entry {epoch}: {rate} is invalid; epochs count from 0 "
                             "and rates must be within [0, 1)")

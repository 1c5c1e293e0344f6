"""The state of a training run, without Keras: what ``--resume`` reads, the checkpoint names.

The run state (``checkpoints/state.json``) records epochs done, optimizer step, best metric and
history so far. This module imports neither Keras nor TensorFlow, so reading a run directory or
checking TF_CONFIG (:mod:`cityseg.training.distribute`) does not load them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cityseg.config import ConfigError, from_mapping, to_mapping
from cityseg.errors import CitysegError
from cityseg.fileio import write_json_atomic

LAST_CHECKPOINT = "last.keras"
BEST_CHECKPOINT = "best.keras"
STATE_FILE = "state.json"
MONITOR = "val_miou"
"""The validation metric that selects the best checkpoint (higher is better): the Keras metric
``miou`` on the validation split."""


class TrainingError(CitysegError):
    """A training run cannot start, resume or continue."""


@dataclass
class RunState:
    """What a run has done so far; saved as ``checkpoints/state.json`` after every epoch."""

    epochs_done: int = 0
    iterations: int = 0
    """Optimizer steps done (the learning-rate schedule's clock)."""
    monitor: str = MONITOR
    best_value: float | None = None
    best_epoch: int | None = None
    """1-based number of the epoch that gave ``best_value``."""
    dropout_rate: float | None = None
    """Rate set by the dropout schedule (None: the model's own rate)."""
    train_seconds: float = 0.0
    normalization: dict[str, Any] | None = None
    """The Normalization fitted on the training split at the start of the run."""
    history: list[dict[str, float]] = field(default_factory=list)
    """One record of logged values per completed epoch (Keras' 0-based ``epoch`` included)."""

    def save(self, path: Path) -> None:
        write_json_atomic(path, to_mapping(self))

    @classmethod
    def load(cls, path: Path) -> RunState:
        try:
            raw = json.loads(Path(path).read_text())
            return from_mapping(cls, raw, where=str(path))
        except (OSError, json.JSONDecodeError, ConfigError) as exc:
            raise TrainingError(f"{path}: cannot read the run state ({exc}); the run directory is "
                                "damaged - start a new run, or pass --force to restart this one") from None

"""The run directory: where each output lives, starting / resuming / forcing a run in it.

Layout (``out_dir``)::

    config.yaml                 the resolved config of the run (what --resume compares against)
    checkpoints/last.keras      model + optimizer state after the last good epoch
    checkpoints/best.keras      the epoch with the best validation mIoU
    checkpoints/state.json      epochs done, optimizer step, best metric, history so far
    history.csv                 one row of logged values per epoch (Keras CSVLogger)
    history.png                 loss / pixel accuracy / Dice / mIoU, train vs val
    previews/epoch_NNN.png      image | ground truth | prediction for fixed validation samples
    tensorboard/                TensorBoard event files (config: tensorboard)
    bundle/                     model.json + model.keras: the deliverable (best checkpoint)
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cityseg.bundle import CARD_FILE
from cityseg.config import to_mapping
from cityseg.fileio import write_bytes_atomic
from cityseg.training.config import TrainConfig, load_train_config
from cityseg.training.run_state import BEST_CHECKPOINT, LAST_CHECKPOINT, MONITOR, STATE_FILE, RunState, TrainingError

log = logging.getLogger(__name__)

RESUME_MAY_CHANGE = ("epochs", "data.root", "data.cache_dir", "tensorboard", "preview_count")
"""Config keys that may differ between a run and its resumption."""


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


def prepare_run_dir(paths: RunPaths, cfg: TrainConfig, *, resume: bool, force: bool) -> RunState:
    """Check ``paths.root`` may be used and return the state to start from (empty for a new run).

    ``resume`` on a directory that does not exist yet or is empty starts the run, so one command
    both starts and continues a long background run."""
    root = paths.root
    if root.exists() and not root.is_dir():
        raise TrainingError(f"{root}: exists and is not a directory; choose another output directory")
    if resume and force:
        raise TrainingError("--resume continues a run and --force deletes it: pass only one of them")
    occupied = root.is_dir() and any(root.iterdir())
    if resume and occupied:
        return resumable_state(paths, cfg)
    if resume:
        log.info("%s: no run to resume yet; starting it (the same command resumes it later)", root)
    elif occupied:
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
    saved = flatten(to_mapping(load_train_config(saved_path)))
    given = flatten(to_mapping(cfg))
    changed = sorted(k for k in set(saved) | set(given)
                     if saved.get(k) != given.get(k) and k not in RESUME_MAY_CHANGE)
    if changed:
        details = "; ".join(f"{k}: {saved.get(k)!r} in the run, {given.get(k)!r} now" for k in changed)
        raise TrainingError(f"cannot resume {saved_path.parent}: the config differs from the run's "
                            f"({details}); resume with the run's own config ({saved_path}) or start "
                            "a new run")


def flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as {dotted.key: value} (``model.params`` entries included)."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            flat.update(flatten(value, f"{name}."))
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

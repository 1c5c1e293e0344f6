"""The deliverable of a run: ``bundle/`` (a float32 model.keras from the best checkpoint + its card)."""

from __future__ import annotations

from typing import Any

from cityseg.bundle import Artifact, Bundle, ModelCard, class_fields, framework_versions
from cityseg.config import to_mapping
from cityseg.fileio import atomic_path
from cityseg.labels import LabelSet
from cityseg.training.config import TrainConfig
from cityseg.training.model_setup import build_run_model
from cityseg.training.run_data import RunData
from cityseg.training.run_dir import RunPaths
from cityseg.training.run_state import RunState


def write_bundle(paths: RunPaths, cfg: TrainConfig, space: LabelSet, state: RunState,
                 data: RunData, *, mixed: bool, replicas: int) -> Bundle:
    """Write ``bundle/`` from the best checkpoint: a float32 model.keras and its model card."""
    checkpoint = paths.best if paths.best.is_file() else paths.last
    model = build_run_model(cfg, space)  # float32, outside any strategy: the portable copy
    model.load_weights(checkpoint)
    paths.bundle.mkdir(parents=True, exist_ok=True)
    with atomic_path(paths.bundle / "model.keras") as tmp:
        model.save(tmp)
    card = ModelCard(
        name=cfg.name, architecture=cfg.model.name, input_height=cfg.data.height,
        input_width=cfg.data.width, **class_fields(space, with_label_map=True),
        artifacts={"keras": Artifact("model.keras", "keras", "probabilities")},
        resize=cfg.data.resize, normalization=data.normalization,
        frameworks=framework_versions("tensorflow", "keras", "numpy"),
        metrics=card_metrics(state, data.validation_split, space),
        training=card_training(cfg, state, data, mixed=mixed, replicas=replicas))
    return Bundle.create(paths.bundle, card, overwrite=True)


def card_metrics(state: RunState, split: str, space: LabelSet) -> dict[str, Any]:
    """Validation metrics of the best epoch, plus the per-epoch validation curves."""
    best = state.history[state.best_epoch - 1] if state.best_epoch else {}
    metrics: dict[str, Any] = {k[len("val_"):]: v for k, v in best.items() if k.startswith("val_")}
    metrics.update({
        "split": split, "selected_by": state.monitor, "best_epoch": state.best_epoch,
        "note": f"Keras metrics at training resolution over the {space.name} classes; "
                + ("`cityseg evaluate` gives the official Cityscapes scores" if space.is_cityscapes
                   else "`cityseg evaluate` gives per-class IoU at full resolution"),
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

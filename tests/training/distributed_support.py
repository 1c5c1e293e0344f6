"""Shared by the distribution tests and their worker processes: a run whose loss curve does not
depend on the number of replicas (no dropout, no augmentation), free ports, TF_CONFIG."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from cityseg.config import from_mapping
from cityseg.training.config import TrainConfig

GLOBAL_BATCH = 2
LOSS_TOLERANCE = 0.01
"""Relative difference allowed between the per-epoch training losses of 1 and 2 replicas with the
same global batch. Observed here: <= 0.2% (the cross-entropy is averaged per replica, so replicas
with different numbers of ignored pixels weigh slightly differently; BatchNorm is synchronised)."""


def comparable_config(root: Path, cache: Path, *, normalization: str = "scale", loss: str = "ce",
                      **changes) -> TrainConfig:
    """A 64x128 unet_lite run with nothing random but the initial weights and the shuffle."""
    mapping = {
        "name": "replicas",
        "data": {"root": str(root), "height": 64, "width": 128, "batch_size": GLOBAL_BATCH,
                 "resize": "area", "cache_dir": str(cache), "shuffle_buffer": 8,
                 "normalization": normalization},
        "loss": {"name": loss},
        "model": {"name": "unet_lite", "batchnorm_momentum": 0.9,
                  "params": {"base_filters": 4, "depth": 3, "max_filters": 16, "dropout": 0.0}},
        "optimizer": {"name": "adam", "learning_rate": 0.003},
        "epochs": 3, "preview_count": 1, "tensorboard": False, "mixed_precision": "off",
    }
    mapping.update(changes)
    return from_mapping(TrainConfig, mapping)


def free_ports(count: int) -> list[int]:
    """``count`` localhost ports free right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports: list[int], index: int) -> str:
    """TF_CONFIG of worker ``index`` in a localhost cluster on ``ports``."""
    return json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})

"""Run by test_distribute.py in a fresh process: the same tiny run on 1 device and on N logical
CPU devices (MirroredStrategy), then the mirrored run's last checkpoint scored on one device.

Logical devices must be configured before TensorFlow initialises, hence a process of its own.
Usage: python replicas_run.py N DATA_ROOT CACHE_DIR OUT_DIR; prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import tensorflow as tf

replicas, data_root, cache_dir, out = int(sys.argv[1]), *map(Path, sys.argv[2:5])
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
sys.path.insert(0, str(Path(__file__).parent))

from cityseg.labels import class_space  # noqa: E402
from cityseg.training.callbacks import RunState  # noqa: E402
from cityseg.training.metrics import keras_metrics  # noqa: E402
from cityseg.training.model_setup import build_run_model  # noqa: E402
from cityseg.training.run_data import prepare_data  # noqa: E402
from cityseg.training.train import train  # noqa: E402

from distributed_support import comparable_config  # noqa: E402

results = {}
for kind in ("none", "mirrored"):
    cfg = comparable_config(data_root, cache_dir, distribute=kind)
    bundle = train(cfg, out / kind, progress=False)
    state = json.loads((out / kind / "checkpoints" / "state.json").read_text())
    results[kind] = {"loss": [r["loss"] for r in state["history"]],
                     "val_miou": [r["val_miou"] for r in state["history"]],
                     "iterations": state["iterations"],
                     "replicas": bundle.card.training["replicas"]}

# The mirrored run's last epoch, re-scored on a single device over the whole validation split.
space = class_space(cfg.data.class_space)
data = prepare_data(cfg, space, RunState(monitor="val_miou"), progress=False)
model = build_run_model(cfg, space)
model.load_weights(out / "mirrored" / "checkpoints" / "last.keras")
miou = next(m for m in keras_metrics(space.num_classes, space.ignore_index) if m.name == "miou")
for images, labels in data.validation:
    miou.update_state(labels, model(images, training=False))
results["single_device_val_miou_of_mirrored_last"] = float(miou.result())
results["devices"] = len(tf.config.list_logical_devices("CPU"))
print("RESULT " + json.dumps(results))

"""The training run end to end on generated Cityscapes-layout data (tiny model, 64x128, seconds).

One module-scoped run (through `cityseg train`) serves the output, bundle and resume checks; the
kill/resume, NaN and distribution tests run their own tiny runs.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from cityseg.bundle import Bundle  # noqa: E402
from cityseg.cli import main  # noqa: E402
from cityseg.config import from_mapping, merge_mappings, to_mapping  # noqa: E402
from cityseg.errors import CitysegError  # noqa: E402
from cityseg.fileio import read_image  # noqa: E402
from cityseg.training.config import TrainConfig, load_train_config  # noqa: E402
from cityseg.training.run_state import RunState, TrainingError  # noqa: E402
from cityseg.training.schedules import learning_rate_at, make_lr_schedule  # noqa: E402
from cityseg.training.train import TrainingDiverged, dtype_policy, train, use_mixed_precision  # noqa: E402

TRAIN_IMAGES, VAL_IMAGES, BATCH = 4, 2, 2
STEPS_PER_EPOCH = TRAIN_IMAGES // BATCH


def tiny_config(root: Path, cache: Path, **changes) -> TrainConfig:
    """A 64x128 run of a ~6k-parameter unet_lite; ``changes`` are merged into the mapping."""
    mapping = {
        "name": "tiny",
        "data": {"root": str(root), "height": 64, "width": 128, "batch_size": BATCH,
                 "resize": "area", "cache_dir": str(cache), "shuffle_buffer": 8},
        "augment": {"hflip_prob": 0.5},
        "model": {"name": "unet_lite",
                  "params": {"base_filters": 4, "depth": 3, "max_filters": 16, "dropout": 0.1},
                  "batchnorm_momentum": 0.9},
        "optimizer": {"name": "adamw", "learning_rate": 0.003, "weight_decay": 1e-4},
        "schedule": {"lr": "poly", "warmup_epochs": 0.5, "dropout": {1: 0.2}},
        "epochs": 2, "preview_count": 1, "tensorboard": False,
    }
    return from_mapping(TrainConfig, merge_mappings(mapping, changes))


def read_state(run: Path) -> dict:
    return json.loads((run / "checkpoints" / "state.json").read_text())


def read_csv_rows(run: Path) -> list[dict]:
    import csv

    with open(run / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


class KillAfterEpoch(keras.callbacks.Callback):
    """Simulates a killed process: raises KeyboardInterrupt after the run's own epoch-end work."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


class FirstStepLearningRate(keras.callbacks.Callback):
    """Records the learning rate the optimizer uses for the first step of this fit()."""

    def __init__(self):
        super().__init__()
        self.value = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.value is None:
            self.value = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class PoisonWeightsAtEpoch(keras.callbacks.Callback):
    """Writes NaN into the first kernel at the start of ``epoch`` (a diverging run, on demand)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            kernel = self.model.trainable_variables[0]
            kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    from cityseg.synthetic.dataset import write_dataset

    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, count=TRAIN_IMAGES + VAL_IMAGES, size=(256, 128), seed=3,
                  splits={"train": TRAIN_IMAGES, "val": VAL_IMAGES})
    return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_root, cache_dir) -> Path:
    """A 2-epoch run trained through `cityseg train` (TensorBoard on)."""
    work = tmp_path_factory.mktemp("cli")
    cfg = tiny_config(Path("unused"), cache_dir, tensorboard=True)
    config_path = work / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(to_mapping(cfg)))
    run = work / "run"
    assert main(["train", "--config", str(config_path), "--data-root", str(data_root),
                 "--out", str(run), "--quiet"]) == 0
    return run


def test_run_writes_checkpoints_state_logs_plots_and_previews(finished_run, data_root):
    for name in ("config.yaml", "history.csv", "history.png", "checkpoints/last.keras",
                 "checkpoints/best.keras", "previews/epoch_001.png", "previews/epoch_002.png",
                 "bundle/model.json", "bundle/model.keras"):
        assert (finished_run / name).is_file(), name
    assert list((finished_run / "tensorboard").rglob("events.out.tfevents.*"))
    assert not list(finished_run.rglob("*.tmp*")), "no temporary files left behind"

    saved = load_train_config(finished_run / "config.yaml")
    assert saved.data.root == str(data_root) and saved.epochs == 2

    state = read_state(finished_run)
    assert state["epochs_done"] == 2 and state["iterations"] == 2 * STEPS_PER_EPOCH
    history = state["history"]
    assert [r["epoch"] for r in history] == [0, 1]
    for key in ("loss", "val_loss", "miou", "val_miou", "pixel_accuracy", "val_dice", "learning_rate"):
        assert all(math.isfinite(r[key]) for r in history), key
    assert [r["dropout_rate"] for r in history] == pytest.approx([0.1, 0.2])  # schedule {1: 0.2}
    best = max(range(2), key=lambda i: history[i]["val_miou"])
    assert state["best_epoch"] == best + 1 and state["best_value"] == history[best]["val_miou"]

    rows = read_csv_rows(finished_run)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert [float(r["val_miou"]) for r in rows] == pytest.approx([r["val_miou"] for r in history])

    preview = read_image(finished_run / "previews" / "epoch_002.png")
    assert preview.shape[1] > 2 * preview.shape[0]  # one row of three panels


def test_learning_rate_follows_the_configured_schedule(finished_run):
    cfg = load_train_config(finished_run / "config.yaml")
    schedule = make_lr_schedule(cfg.schedule, cfg.optimizer.learning_rate, STEPS_PER_EPOCH, cfg.epochs)
    logged = [r["learning_rate"] for r in read_state(finished_run)["history"]]
    expected = [learning_rate_at(schedule, (e + 1) * STEPS_PER_EPOCH) for e in range(2)]
    assert logged == pytest.approx(expected, abs=1e-9)


def test_bundle_is_the_best_checkpoint_with_a_complete_card(finished_run, data_root):
    from cityseg.data.cityscapes import find_samples
    from cityseg.inference import Segmenter
    from cityseg.preprocess import Normalization, normalize, resize_image

    bundle = Bundle.load(finished_run / "bundle")
    card = bundle.card
    state = read_state(finished_run)
    assert (card.name, card.architecture, card.input_height, card.input_width) == ("tiny", "unet_lite", 64, 128)
    assert card.class_space == "trainid" and len(card.class_names) == 19 and card.resize == "area"
    assert card.normalization == Normalization()  # data.normalization: scale
    assert card.metrics["miou"] == pytest.approx(state["best_value"])
    assert card.metrics["best_epoch"] == state["best_epoch"] and card.metrics["split"] == "val"
    assert len(card.metrics["per_epoch"]["val_miou"]) == 2
    assert card.training["epochs"] == 2 and card.training["optimizer_steps"] == 4
    assert card.training["config"]["model"]["name"] == "unet_lite"
    assert {"tensorflow", "keras", "numpy"} <= set(card.frameworks)
    assert card.artifacts["keras"].output == "probabilities"

    sample = find_samples(data_root, "val")[0]
    bgr = read_image(sample.image)
    result = Segmenter(bundle, backend="tensorflow").segment(bgr, channel_order="BGR")
    assert result.mask.shape == bgr.shape[:2]

    import cityseg.models  # noqa: F401  (custom layers)

    best = keras.saving.load_model(finished_run / "checkpoints" / "best.keras", compile=False)
    assert {layer.momentum for layer in best._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)} == {0.9}  # model.batchnorm_momentum
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    x = normalize(resize_image(rgb, 64, 128, "area")[None], card.normalization)
    expected = np.asarray(best(x, training=False)).argmax(-1)[0]
    assert (result.classes == expected).mean() > 0.999


def test_a_non_empty_run_directory_is_refused_without_resume_or_force(finished_run, cache_dir, data_root, capsys):
    before = (finished_run / "checkpoints" / "state.json").stat().st_mtime_ns
    with pytest.raises(TrainingError, match="--resume.*--force"):
        train(tiny_config(data_root, cache_dir), finished_run)
    assert main(["train", "--config", str(finished_run / "config.yaml"), "--out", str(finished_run)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (finished_run / "checkpoints" / "state.json").stat().st_mtime_ns == before


def test_resume_trains_on_to_more_epochs_with_continuous_history(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = read_state(run)["history"]
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--quiet"]) == 0

    state = read_state(run)
    assert state["epochs_done"] == 3 and state["iterations"] == 3 * STEPS_PER_EPOCH
    assert state["history"][:2] == before
    assert [int(r["epoch"]) for r in read_csv_rows(run)] == [0, 1, 2]
    cfg = load_train_config(run / "config.yaml")
    assert cfg.epochs == 3
    schedule = make_lr_schedule(cfg.schedule, cfg.optimizer.learning_rate, STEPS_PER_EPOCH, 3)
    assert state["history"][2]["learning_rate"] == pytest.approx(learning_rate_at(schedule, 6), abs=1e-9)
    assert (run / "previews" / "epoch_003.png").is_file()
    assert Bundle.load(run / "bundle").card.training["epochs"] == 3

    with pytest.raises(TrainingError, match="already trained 3 epochs"):
        train(cfg, run, resume=True)


def test_resume_refuses_a_different_experiment(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    cfg = load_train_config(run / "config.yaml", data__height=32, epochs=5)
    with pytest.raises(TrainingError, match=r"data\.height: 64 in the run, 32 now"):
        train(cfg, run, resume=True)


def test_resume_without_a_checkpoint_says_so(tmp_path, data_root, cache_dir):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("name: killed in its first epoch\n")
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(tiny_config(data_root, cache_dir), tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "config.yaml").read_text() == "name: killed in its first epoch\n"


def test_resume_on_a_new_directory_starts_the_run_and_then_continues_it(tmp_path, data_root, cache_dir):
    run = tmp_path / "new" / "run"
    cfg = tiny_config(data_root, cache_dir)
    train(cfg, run, resume=True, progress=False)  # nothing there yet: the same command starts it
    assert RunState.load(run / "checkpoints" / "state.json").epochs_done == cfg.epochs
    with pytest.raises(TrainingError, match=f"already trained {cfg.epochs} epochs"):
        train(cfg, run, resume=True, progress=False)


def test_force_deletes_only_the_previous_run_outputs(tmp_path, cache_dir):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "state.json").write_text("{}")
    (run / "history.csv").write_text("epoch\n0\n")
    (run / "my_notes.txt").write_text("keep me")
    missing_data = tmp_path / "no_such_dataset"
    with pytest.raises(CitysegError, match="no_such_dataset"):
        train(tiny_config(missing_data, cache_dir), run, force=True)
    assert not (run / "checkpoints").exists() and not (run / "history.csv").exists()
    assert (run / "my_notes.txt").read_text() == "keep me"


def test_killed_run_resumes_on_the_uninterrupted_learning_rate(finished_run, tmp_path):
    cfg = load_train_config(finished_run / "config.yaml")  # the uninterrupted run's own config
    run = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, progress=False, extra_callbacks=[KillAfterEpoch(0)])
    assert read_state(run)["epochs_done"] == 1 and not (run / "bundle").exists()

    first_step = FirstStepLearningRate()
    train(cfg, run, resume=True, progress=False, extra_callbacks=[first_step])
    schedule = make_lr_schedule(cfg.schedule, cfg.optimizer.learning_rate, STEPS_PER_EPOCH, cfg.epochs)
    assert first_step.value == pytest.approx(learning_rate_at(schedule, STEPS_PER_EPOCH))
    assert first_step.value != pytest.approx(learning_rate_at(schedule, 0))

    resumed, uninterrupted = read_state(run), read_state(finished_run)
    assert resumed["iterations"] == uninterrupted["iterations"]
    for key in ("learning_rate", "dropout_rate"):
        assert [r[key] for r in resumed["history"]] == pytest.approx([r[key] for r in uninterrupted["history"]])
    assert [int(r["epoch"]) for r in read_csv_rows(run)] == [0, 1]


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, data_root, cache_dir):
    run = tmp_path / "run"
    cfg = tiny_config(data_root, cache_dir, epochs=3, preview_count=0)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, batch 1: the training loss is nan") as err:
        train(cfg, run, progress=False, extra_callbacks=[PoisonWeightsAtEpoch(1)])
    assert "last.keras keeps the last good epoch (1)" in str(err.value)
    state = read_state(run)
    assert state["epochs_done"] == 1 and len(state["history"]) == 1
    assert [int(r["epoch"]) for r in read_csv_rows(run)] == [0]
    import cityseg.models  # noqa: F401

    last = keras.saving.load_model(run / "checkpoints" / "last.keras", compile=False)
    assert all(np.isfinite(w).all() for w in last.get_weights())
    assert not (run / "bundle").exists()


def test_mirrored_strategy_with_mixed_precision_trains_and_writes_a_float32_bundle(tmp_path, data_root, cache_dir):
    cfg = tiny_config(data_root, cache_dir, epochs=1, steps_per_epoch=1, preview_count=0,
                      distribute="mirrored", mixed_precision="on")
    policy_before = keras.config.dtype_policy().name
    bundle = train(cfg, tmp_path / "run", progress=False)
    assert keras.config.dtype_policy().name == policy_before  # the global policy is restored
    assert bundle.card.training["replicas"] == 1 and bundle.card.training["mixed_precision"] is True
    assert read_state(tmp_path / "run")["iterations"] == 1

    import cityseg.models  # noqa: F401

    checkpoint = keras.saving.load_model(tmp_path / "run" / "checkpoints" / "last.keras", compile=False)
    portable = keras.saving.load_model(bundle.path / "model.keras", compile=False)
    assert "mixed_float16" in {layer.dtype_policy.name for layer in checkpoint.layers}
    assert {layer.dtype_policy.name for layer in portable.layers} == {"float32"}
    for a, b in zip(checkpoint.get_weights(), portable.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("setting, gpus, expected", [
    ("auto", [], False), ("auto", ["/physical_device:GPU:0"], True),
    ("on", [], True), ("off", ["/physical_device:GPU:0"], False)])
def test_mixed_precision_auto_follows_the_gpus(setting, gpus, expected):
    assert use_mixed_precision(setting, gpus) is expected


def test_dtype_policy_context_restores_the_previous_policy():
    before = keras.config.dtype_policy().name
    with dtype_policy("mixed_float16"):
        assert keras.config.dtype_policy().name == "mixed_float16"
    assert keras.config.dtype_policy().name == before


def test_cli_requires_a_config_to_start_a_run(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run")]) == 2
    assert "--config FILE is required" in capsys.readouterr().err


# ---- plots -----------------------------------------------------------------------------------

def test_prediction_preview_shows_image_truth_and_prediction_colours(tmp_path):
    from cityseg.labels import class_space
    from cityseg.training.plots import plot_predictions

    space = class_space("trainid")
    truth = np.zeros((2, 32, 64), np.uint8)          # road everywhere
    prediction = np.full((2, 32, 64), 10, np.uint8)  # sky everywhere
    images = np.full((2, 32, 64, 3), 255, np.uint8)
    path = plot_predictions(images, truth, prediction, space.palette, tmp_path / "p.png", "t")
    rgb = read_image(path)[..., ::-1].reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(rgb, axis=0)}
    assert tuple(space.palette[0]) in colours and tuple(space.palette[10]) in colours


def test_history_plot_draws_train_and_validation_curves(tmp_path):
    from cityseg.training.plots import history_columns, plot_history

    records = [{"epoch": 0, "loss": 2.0, "val_loss": 2.5, "miou": 0.1, "val_miou": 0.05},
               {"epoch": 1, "loss": 1.0, "val_loss": 1.5, "miou": 0.3}]
    columns = history_columns(records)
    assert columns["val_miou"][0] == 0.05 and math.isnan(columns["val_miou"][1])
    path = plot_history(records, tmp_path / "h.png")
    assert read_image(path).shape[0] > 100


# ---- evidence: the default model learns (slow) -------------------------------------------------

def chance_miou(train_labels: np.ndarray, val_labels: np.ndarray, num_classes: int) -> float:
    """The better of the majority-class and uniform-random predictors, scored by the training metric."""
    from cityseg.training.metrics import keras_metrics

    majority = np.bincount(train_labels[train_labels != 255].ravel(), minlength=num_classes).argmax()
    rng = np.random.default_rng(0)
    scores = []
    for predicted in (np.full(val_labels.shape, majority), rng.integers(0, num_classes, val_labels.shape)):
        miou = [m for m in keras_metrics(num_classes, 255) if m.name == "miou"][0]
        miou.update_state(val_labels.astype(np.int32), np.eye(num_classes, dtype=np.float32)[predicted])
        scores.append(float(miou.result()))
    return max(scores)


@pytest.mark.slow
def test_default_model_reaches_a_val_miou_far_above_chance_on_cpu(tmp_path):
    from cityseg.data import find_samples
    from cityseg.data.pipeline import load_arrays
    from cityseg.models import DEFAULT_MODEL
    from cityseg.synthetic.dataset import write_dataset

    root = tmp_path / "data"
    write_dataset(root, 120, size=(256, 128), seed=1, splits={"train": 96, "val": 24})
    configs = Path(__file__).resolve().parents[2] / "training_configs"
    cfg = load_train_config(configs / "demo.yaml", data__root=str(root), data__cache_dir=str(tmp_path / "cache"),
                            model__name=DEFAULT_MODEL, model__params={}, tensorboard=False, epochs=8)
    bundle = train(cfg, tmp_path / "run", progress=False)

    _, train_labels = load_arrays(find_samples(root, "train"), cfg.data, progress=False)
    _, val_labels = load_arrays(find_samples(root, "val"), cfg.data, progress=False)
    chance = chance_miou(np.asarray(train_labels), np.asarray(val_labels), 19)
    curve = bundle.card.metrics["per_epoch"]["val_miou"]
    print(f"val mIoU per epoch {curve}, chance {chance:.4f}")
    assert bundle.card.metrics["miou"] > max(0.10, 5 * chance), (curve, chance)
    assert curve[-1] > curve[0]

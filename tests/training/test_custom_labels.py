"""Training on a label set of one's own: a YAML with classes and a label_map from the dataset's
labelIds, on a synthetic Cityscapes-layout tree (1 short epoch of a tiny model at 64x128)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from cityseg.bundle import Bundle  # noqa: E402
from cityseg.cli import main  # noqa: E402
from cityseg.config import ConfigError  # noqa: E402
from cityseg.training.config import load_train_config  # noqa: E402

VEHICLE_LABEL_IDS = (26, 27, 28, 29, 30, 31, 32, 33)
CLASSES = [{"id": 1, "name": "road", "color": [128, 64, 128]},
           {"id": 5, "name": "vehicle", "color": [0, 0, 142]},
           {"id": 9, "name": "other", "color": [70, 70, 70]}]
IDS = [1, 5, 9]


def label_map() -> dict[int, int]:
    """road -> 1, vehicles -> 5, unlabeled/ego vehicle (0, 1) -> the ignore id, other labelIds -> 9."""
    mapping = {label_id: 9 for label_id in range(2, 34)}
    mapping.update({7: 1, 0: 255, 1: 255, **{v: 5 for v in VEHICLE_LABEL_IDS}})
    return mapping


def expected_targets(label_ids: np.ndarray) -> np.ndarray:
    """The class index (0 road, 1 vehicle, 2 other, 255 ignore) of each pixel, from the YAML map."""
    index_of = {class_id: k for k, class_id in enumerate(IDS)}
    out = np.full(label_ids.shape, 255, np.uint8)
    for source, target in label_map().items():
        out[label_ids == source] = index_of.get(target, 255)
    return out


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    from cityseg.synthetic.dataset import write_dataset

    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, count=6, size=(128, 64), seed=5, splits={"train": 4, "val": 2})
    return root


@pytest.fixture(scope="module")
def config_path(tmp_path_factory, data_root) -> Path:
    """configs/run.yaml naming ../sets/vehicles.yaml relatively (resolved against the config)."""
    work = tmp_path_factory.mktemp("work")
    (work / "sets").mkdir()
    (work / "configs").mkdir()
    (work / "sets" / "vehicles.yaml").write_text(yaml.safe_dump(
        {"name": "vehicles", "ignore_id": 255, "classes": CLASSES, "label_map": label_map()}))
    config = {
        "name": "custom", "epochs": 1, "preview_count": 1, "tensorboard": False,
        "data": {"root": str(data_root), "class_space": "../sets/vehicles.yaml", "height": 64,
                 "width": 128, "batch_size": 2, "resize": "area", "shuffle_buffer": 8,
                 "cache_dir": str(work / "cache")},
        "model": {"name": "unet_lite", "params": {"base_filters": 4, "depth": 3, "max_filters": 16},
                  "batchnorm_momentum": 0.9},
        "loss": {"name": "weighted_ce", "class_weights": "median"},
    }
    path = work / "configs" / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def finished_run(config_path) -> Path:
    run = config_path.parent.parent / "run"
    assert main(["train", "--config", str(config_path), "--out", str(run), "--quiet"]) == 0
    return run


def test_the_label_set_path_is_resolved_against_the_config_file(config_path):
    cfg = load_train_config(config_path)
    assert Path(cfg.data.class_space) == (config_path.parent.parent / "sets" / "vehicles.yaml").resolve()


def test_a_missing_or_bad_label_set_is_refused_naming_the_file(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"data": {"class_space": "nowhere.yaml"}}))
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: no such file"):
        load_train_config(config)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"classes": [{"id": 1, "name": "a"}]}))
    config.write_text(yaml.safe_dump({"data": {"class_space": "bad.yaml"}}))
    with pytest.raises(ConfigError, match=r"bad\.yaml: classes\[0\]: expected exactly the keys"):
        load_train_config(config)


def test_targets_are_the_label_map_of_the_label_id_pngs(config_path):
    from cityseg.data.cityscapes import find_samples
    from cityseg.data.pipeline import make_dataset
    from cityseg.preprocess import Normalization

    cfg = load_train_config(config_path)
    samples = find_samples(cfg.data.root, "val")
    dataset = make_dataset(samples, cfg, Normalization(), training=False, progress=False)
    targets = np.concatenate([np.asarray(y) for _, y in dataset])
    expected = np.stack([expected_targets(np.array(Image.open(s.label))) for s in samples])
    assert targets.shape == expected.shape == (2, 64, 128)  # the PNGs are 64x128: no resizing
    np.testing.assert_array_equal(targets, expected)
    assert set(np.unique(expected)) == {0, 1, 2, 255}  # every class and ignored pixels are there


def test_the_cache_of_another_label_set_is_never_reused(config_path, tmp_path):
    from cityseg.data.cityscapes import find_samples
    from cityseg.data.pipeline import cache_path, load_arrays

    cfg = load_train_config(config_path)
    cfg.data.cache_dir = str(tmp_path / "cache")
    samples = find_samples(cfg.data.root, "val")
    first = cache_path(samples, cfg.data)
    _, labels = load_arrays(samples, cfg.data, progress=False)
    other_map = {**label_map(), 7: 9}  # road becomes "other"
    other = tmp_path / "vehicles.yaml"  # the same name, another map
    other.write_text(yaml.safe_dump({"name": "vehicles", "ignore_id": 255, "classes": CLASSES,
                                     "label_map": other_map}))
    cfg.data.class_space = str(other)
    assert cache_path(samples, cfg.data) != first
    _, relabelled = load_arrays(samples, cfg.data, progress=False)
    road = np.asarray(labels) == 0
    assert road.any() and (np.asarray(relabelled)[road] == 2).all()


def test_the_bundle_carries_the_label_set_and_segments_in_its_ids(finished_run, data_root):
    import keras

    from cityseg.data.cityscapes import find_samples
    from cityseg.fileio import read_image
    from cityseg.inference import Segmenter

    bundle = Bundle.load(finished_run / "bundle")
    card = bundle.card
    assert card.class_space == "custom" and card.class_names == ("road", "vehicle", "other")
    assert card.labels["classes"] == CLASSES and card.labels["ignore_id"] == 255
    assert {int(k): v for k, v in card.labels["label_map"].items()} == {
        k: v for k, v in label_map().items() if v != 255}
    assert card.space.ids == (1, 5, 9)
    np.testing.assert_array_equal(card.space.from_label_id[:34],
                                  expected_targets(np.arange(34, dtype=np.uint8)))

    import cityseg.models  # noqa: F401  (custom layers)

    model = keras.saving.load_model(bundle.artifact_path("keras"), compile=False)
    assert model.output_shape[-1] == 3
    assert (finished_run / "previews" / "epoch_001.png").is_file()

    frame = read_image(find_samples(data_root, "val")[0].image)
    result = Segmenter(bundle, backend="tensorflow").segment(frame, channel_order="BGR")
    assert result.mask.shape == frame.shape[:2]
    assert set(np.unique(result.mask)) <= set(IDS)
    colours = {tuple(int(v) for v in c) for c in np.unique(result.color("RGB").reshape(-1, 3), axis=0)}
    assert colours <= {tuple(c["color"]) for c in CLASSES}

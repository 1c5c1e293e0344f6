"""Training on CamVid-layout data (SegNet's list files) through the CLI, as a user starts it: the
shipped recipe shrunk to a tiny model and a few steps, on real PNGs written here; then the bundle
runs through `cityseg segment` with CamVid's own colours and `cityseg evaluate --split test`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from cityseg.bundle import Bundle  # noqa: E402
from cityseg.cli import main  # noqa: E402
from cityseg.labels import class_space  # noqa: E402

from support import REPO, write_camvid_tree  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(CamVid root, run dir) of the shipped recipe on 6/2/2 frames of 96x128, 2 epochs, crops 64x96."""
    work = tmp_path_factory.mktemp("camvid")
    root = write_camvid_tree(work / "CamVid", {"train": 6, "val": 2, "test": 2})
    recipe = yaml.safe_load((REPO / "training_configs" / "camvid.yaml").read_text())
    recipe["data"].update(height=96, width=128, batch_size=3, cache_dir=str(work / "cache"))
    recipe["augment"]["crop"] = [64, 96]
    recipe["model"]["params"] = {"base_filters": 4, "depth": 3, "dropout": 0.0}
    recipe.update(epochs=2, preview_count=1, tensorboard=False)
    config = work / "camvid_tiny.yaml"
    config.write_text(yaml.safe_dump(recipe))
    run = work / "run"
    assert main(["train", "--config", str(config), "--data-root", str(root), "--out", str(run), "--quiet"]) == 0
    return root, run


def test_the_shipped_camvid_recipes_load_and_say_what_they_are():
    from cityseg.training.config import load_train_config

    for name in ("camvid.yaml", "camvid_short.yaml"):
        path = REPO / "training_configs" / name
        cfg = load_train_config(path)
        assert (cfg.data.layout, cfg.data.class_space) == ("camvid", "camvid")
        assert cfg.augment.crop is not None and cfg.loss.weight_ce
        assert path.read_text().startswith("# CamVid") and "Measured" in path.read_text()


def test_camvid_training_writes_a_bundle_of_the_camvid_label_set(trained):
    _, run = trained
    bundle = Bundle.load(run / "bundle")
    space = bundle.card.space
    camvid = class_space("camvid")
    assert space.names == camvid.names and space.ignore_index == 11
    np.testing.assert_array_equal(space.colors, camvid.colors)
    assert (bundle.card.input_height, bundle.card.input_width) == (96, 128)  # crops train, frames run
    config = bundle.card.training["config"]
    assert config["data"]["layout"] == "camvid" and config["augment"]["crop"] == [64, 96]


def test_training_on_crops_feeds_the_model_crops_and_validates_whole_frames(trained):
    import keras

    _, run = trained
    model = keras.saving.load_model(run / "checkpoints" / "last.keras", compile=False)
    assert tuple(model.input_shape[1:3]) == (None, None)   # the training model takes any size
    bundle_model = keras.saving.load_model(run / "bundle" / "model.keras", compile=False)
    assert tuple(bundle_model.input_shape[1:3]) == (96, 128)


def test_the_camvid_bundle_segments_with_camvid_colours_and_scores_the_test_split(trained, tmp_path, capsys):
    root, run = trained
    out = tmp_path / "seg"
    frame = root / "test" / "0001TP_test0000.png"
    assert main(["segment", "--model", str(run / "bundle"), "--out", str(out), str(frame)]) == 0
    colour_files = sorted(out.rglob("*_color.png"))
    assert colour_files, sorted(p.name for p in out.rglob("*"))
    colours = {tuple(c) for c in cv2.cvtColor(cv2.imread(str(colour_files[0])), cv2.COLOR_BGR2RGB).reshape(-1, 3)}
    assert colours <= {tuple(int(v) for v in c) for c in class_space("camvid").colors}
    scores = tmp_path / "test.json"
    assert main(["evaluate", "--model", str(run / "bundle"), "--data-root", str(root), "--split", "test",
                 "--json", str(scores)]) == 0  # the layout comes from the bundle's training config
    result = json.loads(scores.read_text())
    assert result["num_images"] == 2 and list(result["class_iou"]) == list(class_space("camvid").names)

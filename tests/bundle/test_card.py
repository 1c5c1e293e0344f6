"""Model bundles: the card round-trips, and every broken bundle gets one clear error."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from cityseg.bundle import MODELS_ENV, Artifact, Bundle, ModelCard
from cityseg.errors import BundleError
from cityseg.inference import Segmenter
from cityseg.labels import class_space

from support import make_palette_bundle, palette_card


def test_card_roundtrip(tmp_path):
    bundle = make_palette_bundle(tmp_path / "b")
    loaded = Bundle.load(tmp_path / "b")
    assert loaded.card == bundle.card
    assert loaded.card.artifacts["onnx"].details["opset"] == 17
    assert Bundle.load(tmp_path / "b" / "model.json").path == tmp_path / "b"


def test_tiles_card_roundtrip_and_old_cards_without_tile_scale(tmp_path):
    from cityseg.bundle.card import replace_card

    bundle = make_palette_bundle(tmp_path / "b")
    assert bundle.card.fit == "stretch" and bundle.card.tile_scale == 1.0
    bundle.card = replace_card(bundle.card, fit="tiles", tile_scale=0.5)
    bundle.save()
    raw = json.loads((tmp_path / "b" / "model.json").read_text())
    assert (raw["fit"], raw["tile_scale"]) == ("tiles", 0.5)
    loaded = Bundle.load(tmp_path / "b")
    assert loaded.card == bundle.card and loaded.card.tile_grid((100, 400)).count == 2  # 50x200 in two 64x128 tiles
    del raw["tile_scale"]
    raw["fit"] = "letterbox"
    (tmp_path / "b" / "model.json").write_text(json.dumps(raw))
    old = Bundle.load(tmp_path / "b").card
    assert (old.fit, old.tile_scale, old.tile_grid((100, 400))) == ("letterbox", 1.0, None)


def test_create_refuses_to_overwrite(tmp_path):
    make_palette_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match="already exists.*--force"):
        Bundle.create(tmp_path / "b", palette_card())
    Bundle.create(tmp_path / "b", palette_card(), overwrite=True)


def test_missing_directory_and_card(tmp_path):
    with pytest.raises(BundleError, match="no such model bundle"):
        Bundle.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="model.json is missing"):
        Bundle.load(tmp_path / "empty")


def test_corrupt_card(tmp_path):
    make_palette_bundle(tmp_path / "b")
    (tmp_path / "b" / "model.json").write_text("{ not json")
    with pytest.raises(BundleError, match="corrupt model card"):
        Bundle.load(tmp_path / "b")


def test_missing_artifact_file(tmp_path):
    make_palette_bundle(tmp_path / "b")
    (tmp_path / "b" / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"model.onnx: the card lists artifact 'onnx' but the file is missing"):
        Bundle.load(tmp_path / "b")


@pytest.mark.parametrize("change, message", [
    ({"class_names": list(class_space("trainid").names[:18])}, "class_names .18 names. do not match"),
    ({"input_height": 0}, "input size must be positive"),
    ({"resize": "cubic"}, "resize 'cubic' is not one of"),
    ({"class_space": "coco"}, "class_space: 'coco' is not one of"),
    ({"normalization": {"scale": 1.0, "mean": [0, 0, 0], "std": [1, 0, 1]}}, "std must be positive"),
    ({"colour_order": "RGB"}, "unknown key"),
    ({"fit": "squares"}, "fit: 'squares' is not one of 'stretch', 'letterbox', 'tiles'"),
    ({"fit": "tiles", "tile_scale": 0}, r"tile_scale 0.0 is not a positive number .the factor frames are resized by"),
    ({"fit": "tiles", "tile_scale": -0.5}, "tile_scale -0.5 is not a positive number"),
    ({"tile_scale": "half"}, "tile_scale"),
])
def test_inconsistent_cards_are_rejected(tmp_path, change, message):
    make_palette_bundle(tmp_path / "b")
    card_path = tmp_path / "b" / "model.json"
    raw = json.loads(card_path.read_text())
    raw.update(change)
    card_path.write_text(json.dumps(raw))
    with pytest.raises(BundleError, match=message):
        Bundle.load(tmp_path / "b")


def test_add_artifact_requires_the_file(tmp_path):
    bundle = make_palette_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match="cannot record a missing artifact"):
        bundle.add_artifact("trt", Artifact("model.engine", "tensorrt"))


def test_card_for_labelid_space():
    space = class_space("labelid")
    card = ModelCard("m", "unet", 128, 128, "labelid", space.names)
    assert card.num_classes == 34 and card.space is space


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A working directory, a $CITYSEG_MODELS folder and an install prefix, all without bundles yet;
    no ament index, so only these places are searched."""
    work, env, prefix = tmp_path / "work", tmp_path / "env", tmp_path / "prefix"
    for d in (work, env, prefix):
        d.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv(MODELS_ENV, raising=False)
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.setitem(sys.modules, "ament_index_python", None)  # import fails: no ROS here
    monkeypatch.setitem(sys.modules, "ament_index_python.packages", None)
    return work, env, prefix / "share" / "cityseg" / "models"


def named_bundle(folder, name="pal", height=64):
    """A real bundle ``folder/name``; ``height`` tells the copies apart."""
    return make_palette_bundle(folder / name, height=height)


def test_a_bare_name_is_found_in_models_then_env_then_share(places, monkeypatch):
    work, env, share = places
    named_bundle(share, height=32)
    assert Bundle.load("pal").path == share / "pal"
    named_bundle(env, height=48)
    monkeypatch.setenv(MODELS_ENV, os.pathsep.join([str(work / "empty"), str(env)]))
    assert Bundle.load("pal").path == env / "pal"
    named_bundle(work / "models", height=96)
    loaded = Bundle.load("pal")
    assert loaded.path == Path("models") / "pal" and loaded.card.input_height == 96


def test_a_bare_name_found_nowhere_else_is_a_path(places):
    work, _, _ = places
    named_bundle(work)  # ./pal: used as a path, after the bundle folders
    assert Bundle.load("pal").path == Path("pal")
    (work / "models" / "pal").mkdir(parents=True)  # a folder without a card is not a bundle
    assert Bundle.load("pal").path == Path("pal")


def test_a_name_found_nowhere_lists_where_it_looked_and_the_fix(places):
    work, _, share = places
    with pytest.raises(BundleError) as err:
        Bundle.load("unet_lite")
    message = str(err.value)
    for place in (f"models{os.sep}unet_lite (./models)", f"${MODELS_ENV} (not set)",
                  f"{share / 'unet_lite'} (installed)", f"{work / 'unet_lite'} (as a path)"):
        assert place in message
    assert "no model bundle of that name" in message and "models/README.md" in message
    assert f"folder named by {MODELS_ENV}" in message and "./unet_lite" in message


def test_paths_are_not_looked_up(places):
    work, _, share = places
    named_bundle(share)
    with pytest.raises(BundleError, match="no such model bundle directory"):
        Bundle.load(Path("sub") / "pal")
    assert Bundle.load(share / "pal").path == share / "pal"
    named_bundle(work)
    assert Bundle.load(Path("pal") / "model.json").path == Path("pal")


def test_every_consumer_gets_the_lookup(places):
    work, _, _ = places
    named_bundle(work / "models")
    segmenter = Segmenter("pal", backend="onnxruntime")  # the node's route: model parameter -> Segmenter
    assert segmenter.bundle.path == Path("models") / "pal"
    frame = np.zeros((64, 128, 3), np.uint8)
    assert segmenter.segment(frame, "RGB").mask.shape == (64, 128)


# Cards of imported models: layout, custom classes, output layout and confidence -----------------

LANE_LABELS = {"name": "lane", "ignore_id": 255,
               "classes": [{"id": 10, "name": "background", "color": [0, 0, 0]},
                           {"id": 20, "name": "lane", "color": [255, 255, 0]}]}


def test_card_written_before_import_existed_still_loads(tmp_path):
    bundle = make_palette_bundle(tmp_path / "b")
    raw = json.loads((bundle.path / "model.json").read_text())
    for key in ("input_layout", "labels", "imported"):
        raw.pop(key)
    for artifact in raw["artifacts"].values():
        artifact.pop("output_layout")
        artifact.pop("confidence")
    (bundle.path / "model.json").write_text(json.dumps(raw))
    card = Bundle.load(bundle.path).card
    assert card.input_layout == "NHWC" and card.labels is None and card.imported == {}
    assert card.artifacts["onnx"].output_layout == "NHWC" and card.artifacts["onnx"].confidence is None
    assert card.space is class_space("trainid") and card.input_shape == (64, 128, 3)


def test_custom_label_card_roundtrip_and_nchw_preprocess(tmp_path):
    card = ModelCard(name="lane", architecture="imported:pytorch", input_height=8, input_width=16,
                     class_space="custom", class_names=("background", "lane"), labels=LANE_LABELS,
                     input_layout="NCHW", imported={"source": "lane.onnx"})
    Bundle.create(tmp_path / "b", card)
    again = Bundle.load(tmp_path / "b").card
    assert again.space.ids == (10, 20) and tuple(again.space.palette[20]) == (255, 255, 0)
    assert again.input_shape == (3, 8, 16) and again.imported == {"source": "lane.onnx"}
    frame = np.random.default_rng(0).integers(0, 256, (8, 16, 3), dtype=np.uint8)
    batch = again.preprocess([frame])
    assert batch.shape == (1, 3, 8, 16) and batch.flags.c_contiguous
    expected = frame.astype(np.float32) / 255.0
    assert np.allclose(batch[0], expected.transpose(2, 0, 1))


@pytest.mark.parametrize("changes, message", [
    ({"class_space": "custom"}, "needs the card's 'labels'"),
    ({"class_space": "custom", "labels": {"classes": []}}, "non-empty list"),
    ({"class_space": "custom", "labels": LANE_LABELS}, "do not match the lane label set"),
])
def test_custom_cards_are_validated(changes, message):
    fields = dict(name="x", architecture="a", input_height=8, input_width=16, class_space="trainid",
                  class_names=class_space("trainid").names)
    with pytest.raises(ValueError, match=message):
        ModelCard(**{**fields, **changes})


def test_invalid_layout_in_a_card_file_is_named(tmp_path):
    bundle = make_palette_bundle(tmp_path / "b")
    raw = json.loads((bundle.path / "model.json").read_text())
    raw["input_layout"] = "CHW"
    (bundle.path / "model.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="input_layout: 'CHW' is not one of 'NHWC', 'NCHW'"):
        Bundle.load(bundle.path)


def test_class_fields_record_any_label_set():
    from cityseg.bundle import class_fields
    from cityseg.labels import parse_label_set

    fields = dict(name="x", architecture="a", input_height=8, input_width=16)
    assert ModelCard(**fields, **class_fields(class_space("labelid"))).space is class_space("labelid")
    lane = parse_label_set(LANE_LABELS, "lane.yaml")
    card = ModelCard(**fields, **class_fields(lane))
    assert card.class_space == "custom" and card.space.ids == (10, 20) and card.space.name == "lane"

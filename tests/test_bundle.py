"""Model bundles: the card round-trips, and every broken bundle gets one clear error."""

import json

import pytest

from cityseg.bundle import Artifact, Bundle, ModelCard
from cityseg.errors import BundleError
from cityseg.labels import class_space
from support import make_palette_bundle, palette_card


def test_card_roundtrip(tmp_path):
    bundle = make_palette_bundle(tmp_path / "b")
    loaded = Bundle.load(tmp_path / "b")
    assert loaded.card == bundle.card
    assert loaded.card.artifacts["onnx"].details["opset"] == 17
    assert Bundle.load(tmp_path / "b" / "model.json").path == tmp_path / "b"


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

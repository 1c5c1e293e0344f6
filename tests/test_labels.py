"""The label LUTs agree with cityscapesscripts' table in both class spaces."""

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label, trainId2label

from cityseg.errors import InputError
from cityseg.labels import (
    CATEGORIES,
    IGNORE,
    class_space,
    conversion_lut,
    convert_ids,
    label_id_categories,
    label_set_to_dict,
    load_label_set,
    parse_label_set,
)


def test_trainid_space_matches_official_table():
    space = class_space("trainid")
    assert space.num_classes == 19 and space.ignore_index == IGNORE
    for train_id, name in enumerate(space.names):
        label = trainId2label[train_id]
        assert label.name == name
        assert space.to_label_id[train_id] == label.id
        assert tuple(space.colors[train_id]) == label.color


def test_labelid_space_has_all_34_ids():
    space = class_space("labelid")
    assert space.num_classes == 34 and space.ignore_index is None
    assert space.names[26] == "car" and tuple(space.palette[26]) == id2label[26].color


def test_labelid_to_trainid_maps_every_label_and_ignores_void():
    lut = conversion_lut(class_space("labelid"), class_space("trainid"))
    for label_id in range(34):
        expected = id2label[label_id].trainId
        assert lut[label_id] == (expected if 0 <= expected < 255 else IGNORE)
    assert lut[200] == IGNORE


def test_roundtrip_trainid_through_labelid_is_identity():
    train, label = class_space("trainid"), class_space("labelid")
    mask = np.arange(19, dtype=np.uint8).reshape(1, 19)
    assert np.array_equal(convert_ids(convert_ids(mask, train, label), label, train), mask)


def test_ignored_trainid_becomes_unlabeled_labelid():
    assert convert_ids(np.array([IGNORE], np.uint8), class_space("trainid"), class_space("labelid"))[0] == 0


def test_categories_follow_official_order():
    assert CATEGORIES == ("void", "flat", "construction", "object", "nature", "sky", "human", "vehicle")
    assert label_id_categories()[26] == CATEGORIES.index("vehicle")


@pytest.mark.parametrize("alias", ["trainId", "train_id", "TRAINID"])
def test_class_space_aliases(alias):
    assert class_space(alias).name == "trainid"


def test_unknown_space_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown label set 'coco'"):
        class_space("coco")


# Custom label sets (YAML) -------------------------------------------------------------------

LANES_YAML = """\
name: lanes
ignore_id: 0
classes:
  - {id: 3, name: road, color: [128, 64, 128]}
  - {id: 7, name: marking, color: [255, 255, 255]}
  - {id: 9, name: curb, color: [10, 20, 30]}
label_map:
  7: 3
  24: 7
  25: 9
  1: 0
"""


def test_builtin_aliases_load_the_cityscapes_sets():
    assert load_label_set("cityscapes") is class_space("trainid")
    assert load_label_set("cityscapes-labelid") is class_space("labelid")


def test_yaml_label_set_ids_names_colours_and_luts(tmp_path):
    path = tmp_path / "lanes.yaml"
    path.write_text(LANES_YAML)
    space = load_label_set(path)
    assert space.name == "lanes" and space.names == ("road", "marking", "curb")
    assert space.ids == (3, 7, 9) and space.ignore_index == 0 and not space.is_cityscapes
    assert [tuple(c.color) for c in space.classes] == [(128, 64, 128), (255, 255, 255), (10, 20, 30)]
    assert tuple(space.palette[7]) == (255, 255, 255) and tuple(space.colors[2]) == (10, 20, 30)
    assert list(space.index_to_id()[:4]) == [3, 7, 9, IGNORE]
    id_to_index = space.id_to_index()
    assert (id_to_index[3], id_to_index[9], id_to_index[0], id_to_index[4]) == (0, 2, IGNORE, IGNORE)
    # label map: dataset id -> class index for training targets; the ignore id and the rest -> IGNORE
    assert (space.from_label_id[7], space.from_label_id[24], space.from_label_id[25]) == (0, 1, 2)
    assert space.from_label_id[1] == IGNORE and space.from_label_id[8] == IGNORE


def test_label_set_roundtrips_through_its_mapping(tmp_path):
    path = tmp_path / "lanes.yaml"
    path.write_text(LANES_YAML)
    space = load_label_set(path)
    again = parse_label_set(label_set_to_dict(space, with_label_map=True), "card")
    assert again.ids == space.ids and again.names == space.names
    assert np.array_equal(again.from_label_id, space.from_label_id)
    assert np.array_equal(again.palette, space.palette)


def test_without_label_map_the_dataset_holds_the_class_ids():
    space = parse_label_set({"classes": [{"id": 1, "name": "a", "color": [1, 2, 3]},
                                         {"id": 5, "name": "b", "color": [4, 5, 6]}]}, "x")
    assert space.from_label_id[1] == 0 and space.from_label_id[5] == 1 and space.from_label_id[0] == IGNORE


def test_custom_sets_do_not_convert_to_cityscapes(tmp_path):
    space = parse_label_set({"classes": [{"id": 0, "name": "a", "color": [1, 2, 3]}]}, "x")
    with pytest.raises(ValueError, match="cannot be converted"):
        conversion_lut(space, class_space("labelid"))


@pytest.mark.parametrize("text, problem", [
    ("classes: []", "non-empty list"),
    ("classes:\n  - {id: 0, name: a}", "exactly the keys id, name, color"),
    ("classes:\n  - {id: 0, name: a, color: [1, 2]}", r"color must be \[R, G, B\]"),
    ("classes:\n  - {id: 300, name: a, color: [1, 2, 3]}", "ids must be within 0-255"),
    ("classes:\n  - {id: 1, name: a, color: [1, 2, 3]}\n  - {id: 1, name: b, color: [1, 2, 3]}",
     r"\[1\] are used twice"),
    ("ignore_id: 1\nclasses:\n  - {id: 1, name: a, color: [1, 2, 3]}", "not a class id"),
    ("classes:\n  - {id: 1, name: a, color: [1, 2, 3]}\nlabel_map: {7: 4}", "sends 7 to 4, which is no class id"),
    ("colours: []", "unknown key"),
    ("classes: [", "not valid YAML"),
])
def test_bad_label_set_yaml_is_named(tmp_path, text, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as info:
        load_label_set(path)
    assert str(path) in str(info.value)


def test_unknown_label_set_name_says_what_is_accepted():
    with pytest.raises(InputError, match="coco: not a built-in label set; use cityscapes, "
                                         "cityscapes-labelid, camvid or a label-set YAML file"):
        load_label_set("coco")


def test_training_ignore_index_and_class_index_colours(tmp_path):
    path = tmp_path / "lanes.yaml"
    path.write_text(LANES_YAML)
    space = load_label_set(path)
    # targets from from_label_id mark unmapped pixels IGNORE, whatever the YAML's ignore_id (0)
    assert space.target_ignore_index == IGNORE and class_space("labelid").target_ignore_index is None
    assert class_space("trainid").target_ignore_index == IGNORE
    palette = space.index_palette()
    assert [tuple(palette[k]) for k in range(3)] == [(128, 64, 128), (255, 255, 255), (10, 20, 30)]
    assert not palette[3:].any()
    assert np.array_equal(class_space("trainid").index_palette(), class_space("trainid").palette)


def test_a_label_set_knows_whether_it_has_a_label_map(tmp_path):
    path = tmp_path / "lanes.yaml"
    path.write_text(LANES_YAML)
    mapped = load_label_set(path)
    plain = parse_label_set({"classes": [{"id": 1, "name": "a", "color": [1, 2, 3]}]}, "x")
    assert mapped.has_label_map and not plain.has_label_map
    assert class_space("trainid").has_label_map and class_space("labelid").has_label_map
    assert "label_map" not in label_set_to_dict(plain)
    assert parse_label_set(label_set_to_dict(mapped, with_label_map=True), "card").has_label_map


def test_card_fields_carry_the_label_map_and_old_cards_still_load(tmp_path):
    from cityseg.bundle import ModelCard, class_fields

    path = tmp_path / "lanes.yaml"
    path.write_text(LANES_YAML)
    space = load_label_set(path)
    base = {"name": "m", "architecture": "a", "input_height": 8, "input_width": 16}
    fields = class_fields(space)
    assert {int(k): v for k, v in fields["labels"]["label_map"].items()} == {7: 3, 24: 7, 25: 9}
    card = ModelCard(**base, **fields)
    assert np.array_equal(card.space.from_label_id, space.from_label_id) and card.space.has_label_map
    old = {k: v for k, v in fields["labels"].items() if k != "label_map"}  # a card from before
    card = ModelCard(**base, class_space="custom", class_names=space.names, labels=old)
    assert card.space.ids == space.ids and not card.space.has_label_map
    plain = parse_label_set(old, "x")
    assert "label_map" not in class_fields(plain)["labels"]
    assert "label_map" in class_fields(plain, with_label_map=True)["labels"]


def test_mask_id_space_one_rule_for_every_caller():
    from cityseg.errors import BundleError
    from cityseg.labels import AUTO_ID_SPACE, mask_id_space

    cityscapes = class_space("trainid")
    own = parse_label_set({"name": "lane", "classes": [{"id": 10, "name": "background", "color": [0, 0, 0]},
                                                       {"id": 20, "name": "lane", "color": [255, 255, 0]}]}, "test")
    assert mask_id_space(AUTO_ID_SPACE, cityscapes) == "labelid"
    assert mask_id_space(AUTO_ID_SPACE, class_space("labelid")) == "labelid"
    assert mask_id_space(AUTO_ID_SPACE, own) is None
    assert mask_id_space("trainid", cityscapes) == "trainid"
    assert mask_id_space(None, cityscapes) is None and mask_id_space(None, own) is None
    with pytest.raises(BundleError, match=r"models/lane: --id-space 'labelid' needs a Cityscapes model.*"
                                          r"has its own label set \(lane\)"):
        mask_id_space("labelid", own, where="models/lane", option="--id-space")


def test_the_built_in_camvid_set_is_segnets_eleven_classes_with_void_11():
    camvid = load_label_set("camvid")
    assert camvid.names == ("sky", "building", "pole", "road", "pavement", "tree", "sign symbol",
                            "fence", "car", "pedestrian", "bicyclist")
    assert camvid.ignore_index == 11 and not camvid.is_cityscapes and camvid.has_label_map
    assert tuple(camvid.colors[3]) == (128, 64, 128) and tuple(camvid.colors[10]) == (0, 128, 192)
    np.testing.assert_array_equal(camvid.from_label_id[:12], [*range(11), 255])
    assert camvid.valid_values == frozenset(range(12))
    assert load_label_set("CamVid") is camvid


def test_a_custom_set_without_label_map_allows_only_its_ids_and_ignore():
    from cityseg.labels import LabelClass, custom_space

    space = custom_space("two", [LabelClass(1, "a", (1, 2, 3)), LabelClass(4, "b", (4, 5, 6))], ignore_id=255)
    assert space.valid_values == frozenset({1, 4, 255})
    mapped = custom_space("two", [LabelClass(1, "a", (1, 2, 3))], label_map={7: 1})
    assert mapped.valid_values is None  # a label_map ignores what it does not name

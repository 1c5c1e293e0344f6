"""The label LUTs agree with cityscapesscripts' table in both class spaces."""

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label, trainId2label

from cityseg.labels import (IGNORE, CATEGORIES, class_space, conversion_lut, convert_ids,
                            label_id_categories)


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
    with pytest.raises(ValueError, match="unknown class space 'coco'"):
        class_space("coco")

"""Dataset layouts (cityscapes, camvid, paired), `cityseg data check`, and their bad inputs, on
real PNG trees written here."""

from __future__ import annotations

import numpy as np
import pytest

from cityseg.cli import main
from cityseg.data import DatasetError, make_splits
from cityseg.data.config import DataConfig
from cityseg.data.layouts import detect_layout, find_split
from cityseg.data.pipeline import decode_sample
from cityseg.fileio import write_png

from support import CAMVID_PREFIX, camvid_scene, flat_pair, scene_seed, write_camvid_tree, write_pair


def camvid_data(root, **changes) -> DataConfig:
    return DataConfig(root=str(root), layout="camvid", class_space="camvid", height=96, width=128,
                      cache_dir=None, **changes)


def write_paired_tree(root, splits=("train", "val"), nested: bool = True):
    for split in splits:
        for k in range(3):
            image, mask = camvid_scene(seed=k)
            stem = f"seq{k % 2}/{k:06d}" if nested else f"{k:06d}"
            write_png(root / "images" / split / f"{stem}.png", image[..., ::-1])
            write_png(root / "labels" / split / f"{stem}.png", mask)
    return root


def write_config(tmp_path, layout="camvid", class_space="camvid", root=None):
    path = tmp_path / "data.yaml"
    root_line = f"  root: {root}\n" if root else ""
    path.write_text(f"data:\n  layout: {layout}\n  class_space: {class_space}\n{root_line}"
                    "  height: 96\n  width: 128\n")
    return path


# ------------------------------------------------------------------------------------------
# camvid: SegNet's list files, absolute prefixes resolved against the root
# ------------------------------------------------------------------------------------------

def test_camvid_list_files_resolve_against_the_data_root_wherever_it_is(tmp_path):
    root = write_camvid_tree(tmp_path / "somewhere" / "CamVid")
    data = camvid_data(root)
    splits = make_splits(data)
    assert [len(splits[s]) for s in ("train", "val")] == [4, 2]
    test = find_split(data.root, "camvid", "test")
    assert len(test) == 2 and all(s.split == "test" for s in test)
    first = splits["train"][0]
    assert first.key == "0001TP_train0000"
    assert first.image == root / "train" / "0001TP_train0000.png"
    assert first.label == root / "trainannot" / "0001TP_train0000.png"
    assert CAMVID_PREFIX in (root / "train.txt").read_text()  # the file still names /SegNet/...


def test_camvid_annotations_become_targets_with_void_ignored(tmp_path):
    root = write_camvid_tree(tmp_path / "CamVid")
    data = camvid_data(root)
    sample = make_splits(data)["train"][0]
    image, target = decode_sample(sample, data)
    _, annotation = camvid_scene(seed=scene_seed("train", 0))
    assert image.shape == (96, 128, 3)
    assert (target[annotation == 11] == 255).all()           # void -> ignore
    np.testing.assert_array_equal(target[annotation < 11], annotation[annotation < 11])


def test_relative_list_entries_are_taken_from_the_root(tmp_path):
    root = write_camvid_tree(tmp_path / "CamVid", prefix="")
    text = (root / "train.txt").read_text().replace(" /", " ").replace("\n/", "\n")
    (root / "train.txt").write_text(text.lstrip("/"))
    assert len(find_split(root, "camvid", "train")) == 4


@pytest.mark.parametrize("case, message", [
    ("missing annotation", r"entries of .*train.txt name no file(.|\n)*train.txt:1: .*trainannot/0001TP_train0000.png"),
    ("list names a missing image", r"train.txt:2: .*/train/nosuch.png"),
    ("empty list file", r"train.txt: the list file is empty"),
    ("malformed line", r"train.txt are not one 'IMAGE ANNOTATION' pair(.|\n)*line 1"),
    ("no list file", r"val.txt: no such list file"),
])
def test_camvid_refuses_broken_list_files_naming_the_file(tmp_path, case, message):
    root = write_camvid_tree(tmp_path / "CamVid")
    lines = (root / "train.txt").read_text().splitlines()
    if case == "missing annotation":
        (root / "trainannot" / "0001TP_train0000.png").unlink()
    elif case == "list names a missing image":
        lines[1] = f"{CAMVID_PREFIX}/train/nosuch.png {lines[1].split()[1]}"
        (root / "train.txt").write_text("\n".join(lines))
    elif case == "empty list file":
        (root / "train.txt").write_text("\n")
    elif case == "malformed line":
        (root / "train.txt").write_text(lines[0].split()[0] + "\n")
    else:
        (root / "val.txt").unlink()
    with pytest.raises(DatasetError, match=message):
        make_splits(camvid_data(root))


def test_annotation_of_another_size_is_refused_before_any_pixel_is_decoded(tmp_path):
    root = write_camvid_tree(tmp_path / "CamVid")
    write_png(root / "trainannot" / "0001TP_train0001.png", np.zeros((48, 64), np.uint8))
    with pytest.raises(DatasetError, match=r"0001TP_train0001.png: size 64x48 differs from its image's 128x96"):
        make_splits(camvid_data(root))


@pytest.mark.parametrize("value", [12, 200])
def test_label_values_outside_the_camvid_set_are_refused(tmp_path, value):
    root = write_camvid_tree(tmp_path / "CamVid")
    bad = np.full((96, 128), 3, np.uint8)
    bad[5, 5] = value
    write_png(root / "trainannot" / "0001TP_train0002.png", bad)
    data = camvid_data(root)
    sample = make_splits(data)["train"][2]
    with pytest.raises(DatasetError, match=rf"0001TP_train0002.png: contains value\(s\) \[{value}\], which are "
                                           r"neither a class nor void of the label set camvid"):
        decode_sample(sample, data)


def test_a_cityscapes_folder_read_as_camvid_and_the_reverse_name_the_right_layout(tmp_path):
    cityscapes = tmp_path / "cs"
    for split in ("train", "val"):
        write_pair(cityscapes, split, "aachen", "aachen_000000_000019", *flat_pair(7))
    camvid = write_camvid_tree(tmp_path / "CamVid")
    assert detect_layout(cityscapes) == "cityscapes" and detect_layout(camvid) == "camvid"
    with pytest.raises(DatasetError, match=r"looks like a cityscapes folder, but the layout is camvid; "
                                           r"set data.layout: cityscapes"):
        make_splits(camvid_data(cityscapes))
    with pytest.raises(DatasetError, match=r"looks like a camvid folder, but the layout is cityscapes; "
                                           r"set data.layout: camvid"):
        make_splits(DataConfig(root=str(camvid), cache_dir=None))


def test_a_non_cityscapes_layout_needs_its_own_label_set():
    with pytest.raises(ValueError, match=r"data.layout camvid holds annotations in the dataset's own class "
                                         r"ids(.|\n)*set data.class_space to its label set"):
        DataConfig(layout="camvid", class_space="trainid")


# ------------------------------------------------------------------------------------------
# paired: images/<split>/** and labels/<split>/** matched by stem
# ------------------------------------------------------------------------------------------

def test_paired_layout_matches_by_stem_in_nested_folders(tmp_path):
    root = write_paired_tree(tmp_path / "kitti")
    data = DataConfig(root=str(root), layout="paired", class_space="camvid", height=96, width=128,
                      cache_dir=None)
    splits = make_splits(data)
    assert [s.key for s in splits["train"]] == ["seq0/000000", "seq0/000002", "seq1/000001"]
    assert all(s.label.relative_to(root / "labels" / "train").with_suffix("").as_posix() == s.key
               for s in splits["train"])


def test_paired_layout_with_config_named_folders_and_jpeg_images(tmp_path):
    root = tmp_path / "own"
    for split in ("train", "val"):
        image, mask = camvid_scene()
        write_png(root / "labels_png" / split / "f1.png", mask)
        import cv2

        (root / "rgb" / split).mkdir(parents=True)
        cv2.imwrite(str(root / "rgb" / split / "f1.jpg"), image)
    data = DataConfig(root=str(root), layout="paired", paired_dirs=("rgb", "labels_png"),
                      class_space="camvid", height=96, width=128, cache_dir=None)
    assert [s.image.name for s in make_splits(data)["val"]] == ["f1.jpg"]


def test_paired_layout_refuses_an_image_without_annotation_and_the_reverse(tmp_path):
    root = write_paired_tree(tmp_path / "kitti", nested=False)
    (root / "labels" / "train" / "000001.png").unlink()
    write_png(root / "labels" / "train" / "000009.png", np.zeros((96, 128), np.uint8))
    data = DataConfig(root=str(root), layout="paired", class_space="camvid", cache_dir=None)
    with pytest.raises(DatasetError, match=r"1 images without an annotation of the same stem(.|\n)*000001.png"
                                           r"(.|\n)*1 annotations without an image of the same stem(.|\n)*000009.png"):
        make_splits(data)


# ------------------------------------------------------------------------------------------
# `cityseg data check`
# ------------------------------------------------------------------------------------------

def test_data_check_prints_the_table_of_every_split_and_writes_nothing(tmp_path, capsys):
    root = write_camvid_tree(tmp_path / "CamVid", {"train": 3, "val": 2, "test": 2})
    config = write_config(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    code = main(["data", "check", "--config", str(config), "--data-root", str(root), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert sorted(p for p in tmp_path.rglob("*")) == before
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.split()}
    assert lines["images"] == ["3", "2", "2"]
    void = next(line for line in out.splitlines() if line.startswith("void (ignored)"))
    assert float(void.split()[-1]) == pytest.approx(100 * (24 * 16) / (96 * 128), abs=0.01)
    shares = [float(line.split()[-3]) for line in out.splitlines()
              if line.split() and line.split()[0] in ("sky", "building", "road")]
    assert all(0 <= v <= 100 for v in shares)
    assert "train image sizes: 128x96 (3)" in out and "no problems found" in out


@pytest.mark.parametrize("case, message", [
    ("value 12", r"0001TP_val0000.png: holds value\(s\) \[12\], neither a class nor void of the label set camvid"),
    ("unreadable", r"0001TP_train0001.png: cannot decode it as an image"),
    ("empty file", r"0001TP_train0002.png: the file is empty"),
    ("no test list", None),
])
def test_data_check_refuses_each_bad_file_naming_it_exit_2(tmp_path, capsys, case, message):
    root = write_camvid_tree(tmp_path / "CamVid")
    if case == "value 12":
        write_png(root / "valannot" / "0001TP_val0000.png", np.full((96, 128), 12, np.uint8))
    elif case == "unreadable":
        path = root / "train" / "0001TP_train0001.png"
        path.write_bytes(path.read_bytes()[:60])  # the header intact, the pixels cut off
    elif case == "empty file":
        (root / "train" / "0001TP_train0002.png").write_bytes(b"")
    else:
        (root / "test.txt").unlink()  # a layout without test: checked without it
    code = main(["data", "check", "--config", str(write_config(tmp_path)), "--data-root", str(root), "--quiet"])
    captured = capsys.readouterr()
    if message is None:
        assert code == 0 and "test" not in captured.out.splitlines()[2]
        return
    assert code == 2
    assert "Traceback" not in captured.err
    assert captured.err.startswith("cityseg data: error: ")
    import re

    assert re.search(message, captured.err), captured.err


def test_data_check_on_an_empty_split_and_a_wrong_layout(tmp_path, capsys):
    root = write_paired_tree(tmp_path / "kitti", splits=("train",))
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    config = write_config(tmp_path, layout="paired")
    assert main(["data", "check", "--config", str(config), "--data-root", str(root), "--quiet"]) == 2
    assert "images/val: no .png/.jpg/.jpeg images; the val split is empty" in capsys.readouterr().err
    assert main(["data", "check", "--config", str(config), "--data-root", str(root), "--layout", "camvid",
                 "--quiet"]) == 2
    assert "looks like a paired folder, but the layout is camvid" in capsys.readouterr().err

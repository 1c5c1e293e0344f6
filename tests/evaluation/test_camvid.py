"""`cityseg evaluate` on CamVid-layout ground truth: the test split, a CamVid bundle, and a
Cityscapes bundle scored through the cityscapes-to-camvid map (real PNGs, real ONNX models)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cityseg.cli import main
from cityseg.label_maps import CITYSCAPES_TO_CAMVID, load_label_map
from cityseg.labels import class_space

from support import camvid_bundle, make_palette_bundle, painted_scene, write_camvid_tree

CITYSCAPES_TO_CAMVID_LUT = load_label_map("cityscapes-to-camvid").index_lut


def cityscapes_painted_camvid_truth(height, width, seed):
    """An image painted in Cityscapes colours, its truth in CamVid ids through the map."""
    image, trainids = painted_scene(height, width, "trainid", seed)
    return image, CITYSCAPES_TO_CAMVID_LUT[trainids]


def evaluate(args, tmp_path, capsys):
    out = tmp_path / "scores.json"
    code = main(["evaluate", *map(str, args), "--json", str(out), "--force"])
    captured = capsys.readouterr()
    return code, (json.loads(out.read_text()) if code == 0 else None), captured


def test_a_camvid_bundle_scores_its_test_split_with_void_ignored(tmp_path, capsys):
    root = write_camvid_tree(tmp_path / "CamVid")
    bundle = camvid_bundle(tmp_path / "bundle")
    code, scores, captured = evaluate(["--model", bundle.path, "--data-root", root, "--layout", "camvid",
                                       "--split", "test"], tmp_path, capsys)
    assert code == 0, captured.err
    assert scores["miou"] == pytest.approx(1.0)
    assert scores["num_images"] == 2
    assert scores["num_pixels"] == 2 * (96 * 128 - 24 * 16)  # void (11) is not scored
    assert list(scores["class_iou"]) == list(class_space("camvid").names)


def test_a_cityscapes_bundle_scores_on_camvid_through_the_shipped_map(tmp_path, capsys):
    root = write_camvid_tree(tmp_path / "CamVid", scene=cityscapes_painted_camvid_truth)
    bundle = make_palette_bundle(tmp_path / "cityscapes", "trainid", 96, 128)
    code, scores, captured = evaluate(["--model", bundle.path, "--data-root", root, "--layout", "camvid",
                                       "--split", "test", "--label-map", "cityscapes-to-camvid"], tmp_path, capsys)
    assert code == 0, captured.err
    assert scores["miou"] == pytest.approx(1.0)
    assert "label set camvid" in captured.out
    # without the map, the Cityscapes ids would be read as CamVid ones: refused
    code, _, captured = evaluate(["--model", bundle.path, "--data-root", root, "--layout", "camvid",
                                  "--split", "test"], tmp_path, capsys)
    assert code == 2 and "--label-map cityscapes-to-camvid" in captured.err


def test_the_map_sends_every_cityscapes_class_where_the_issue_says():
    camvid, cityscapes = class_space("camvid"), class_space("trainid")
    assert set(CITYSCAPES_TO_CAMVID) == set(cityscapes.names)
    lut = CITYSCAPES_TO_CAMVID_LUT
    assert camvid.names[lut[cityscapes.names.index("rider")]] == "bicyclist"
    assert camvid.names[lut[cityscapes.names.index("terrain")]] == "tree"
    assert camvid.names[lut[cityscapes.names.index("traffic light")]] == "sign symbol"


def test_a_label_map_yaml_naming_a_class_the_target_lacks_is_refused(tmp_path, capsys):
    root = write_camvid_tree(tmp_path / "CamVid")
    bundle = make_palette_bundle(tmp_path / "cityscapes", "trainid", 96, 128)
    bad = tmp_path / "map.yaml"
    bad.write_text("source: cityscapes\ntarget: camvid\nmap:\n  road: road\n  sidewalk: sidewalk\n")
    code, _, captured = evaluate(["--model", bundle.path, "--data-root", root, "--layout", "camvid",
                                  "--split", "test", "--label-map", bad], tmp_path, capsys)
    assert code == 2
    assert captured.err.strip().endswith("target class 'sidewalk' is not a class of the target label set "
                                         "camvid (classes: sky, building, pole, road, pavement, tree, sign "
                                         "symbol, fence, car, pedestrian, bicyclist); fix the map")
    assert "map.yaml" in captured.err


def test_a_user_label_map_yaml_scores_like_the_built_in_one(tmp_path, capsys):
    root = write_camvid_tree(tmp_path / "CamVid", scene=cityscapes_painted_camvid_truth)
    bundle = make_palette_bundle(tmp_path / "cityscapes", "trainid", 96, 128)
    own = tmp_path / "own.yaml"
    own.write_text("source: cityscapes\ntarget: camvid\nmap:\n"
                   + "".join(f"  {k}: {v}\n" for k, v in CITYSCAPES_TO_CAMVID.items() if k != "sky"))
    code, scores, captured = evaluate(["--model", bundle.path, "--data-root", root, "--layout", "camvid",
                                       "--split", "val", "--label-map", own], tmp_path, capsys)
    assert code == 0, captured.err
    iou = scores["class_iou"]
    assert iou["road"] == pytest.approx(1.0)
    assert iou["sky"] in (0.0, None) or np.isnan(iou["sky"])  # sky unmapped: predicted as void, a miss


def test_split_test_where_the_layout_has_none_is_refused(tmp_path, capsys):
    root = write_camvid_tree(tmp_path / "CamVid", {"train": 2, "val": 2})
    bundle = camvid_bundle(tmp_path / "bundle")
    code, _, captured = evaluate(["--model", bundle.path, "--data-root", root, "--layout", "camvid",
                                  "--split", "test"], tmp_path, capsys)
    assert code == 2
    assert "--split test: the camvid data under" in captured.err and "has no test split" in captured.err


def test_artifact_picks_the_model_file_that_is_scored(tmp_path, capsys):
    root = write_camvid_tree(tmp_path / "CamVid")
    bundle = camvid_bundle(tmp_path / "bundle")
    args = ["--model", bundle.path, "--data-root", root, "--layout", "camvid", "--split", "test"]
    code, scores, captured = evaluate([*args, "--artifact", "onnx"], tmp_path, capsys)
    assert code == 0 and scores["miou"] == pytest.approx(1.0), captured.err
    code, _, captured = evaluate([*args, "--artifact", "onnx_int8"], tmp_path, capsys)
    assert code == 2 and "no artifact 'onnx_int8'; it has onnx" in captured.err
    code, _, captured = evaluate(["--predictions", tmp_path, "--ground-truth", tmp_path, "--artifact", "onnx"],
                                 tmp_path, capsys)
    assert code == 2 and "--artifact go with --model BUNDLE" in captured.err

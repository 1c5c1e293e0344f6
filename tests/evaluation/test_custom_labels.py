"""`cityseg evaluate` of a label set of one's own: real PNGs, IoU checked against plain numpy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from PIL import Image

from cityseg.bundle import Bundle, class_fields, replace_card
from cityseg.cli import main
from cityseg.evaluation.run import evaluate_bundle, format_table
from cityseg.evaluation.scoring import EvaluationError, LabelSetConfusion
from cityseg.labels import LABELS, class_space, load_label_set

TRAIN = class_space("trainid")
OFFSET, IGNORE_ID, PARKING, UNLABELED = 100, 250, 9, 0
KEYS = ["aachen_000000_000019", "aachen_000001_000019"]


def label_set() -> dict:
    """The 19 trainId classes under ids 100..118; parking joins road, unlabeled is ignored."""
    classes = [{"id": OFFSET + k, "name": f"c{k}-{name}", "color": [int(v) for v in TRAIN.colors[k]]}
               for k, name in enumerate(TRAIN.names)]
    label_map = {l.id: OFFSET + l.trainId for l in LABELS if 0 <= l.trainId < 255}
    label_map.update({PARKING: OFFSET, UNLABELED: IGNORE_ID})
    return {"name": "shifted", "ignore_id": IGNORE_ID, "classes": classes, "label_map": label_map}


def truth_index(gt_label_ids: np.ndarray) -> np.ndarray:
    """Class index of each ground-truth pixel under :func:`label_set` (-1: not scored)."""
    out = np.full(gt_label_ids.shape, -1, np.int64)
    for source, target in label_set()["label_map"].items():
        if target != IGNORE_ID:
            out[gt_label_ids == source] = target - OFFSET
    return out


def numpy_iou(pred_index: list[np.ndarray], gt_index: list[np.ndarray], n: int) -> list[float]:
    """IoU per class: TP / (TP + FP + FN) over scored pixels; a prediction outside 0..n-1 is a miss."""
    pred = np.concatenate([p.ravel() for p in pred_index])
    gt = np.concatenate([g.ravel() for g in gt_index])
    pred, gt = pred[gt >= 0], gt[gt >= 0]
    ious = []
    for c in range(n):
        tp = np.sum((pred == c) & (gt == c))
        fp = np.sum((pred == c) & (gt != c))
        fn = np.sum((pred != c) & (gt == c))
        ious.append(tp / (tp + fp + fn) if tp + fp + fn else math.nan)
    return ious


def painted_ground_truth(painted_train_ids: np.ndarray, rng) -> np.ndarray:
    """labelIds of a painted scene, with blocks relabelled (parking, unlabeled, other classes)."""
    gt = TRAIN.to_label_id[painted_train_ids].astype(np.uint8)
    gt[:8, :32] = PARKING      # mapped to road
    gt[8:16, :32] = UNLABELED  # ignored
    noise = rng.random(gt.shape) < 0.15
    gt[noise] = rng.integers(0, 34, size=int(noise.sum()))
    return gt


@pytest.fixture
def yaml_path(tmp_path):
    path = tmp_path / "shifted.yaml"
    path.write_text(yaml.safe_dump(label_set()))
    return path


def test_label_set_confusion_matches_numpy_and_ignores_unmapped_pixels(yaml_path):
    space = load_label_set(yaml_path)
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 40, size=(2, 30, 40)).astype(np.uint8)  # 34..39: no labelId, not scored
    pred_ids = (OFFSET + rng.integers(0, 21, size=gt.shape)).astype(np.uint8)  # 119, 120: unknown
    matrix = LabelSetConfusion(space)
    matrix.update(pred_ids, gt)
    result = matrix.result()
    expected = numpy_iou([pred_ids.astype(np.int64) - OFFSET], [truth_index(gt)], 19)
    assert list(result.class_iou) == list(space.names)
    np.testing.assert_allclose(list(result.class_iou.values()), expected)
    assert result.num_pixels == int((truth_index(gt) >= 0).sum())
    assert result.category_iou == {} and result.label_set == "shifted"
    assert "label set shifted" in format_table(result) and "category" not in format_table(result)


def test_evaluate_files_with_labels_scores_pngs_in_the_sets_ids(tmp_path, yaml_path):
    rng = np.random.default_rng(1)
    preds, truths = [], []
    for key in KEYS:
        gt = rng.integers(0, 34, size=(32, 64)).astype(np.uint8)
        pred = (OFFSET + rng.integers(0, 19, size=gt.shape)).astype(np.uint8)
        pred[0, :5] = 7  # an id that is no class of the set: a miss
        city = key.split("_")[0]
        (tmp_path / "gt" / city).mkdir(parents=True, exist_ok=True)
        (tmp_path / "pred").mkdir(exist_ok=True)
        Image.fromarray(gt).save(tmp_path / "gt" / city / f"{key}_gtFine_labelIds.png")
        Image.fromarray(pred).save(tmp_path / "pred" / f"{key}_leftImg8bit_classIds.png")  # as segment
        preds.append(pred.astype(np.int64) - OFFSET)
        truths.append(truth_index(gt))
    out = tmp_path / "scores.json"
    assert main(["evaluate", "--predictions", str(tmp_path / "pred"), "--ground-truth",
                 str(tmp_path / "gt"), "--labels", str(yaml_path), "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    expected = numpy_iou(preds, truths, 19)
    assert list(scores["class_iou"]) == [c["name"] for c in label_set()["classes"]]
    np.testing.assert_allclose(list(scores["class_iou"].values()), expected)
    assert scores["miou"] == pytest.approx(np.nanmean(expected)) and scores["label_set"] == "shifted"


def custom_bundle(tmp_path, with_label_map: bool) -> Bundle:
    """The palette classifier (19 trainId colours) carded as the 'shifted' label set."""
    import support

    bundle = support.make_palette_bundle(tmp_path / "bundle", height=64, width=128)
    space = load_label_set(tmp_path / "shifted.yaml")
    bundle.card = replace_card(bundle.card, **class_fields(space, with_label_map=with_label_map))
    bundle.save()
    return Bundle.load(bundle.path)


def test_evaluate_a_custom_bundle_maps_ground_truth_through_its_label_map(tmp_path, yaml_path):
    pytest.importorskip("onnxruntime")
    import support

    bundle = custom_bundle(tmp_path, with_label_map=True)
    root, rng = tmp_path / "cityscapes", np.random.default_rng(2)
    preds, truths = [], []
    for seed, key in enumerate(KEYS):
        rgb, painted = support.painted_scene(64, 128, seed=seed)
        gt = painted_ground_truth(painted, rng)
        support.write_pair(root, "val", key.split("_")[0], key, rgb, gt)
        preds.append(painted.astype(np.int64))  # the palette model segments painted scenes exactly
        truths.append(truth_index(gt))
    result = evaluate_bundle(bundle.path, root, "val", backend="onnxruntime")
    expected = numpy_iou(preds, truths, 19)
    assert list(result.class_iou) == list(bundle.card.class_names)
    np.testing.assert_allclose(list(result.class_iou.values()), expected)
    assert 0 < result.miou < 1 and result.num_images == 2
    out = tmp_path / "scores.json"
    assert main(["evaluate", "--model", str(bundle.path), "--data-root", str(root),
                 "--backend", "onnxruntime", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["miou"] == pytest.approx(result.miou)


def test_a_custom_bundle_without_label_map_is_refused_with_what_to_add(tmp_path, yaml_path, capsys):
    bundle = custom_bundle(tmp_path, with_label_map=False)
    with pytest.raises(EvaluationError, match="has no label_map"):
        evaluate_bundle(bundle.path, tmp_path / "nowhere", "val")
    assert main(["evaluate", "--model", str(bundle.path), "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "label_map (dataset label id -> class id)" in err and "--labels YAML" in err
    assert "Traceback" not in err


def test_labels_goes_with_prediction_files_only(tmp_path, yaml_path, capsys):
    assert main(["evaluate", "--model", "m", "--data-root", str(tmp_path), "--labels",
                 str(yaml_path)]) == 2
    assert "--labels goes with --predictions" in capsys.readouterr().err


def test_evaluate_files_with_labels_cityscapes_takes_train_id_predictions(tmp_path):
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 34, size=(32, 64)).astype(np.uint8)
    pred_train = rng.integers(0, 20, size=gt.shape).astype(np.uint8)
    pred_train[pred_train == 19] = 255  # ignore: scored as unlabeled (a miss)
    (tmp_path / "gt" / "aachen").mkdir(parents=True)
    (tmp_path / "pred").mkdir()
    Image.fromarray(gt).save(tmp_path / "gt" / "aachen" / f"{KEYS[0]}_gtFine_labelIds.png")
    Image.fromarray(pred_train).save(tmp_path / "pred" / f"{KEYS[0]}_leftImg8bit_trainIds.png")
    out = tmp_path / "scores.json"
    assert main(["evaluate", "--predictions", str(tmp_path / "pred"), "--ground-truth",
                 str(tmp_path / "gt"), "--labels", "cityscapes", "--json", str(out)]) == 0
    train_of = TRAIN.from_label_id  # labelId -> trainId (255: not scored)
    pred_index, gt_index = pred_train.astype(np.int64), train_of[gt].astype(np.int64)
    pred_index[pred_index == 255] = -1
    gt_index[gt_index == 255] = -1
    expected = numpy_iou([pred_index], [gt_index], 19)
    np.testing.assert_allclose(list(json.loads(out.read_text())["class_iou"].values()), expected)

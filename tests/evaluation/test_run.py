"""`cityseg evaluate`: parity with cityscapesscripts on real PNGs, file matching errors, model mode."""

import copy
import json
import math

import numpy as np
import pytest
from PIL import Image

from cityseg.cli import main
from cityseg.evaluation.run import evaluate_bundle, evaluate_directories, format_table
from cityseg.evaluation.scoring import ConfusionMatrix, EvaluationError
from cityseg.labels import class_space

FRAMES = [("aachen", "000000_000019"), ("aachen", "000001_000019"), ("bochum", "000000_000313")]
PERSON, RIDER, TRAIN = 24, 25, 31


def write_ids(path, ids):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids.astype(np.uint8)).save(path)


def make_case(root, seed=0, size=(48, 96)):
    """gtFine-style ground truth and noisy predictions over all 34 labelIds, in two folder layouts."""
    rng = np.random.default_rng(seed)
    for city, frame in FRAMES:
        blocks = rng.integers(0, 34, size=(6, 12))
        gt = np.kron(blocks, np.ones((size[0] // 6, size[1] // 12), np.int64))
        gt[gt == RIDER] = PERSON          # rider: absent from the ground truth...
        pred = gt.copy()
        noise = rng.random(gt.shape) < 0.3
        pred[noise] = rng.integers(0, 34, size=noise.sum())
        pred[pred == TRAIN] = 0           # ...train: predictions never use it
        gt[gt == TRAIN] = 0
        pred[:2, :2] = RIDER              # rider predicted on a few pixels -> IoU 0, not NaN
        key = f"{city}_{frame}"
        write_ids(root / "gt" / city / f"{key}_gtFine_labelIds.png", gt)
        write_ids(root / "pred" / f"{key}_leftImg8bit_labelIds.png", pred)
    return root / "pred", root / "gt"


def official_scores(pred_dir, gt_dir):
    """Run cityscapesscripts' own evaluator on the same files (no env vars, no JSON, quiet)."""
    cs_eval = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    args = copy.copy(cs_eval.args)
    args.evalInstLevelScore = False  # needs *_instanceIds.png; not part of the IoU
    args.JSONOutput = False
    args.quiet = True
    gts = sorted(str(p) for p in gt_dir.rglob("*_gtFine_labelIds.png"))
    preds = []
    for gt in gts:
        key = "_".join(gt.split("/")[-1].split("_")[:3])
        preds.append(str(next(pred_dir.rglob(f"{key}*.png"))))
    return cs_eval.evaluateImgLists(preds, gts, args)


def assert_same(ours, theirs):
    for name, value in ours.class_iou.items():
        expected = theirs["classScores"][name]
        assert (math.isnan(value) and math.isnan(expected)) or value == pytest.approx(expected, abs=1e-6), name
    assert ours.miou == pytest.approx(theirs["averageScoreClasses"], abs=1e-6)
    for name, value in ours.category_iou.items():
        expected = theirs["categoryScores"][name]
        assert (math.isnan(value) and math.isnan(expected)) or value == pytest.approx(expected, abs=1e-6), name
    np.testing.assert_array_equal(ours.confusion, np.asarray(theirs["confMatrix"]))


def test_parity_with_cityscapesscripts(tmp_path):
    pred_dir, gt_dir = make_case(tmp_path)
    ours = evaluate_directories(pred_dir, gt_dir)
    theirs = official_scores(pred_dir, gt_dir)
    assert ours.class_iou["rider"] == 0.0 and math.isnan(ours.class_iou["train"])
    assert 0.3 < ours.miou < 0.9 and ours.num_images == 3
    assert_same(ours, theirs)


def test_parity_on_a_second_draw(tmp_path):
    pred_dir, gt_dir = make_case(tmp_path, seed=7, size=(60, 120))
    assert_same(evaluate_directories(pred_dir, gt_dir), official_scores(pred_dir, gt_dir))


def test_missing_extra_and_misnamed_predictions_are_listed(tmp_path):
    pred_dir, gt_dir = make_case(tmp_path)
    (pred_dir / "aachen_000000_000019_leftImg8bit_labelIds.png").unlink()
    write_ids(pred_dir / "extra" / "zurich_000000_000001_labelIds.png", np.zeros((48, 96)))
    with pytest.raises(EvaluationError) as info:
        evaluate_directories(pred_dir, gt_dir)
    message = str(info.value)
    assert "aachen_000000_000019_gtFine_labelIds.png" in message and "without a *_labelIds.png" in message
    assert "zurich_000000_000001_labelIds.png" in message and "predictions without" in message
    write_ids(pred_dir / "result_labelIds.png", np.zeros((48, 96)))
    with pytest.raises(EvaluationError, match="result_labelIds.png"):
        evaluate_directories(pred_dir, gt_dir)


def test_wrong_size_or_colour_predictions_are_refused(tmp_path):
    pred_dir, gt_dir = make_case(tmp_path)
    write_ids(pred_dir / "aachen_000000_000019_leftImg8bit_labelIds.png", np.zeros((24, 48)))
    with pytest.raises(EvaluationError, match="resolution"):
        evaluate_directories(pred_dir, gt_dir)
    Image.fromarray(np.zeros((48, 96, 3), np.uint8)).save(pred_dir / "aachen_000000_000019_leftImg8bit_labelIds.png")
    with pytest.raises(EvaluationError, match="one channel"):
        evaluate_directories(pred_dir, gt_dir)


def test_cli_prints_the_table_and_writes_json(tmp_path, capsys):
    pred_dir, gt_dir = make_case(tmp_path)
    out = tmp_path / "scores.json"
    argv = ["evaluate", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir), "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "road" in printed and "mIoU" in printed and "pixel accuracy" in printed
    data = json.loads(out.read_text())
    expected = evaluate_directories(pred_dir, gt_dir)
    assert data["miou"] == pytest.approx(expected.miou)
    assert data["class_iou"]["train"] is None and len(data["class_iou"]) == 19
    assert set(data["category_iou"]) == {"flat", "construction", "object", "nature", "sky", "human", "vehicle"}
    assert main(argv) == 2 and "--force" in capsys.readouterr().err  # never overwrite silently
    assert main(argv + ["--force"]) == 0
    assert main(["evaluate", "--predictions", str(pred_dir)]) == 2
    assert "--ground-truth" in capsys.readouterr().err


def write_cityscapes_val(root, model_height=64, model_width=128, scale=2, split="val", frames=FRAMES):
    """A Cityscapes root (one split) of painted palette scenes; returns {key: true labelIds}."""
    import support

    space = class_space("trainid")
    truths = {}
    for i, (city, frame) in enumerate(frames):
        image, classes = support.painted_scene(model_height * scale, model_width * scale, seed=i)
        key = f"{city}_{frame}"
        Image.fromarray(image).save(_mkdir(root / "leftImg8bit" / split / city) / f"{key}_leftImg8bit.png")
        label_ids = space.to_label_id[classes]
        truths[key] = label_ids
        gt = label_ids.copy()
        gt[: model_height // 2, : model_width // 2] = 0  # an 'unlabeled' corner: never scored
        gt[-8:, -8:] = 26  # a car patch the model cannot see (it predicts the painted class)
        write_ids(root / "gtFine" / split / city / f"{key}_gtFine_labelIds.png", gt)
    return truths


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_evaluate_bundle_runs_the_model_on_full_resolution_images(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    import support

    root = tmp_path / "cityscapes"
    truths = write_cityscapes_val(root)
    bundle = support.make_palette_bundle(tmp_path / "bundle", height=64, width=128)
    expected = ConfusionMatrix()
    for key, predicted in sorted(truths.items()):
        city = key.split("_")[0]
        gt = np.array(Image.open(root / "gtFine" / "val" / city / f"{key}_gtFine_labelIds.png"))
        expected.update(predicted, gt)  # the palette model segments painted scenes exactly
    result = evaluate_bundle(bundle.path, root, "val", backend="onnxruntime")
    want = expected.result()
    assert result.miou == pytest.approx(want.miou) and result.miou < 1.0
    np.testing.assert_array_equal(result.confusion, want.confusion)
    assert "mIoU" in format_table(result)
    out = tmp_path / "model.json"
    assert main(["evaluate", "--model", str(bundle.path), "--data-root", str(root), "--split", "val",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["miou"] == pytest.approx(want.miou)


def test_evaluate_bundle_on_the_study_split(tmp_path):
    import support

    root = tmp_path / "cityscapes"
    write_cityscapes_val(root)
    write_cityscapes_val(root, split="train", frames=[("zurich", f"00000{i}_000019") for i in range(5)])
    bundle = support.make_palette_bundle(tmp_path / "bundle", height=64, width=128)
    # 8 pooled frames sorted by key: 4 train (60 %), 1 dev (15 %), 3 test
    assert evaluate_bundle(bundle.path, root, "study_test").num_images == 3
    assert evaluate_bundle(bundle.path, root, "study_dev").num_images == 1


def test_evaluate_bundle_refuses_an_unlabelled_split(tmp_path):
    import support

    root = tmp_path / "cityscapes"
    image, _ = support.painted_scene(64, 128)
    berlin = _mkdir(root / "leftImg8bit" / "test" / "berlin")
    Image.fromarray(image).save(berlin / "berlin_000000_000019_leftImg8bit.png")
    bundle = support.make_palette_bundle(tmp_path / "bundle", height=64, width=128)
    with pytest.raises(EvaluationError, match="no ground truth"):
        evaluate_bundle(bundle.path, root, "test")
    with pytest.raises(EvaluationError, match="unknown split 'dev'.*study_dev"):
        evaluate_bundle(bundle.path, root, "dev")


def test_study_split_follows_the_training_runs_order(tmp_path):
    from cityseg.evaluation.run import split_samples
    from cityseg.synthetic.dataset import write_dataset

    write_dataset(tmp_path / "cs", count=20, size=(64, 32), seed=0, splits={"train": 12, "val": 8})
    by_path = split_samples(tmp_path / "cs", "study_test", None, "path")
    assert len(by_path) == 5 and all(s.split == "val" for s in by_path)
    shuffled = split_samples(tmp_path / "cs", "study_test", 1, "path")  # the run's seed is used
    assert len(shuffled) == 5 and {s.key for s in shuffled} != {s.key for s in by_path}

"""The accuracy gate's figures and verdicts, on class maps built here."""

import numpy as np

from cityseg.export.calibration import FrameSet
from cityseg.export.gate import IouCounter, run_gate
from cityseg.labels import class_space

from support import palette_card


def test_iou_counter_per_class():
    counter = IouCounter(3)
    counter.update(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 255]))  # 255: not scored
    iou = counter.class_iou()
    assert iou[0] == 0.5 and iou[1] == 0.5 and np.isnan(iou[2]) and counter.miou() == 0.5


def runners(card, flip_share: float, flip_class: int | None = None):
    """fp32 = the true classes; the candidate flips ``flip_share`` of the pixels (of ``flip_class``, or all)."""
    truth = np.random.default_rng(0).integers(0, 4, (2, card.input_height, card.input_width))

    def fp32(batch):
        return truth[:len(batch)]

    def candidate(batch):
        out = truth[:len(batch)].copy()
        where = (out == flip_class) if flip_class is not None else np.ones_like(out, bool)
        pick = where & (np.random.default_rng(1).random(out.shape) < flip_share)
        out[pick] = (out[pick] + 1) % 4
        return out
    return truth, fp32, candidate


def frames(card, labels=None):
    return FrameSet([np.zeros((card.input_height, card.input_width, 3), np.uint8)] * 2, "given", labels=labels)


def test_fp32_reference_mode_passes_and_fails_on_agreement():
    card = palette_card(height=16, width=32)
    _, fp32, candidate = runners(card, 0.005)
    report = run_gate(card, fp32, candidate, frames(card), candidate="x")
    assert report.passed and report.mode == "fp32-reference" and 0.99 < report.pixel_agreement < 1
    _, fp32, candidate = runners(card, 0.05)
    report = run_gate(card, fp32, candidate, frames(card), candidate="x")
    assert not report.passed and any("pixel agreement" in f for f in report.failures)
    assert "FAILED" in report.summary()


def test_ground_truth_mode_fails_on_one_class_dropping():
    card = palette_card(height=16, width=32)
    truth, fp32, candidate = runners(card, 0.2, flip_class=2)  # only class 2 suffers
    label_ids = [class_space("trainid").to_label_id[t.astype(np.uint8)] for t in truth]
    report = run_gate(card, fp32, candidate, frames(card, label_ids), candidate="x", chunk=2)
    assert report.mode == "ground-truth" and report.fp32_miou == 1.0
    assert report.worst_class == card.class_names[2] and report.worst_class_drop > 3
    assert not report.passed and any("class" in f for f in report.failures)
    truth, fp32, candidate = runners(card, 0.0)
    assert run_gate(card, fp32, candidate, frames(card, label_ids), candidate="x", chunk=2).passed


def test_ground_truth_of_another_dataset_is_scored_through_the_label_map(tmp_path):
    """A Cityscapes (trainid) model gated on CamVid labels: both models' classes mapped to CamVid's."""
    from cityseg.export.calibration import dataset_frames
    from cityseg.label_maps import load_label_map

    from support import write_camvid_tree

    root = write_camvid_tree(tmp_path / "CamVid", {"val": 2}, size=(16, 32))
    label_map = load_label_map("cityscapes-to-camvid")
    evaluation = dataset_frames(root, "val", minimum=1, option="--eval-data", with_labels=True,
                                layout="camvid", label_map=label_map)
    card = palette_card(height=16, width=32)
    trainid, camvid = class_space("trainid"), class_space("camvid")
    road, sidewalk, vegetation = (trainid.names.index(n) for n in ("road", "sidewalk", "vegetation"))
    # "truth" model: the CamVid annotation put back into a Cityscapes class of each CamVid class
    back = {camvid.names.index("road"): road, camvid.names.index("pavement"): sidewalk}

    def fp32(batch):
        labels = np.stack(evaluation.labels[:len(batch)])
        return np.vectorize(lambda v: back.get(int(v), vegetation))(labels)

    def candidate(batch):  # calls every pavement pixel road
        out = fp32(batch)
        out[out == sidewalk] = road
        return out

    report = run_gate(card, fp32, candidate, evaluation, candidate="x")
    assert report.mode == "ground-truth" and report.worst_class == "pavement"  # named in CamVid's classes
    assert report.fp32_miou > report.candidate_miou and not report.passed
    assert run_gate(card, fp32, fp32, evaluation, candidate="same").passed

"""Parity figures on real score arrays: agreement, near ties, diffs, refusal message."""

import numpy as np
import pytest

from cityseg.export import ParityError
from cityseg.export.parity import (
    ParityAccumulator,
    check_parity,
    default_frame_count,
    parity_frames,
    require_parity,
    structured_frame,
)

from support import palette_card


def scores(seed=0, shape=(2, 8, 16, 5)):
    rng = np.random.default_rng(seed)
    raw = rng.random(shape).astype(np.float32)
    return raw / raw.sum(-1, keepdims=True)


def report(reference, candidate, kinds=("probabilities", "probabilities"), precision="fp32"):
    acc = ParityAccumulator(kinds[0], kinds[1], tie_margin=1e-4)
    acc.update(reference, candidate)
    return acc.report(reference="ref", candidate="cand", precision=precision, frame_source="given")


def test_identical_outputs_agree_fully():
    ref = scores()
    r = report(ref, ref.copy())
    assert r.passed and r.argmax_agreement == r.raw_agreement == 1.0
    assert r.max_abs_diff == 0.0 and r.mean_abs_diff == 0.0 and r.frames == 2 and r.pixels == 2 * 8 * 16


def test_a_real_flip_counts_and_a_near_tie_flip_does_not():
    ref = scores()
    ref[0, 0, 0] = [0.5, 0.49999, 0.00001, 0.0, 0.0]  # near tie between classes 0 and 1
    ref[0, 0, 1] = [0.9, 0.05, 0.05, 0.0, 0.0]        # clear class 0
    cand = ref.copy()
    cand[0, 0, 0] = [0.49999, 0.5, 0.00001, 0.0, 0.0]
    cand[0, 0, 1] = [0.05, 0.9, 0.05, 0.0, 0.0]
    r = report(ref, cand)
    pixels = ref[..., 0].size
    assert r.raw_agreement == pytest.approx(1 - 2 / pixels)
    assert r.argmax_agreement == pytest.approx(1 - 1 / pixels) and r.near_tie_flips == 1
    assert r.max_abs_diff == pytest.approx(0.85)
    assert r.worst_frame_agreement == pytest.approx(1 - 2 / (8 * 16))


def test_class_id_candidates_compare_masks_only():
    ref = scores(1)
    ids = np.argmax(ref, -1).astype(np.uint8)
    r = report(ref, ids, ("probabilities", "argmax"))
    assert r.passed and r.argmax_agreement == 1.0 and r.max_abs_diff is None and r.mean_abs_diff is None
    ids[1, :4] = (ids[1, :4] + 1) % 5
    assert report(ref, ids, ("probabilities", "argmax")).argmax_agreement == pytest.approx(1 - 64 / 256)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ParityError, match="does not match"):
        report(scores(), scores(shape=(2, 8, 8, 5)))


def test_check_parity_streams_chunks_and_refusal_names_the_numbers(tmp_path):
    ref = scores(2, (5, 8, 16, 5))
    batch = np.arange(5, dtype=np.float32).reshape(5, 1, 1, 1) * np.ones((5, 8, 16, 3), np.float32)
    lookup = {float(i): ref[i] for i in range(5)}

    def run(x):
        return np.stack([lookup[float(f[0, 0, 0])] for f in x])

    def broken(x):
        return run(x)[..., ::-1]

    good = check_parity(run, "probabilities", run, "probabilities", batch, reference="a", candidate="b",
                        precision="fp16", frame_source="given", chunk=2)
    assert good.passed and good.frames == 5 and good.threshold == 0.999
    bad = check_parity(run, "probabilities", broken, "probabilities", batch, reference="a", candidate="b",
                       precision="int8", frame_source="given", chunk=2)
    assert not bad.passed and bad.threshold == 0.99
    with pytest.raises(ParityError, match=r"model\.onnx: refused.*argmax agreement \d+\.\d+% \(required >= 99\.0%"):
        require_parity(bad, tmp_path / "model.onnx")
    require_parity(good, tmp_path / "model.onnx")  # passes silently


def test_generated_frames_are_street_sized_and_deterministic():
    card = palette_card(height=64, width=128)
    frames, source = parity_frames(card)
    again, _ = parity_frames(card)
    assert source in ("synth", "structured") and len(frames) == 8
    assert all(f.shape == (128, 256, 3) and f.dtype == np.uint8 for f in frames)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))
    assert len({f.tobytes() for f in frames}) == 8  # different scenes
    given, source = parity_frames(card, [frames[0]])
    assert source == "given" and len(given) == 1


def test_structured_frames_have_structure():
    frame = structured_frame(np.random.default_rng(0), 96, 192)
    assert frame.shape == (96, 192, 3) and frame.dtype == np.uint8
    assert frame[:10].mean(axis=(0, 1))[2] > frame[-10:].mean(axis=(0, 1))[2]  # blue sky above the road


def test_generated_frame_count_shrinks_for_large_inputs():
    assert default_frame_count(palette_card(height=64, width=128)) == 8
    assert default_frame_count(palette_card(height=512, width=1024)) == 4
    assert default_frame_count(palette_card(height=1024, width=2048)) == 2

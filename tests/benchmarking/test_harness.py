"""`cityseg bench` on a real bundle: every stage timed, baseline measured, RESULT line parseable."""

import re

import numpy as np
import pytest

from cityseg.benchmarking.baseline import study_postprocess
from cityseg.benchmarking.report import update_doc
from cityseg.cli import main
from cityseg.inference import postprocess
from cityseg.labels import class_space
from cityseg.preprocess import upsample_nearest

from support import make_palette_bundle, painted_scene


def test_bench_bundle_with_baseline(tmp_path, capsys):
    bundle = tmp_path / "palette"
    make_palette_bundle(bundle, formats=("onnx", "keras"))
    doc = tmp_path / "PERF.md"
    doc.write_text("# Perf\n\nintro\n<!-- bench:start -->\nold table\n<!-- bench:end -->\noutro\n")
    assert main(["bench", "--model", str(bundle), "--repeats", "2", "--warmup", "1",
                 "--backends", "onnxruntime", "tensorflow", "--update-doc", str(doc)]) == 0
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    match = re.fullmatch(r"RESULT frame_ms=([\d.]+) infer_ms=([\d.]+) overhead=(-?[\d.]+) "
                         r"baseline_ms=([\d.]+) speedup=([\d.]+)", last)
    assert match, last
    frame_ms, infer_ms, _, baseline_ms, speedup = map(float, match.groups())
    assert frame_ms > infer_ms > 0 and baseline_ms > 0
    assert speedup == pytest.approx(baseline_ms / frame_ms, rel=0.01, abs=0.01)  # printed rounded
    assert "| palette_classifier | 64x128 | onnxruntime |" in out
    assert "| palette_classifier | 64x128 | tensorflow |" in out
    text = doc.read_text()
    assert "old table" not in text and "intro" in text and "outro" in text
    assert "palette_classifier" in text


def test_study_postprocess_agrees_with_ours():
    image, _ = painted_scene(128, 256)
    scores = np.random.default_rng(0).random((32, 64, 19), dtype=np.float32)
    palette = class_space("trainid").palette
    mask, color, overlay = study_postprocess(scores, image, palette, 0.5)
    classes = postprocess.scores_to_classes(scores)
    assert np.array_equal(mask, upsample_nearest(classes, 128, 256))
    assert np.array_equal(color, upsample_nearest(postprocess.colorize(classes, palette), 128, 256))
    assert np.abs(overlay.astype(int) - postprocess.overlay(image, color, 0.5)).max() <= 1


def test_update_doc_appends_markers_when_missing(tmp_path):
    doc = tmp_path / "new.md"
    doc.write_text("# Title\n")
    update_doc(doc, "| a |", "header")
    assert doc.read_text().startswith("# Title\n") and "| a |" in doc.read_text()


def test_bench_row_for_an_imported_model(tmp_path, capsys):
    out_file = tmp_path / "table.md"
    assert main(["bench", "--imported", "--models", "--sizes", "64x128", "--repeats", "1", "--warmup", "0",
                 "--backends", "onnxruntime", "--no-baseline", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "importing stride8_nchw at 64x128" in out
    row = next(line for line in out_file.read_text().splitlines() if "(imported)" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["stride8_nchw (imported)", "64x128", "onnxruntime"]
    assert all(float(c) >= 0 for c in cells[3:11] if c != "–")  # every stage timed
    assert out.strip().splitlines()[-1].startswith("RESULT frame_ms=")


def test_bench_rows_per_precision_leave_the_given_bundle_alone(tmp_path, capsys):
    from support import make_palette_bundle

    bundle = make_palette_bundle(tmp_path / "palette", formats=("onnx",))
    before = sorted(p.name for p in bundle.path.iterdir())
    out_file = tmp_path / "table.md"
    assert main(["bench", "--model", str(bundle.path), "--sizes", "64x128", "--repeats", "1", "--warmup", "0",
                 "--backends", "onnxruntime", "--precisions", "fp32", "int8", "fp16", "--no-baseline",
                 "--calib-method", "percentile", "--out", str(out_file)]) == 0
    lines = out_file.read_text().splitlines()
    assert lines[0].endswith("; int8 calibrated with percentile.")
    assert "| precision | gate |" in lines[2]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[4:]]
    assert [(r[2], r[3]) for r in rows] == [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("onnxruntime", "fp16")]
    assert rows[0][4] == "–" and rows[1][4].split()[0] in ("ok", "FAILED") and rows[1][4].endswith("%")
    assert sorted(p.name for p in bundle.path.iterdir()) == before


def test_int8_rows_are_calibrated_with_the_method_asked_for(tmp_path):
    from cityseg.benchmarking.precision_rows import make_variants
    from cityseg.bundle import Bundle

    bundle = make_palette_bundle(tmp_path / "palette", formats=("onnx",))
    [variant] = make_variants(bundle, ["int8"], "percentile")
    entry = Bundle.load(bundle.path).card.artifacts[variant.artifact]
    assert (variant.precision, entry.precision, entry.details["method"]) == ("int8", "int8", "percentile")


def test_a_backend_that_cannot_run_a_given_bundle_is_said_with_the_fix(tmp_path, capsys):
    """A bundle with only its Keras model (what `cityseg train` writes) on ONNX Runtime: the row is
    not silently left out."""
    bundle = make_palette_bundle(tmp_path / "palette", formats=("keras",))
    assert main(["bench", "--model", str(bundle.path), "--repeats", "1", "--warmup", "0",
                 "--backends", "onnxruntime", "--no-baseline"]) == 2
    captured = capsys.readouterr()
    out = captured.out
    assert "no backend could run any of the models here (why, per backend, above" in captured.err
    assert "not timing palette on onnxruntime: the bundle has no onnx model (run `cityseg export BUNDLE --onnx`)" \
        in out

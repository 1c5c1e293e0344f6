"""The demo is a test too: a shortened `cityseg demo` run end to end (slow; `make test` runs it)."""

import json

import cv2
import pytest

from cityseg.bundle import Bundle


@pytest.mark.slow
def test_shortened_demo_produces_every_product(tmp_path):
    from rosbags.highlevel import AnyReader

    from cityseg.demo import DemoSettings, run_demo

    settings = DemoSettings(train_images=64, val_images=16, image_size=(256, 128), epochs=8,
                            bag_frames=8, bag_size=(512, 256), strip_frames=2)
    paths = run_demo(tmp_path / "demo", settings)

    bundle = Bundle.load(paths.bundle)
    assert {a.format for a in bundle.card.artifacts.values()} >= {"keras", "onnx"}
    assert bundle.card.artifacts["onnx_argmax"].output == "argmax"  # what a vehicle runs
    for product in (paths.strip, paths.history, paths.miou_table, paths.report):
        assert product.is_file() and product.stat().st_size > 0
    assert cv2.imread(str(paths.strip)).shape[1] == 1536

    scores = json.loads((paths.root / "val_miou.json").read_text())
    assert set(scores) >= {"miou", "class_iou", "category_iou", "pixel_accuracy"}
    # Far above chance after a minute on a CPU: chance mIoU is ~1/19 of one class's IoU (~0.016).
    assert scores["miou"] > 0.05 and scores["pixel_accuracy"] > 0.3

    with AnyReader([paths.camera_bag]) as reader:
        frames_in = sum(1 for c in reader.connections if c.msgtype == "sensor_msgs/msg/Image"
                        for _ in reader.messages(connections=[c]))
    with AnyReader([paths.segmented_bag]) as reader:
        topics = {c.topic: c.msgcount for c in reader.connections}
    assert frames_in == settings.bag_frames
    assert any(t.endswith("mask") and n == frames_in for t, n in topics.items())

    report = paths.report.read_text()
    for name in ("bundle/", "overlay_strip.png", "history.png", "val_miou.md", "segmented_bag/"):
        assert name in report
    assert "onnxruntime:model_argmax.onnx" in report and "runs onnxruntime (model_argmax.onnx" in report


def test_demo_refuses_a_non_empty_output_dir(tmp_path):
    from cityseg.demo import run_demo
    from cityseg.errors import CitysegError

    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(CitysegError, match="not empty; pass --force"):
        run_demo(tmp_path)
    with pytest.raises(CitysegError, match="not an earlier `cityseg demo` output"):
        run_demo(tmp_path, force=True)
    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_demo_force_replaces_only_its_own_products(tmp_path):
    from cityseg.demo.run import MARKER, _outputs, _prepare_output_dir

    paths = _outputs(tmp_path)
    (tmp_path / MARKER).write_text("")
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "model.json").write_text("{}")
    (tmp_path / "report.md").write_text("old")
    (tmp_path / "my_notes.txt").write_text("user data")
    _prepare_output_dir(paths, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([MARKER, "my_notes.txt"])


def test_demo_force_removes_a_symlinked_product_not_its_target(tmp_path):
    from cityseg.demo.run import MARKER, _outputs, _prepare_output_dir

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("user data")
    (out / MARKER).write_text("")
    (out / "bundle").symlink_to(elsewhere, target_is_directory=True)
    _prepare_output_dir(_outputs(out), force=True)
    assert not (out / "bundle").exists() and not (out / "bundle").is_symlink()
    assert (elsewhere / "keep.txt").read_text() == "user data"

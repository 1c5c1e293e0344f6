"""`cityseg segment` on real PNG files, including Cityscapes-sized frames."""

import cv2
import numpy as np
import pytest

from cityseg.cli import main
from cityseg.labels import class_space, convert_ids

from support import make_palette_bundle, painted_scene


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "palette"
    make_palette_bundle(root)
    return root


def write_rgb(path, rgb):
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def test_segment_cityscapes_sized_png(tmp_path, bundle_dir, capsys):
    image, truth = painted_scene(1024, 2048)
    src = write_rgb(tmp_path / "aachen_000000_000019_leftImg8bit.png", image)
    out = tmp_path / "out"
    assert main(["segment", str(src), "--model", str(bundle_dir), "--out", str(out)]) == 0
    mask = cv2.imread(str(out / "aachen_000000_000019_labelIds.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (1024, 2048) and mask.dtype == np.uint8
    expected = convert_ids(truth, class_space("trainid"), class_space("labelid"))
    assert (mask == expected).mean() > 0.99
    color = cv2.imread(str(out / "aachen_000000_000019_color.png"))
    overlay = cv2.imread(str(out / "aachen_000000_000019_overlay.png"))
    assert color.shape == overlay.shape == (1024, 2048, 3)
    assert (np.all(color[..., ::-1] == image, axis=-1)).mean() > 0.99
    assert "model palette on onnxruntime" in capsys.readouterr().out
    assert not list(out.glob(".*tmp*"))  # no temp files left behind


def test_trainid_space_and_alpha(tmp_path, bundle_dir):
    image, truth = painted_scene(64, 128)
    src = write_rgb(tmp_path / "frame.jpg", image)
    out = tmp_path / "out"
    assert main(["segment", str(src), "--model", str(bundle_dir), "--out", str(out),
                 "--id-space", "trainid", "--alpha", "0"]) == 0
    assert (out / "frame_trainIds.png").exists()
    overlay = cv2.imread(str(out / "frame_overlay.png"))
    assert np.abs(overlay.astype(int) - cv2.imread(str(src)).astype(int)).max() <= 1


def test_existing_outputs_need_force(tmp_path, bundle_dir, capsys):
    src = write_rgb(tmp_path / "a.png", painted_scene(64, 128)[0])
    out = tmp_path / "out"
    args = ["segment", str(src), "--model", str(bundle_dir), "--out", str(out)]
    assert main(args) == 0
    before = (out / "a_color.png").stat().st_mtime_ns
    assert main(args) == 2
    assert "already exist" in capsys.readouterr().err
    assert (out / "a_color.png").stat().st_mtime_ns == before
    assert main(args + ["--force"]) == 0


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"this is not a png", "cannot decode it as an image"),
])
def test_non_image_files(tmp_path, bundle_dir, capsys, content, message):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    assert main(["segment", str(bad), "--model", str(bundle_dir), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(bad) in err and "Traceback" not in err


def test_missing_image_and_bundle(tmp_path, bundle_dir, capsys):
    assert main(["segment", str(tmp_path / "nope.png"), "--model", str(bundle_dir), "--out", str(tmp_path)]) == 2
    assert "no such image file" in capsys.readouterr().err
    src = write_rgb(tmp_path / "a.png", painted_scene(64, 128)[0])
    assert main(["segment", str(src), "--model", str(tmp_path / "nobundle"), "--out", str(tmp_path / "o")]) == 2
    assert "no such model bundle directory" in capsys.readouterr().err


def test_grayscale_png_is_accepted(tmp_path, bundle_dir):
    src = tmp_path / "gray.png"
    cv2.imwrite(str(src), np.full((50, 70), 128, np.uint8))
    assert main(["segment", str(src), "--model", str(bundle_dir), "--out", str(tmp_path / "o")]) == 0
    assert cv2.imread(str(tmp_path / "o" / "gray_labelIds.png"), cv2.IMREAD_UNCHANGED).shape == (50, 70)


def test_one_bad_image_does_not_stop_the_others(tmp_path, bundle_dir, capsys):
    good = write_rgb(tmp_path / "good.png", painted_scene(64, 128)[0])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "out"
    assert main(["segment", str(bad), str(good), "--model", str(bundle_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "1 of 2 image(s) could not be segmented" in err and "bad.png" in err
    assert (out / "good_color.png").is_file() and not (out / "bad_color.png").exists()


def test_inputs_with_the_same_stem_are_refused(tmp_path, bundle_dir, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_rgb(tmp_path / "a" / "x.png", painted_scene(64, 128)[0])
    second = write_rgb(tmp_path / "b" / "x.png", painted_scene(64, 128)[0])
    assert main(["segment", str(first), str(second), "--model", str(bundle_dir), "--out", str(tmp_path / "o")]) == 2
    assert "would both write x_*.png" in capsys.readouterr().err


def test_model_given_by_name_from_cityseg_models(tmp_path, monkeypatch, capsys):
    make_palette_bundle(tmp_path / "store" / "palette")
    monkeypatch.setenv("CITYSEG_MODELS", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)  # no ./models here
    src = write_rgb(tmp_path / "a.png", painted_scene(64, 128)[0])
    assert main(["segment", str(src), "--model", "palette", "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "a_labelIds.png").is_file()
    assert main(["segment", str(src), "--model", "nosuch", "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "nosuch: no model bundle of that name" in err and str(tmp_path / "store" / "nosuch") in err


def test_confidence_png_is_the_top_class_probability(tmp_path, bundle_dir, capsys):
    from cityseg.inference import Segmenter

    image, _ = painted_scene(128, 256)
    src = write_rgb(tmp_path / "frame.png", image)
    assert main(["segment", str(src), "--model", str(bundle_dir), "--out", str(tmp_path / "o")]) == 0
    assert "wrote 4 files" in capsys.readouterr().out
    written = cv2.imread(str(tmp_path / "o" / "frame_confidence.png"), cv2.IMREAD_UNCHANGED)
    result = Segmenter(bundle_dir, artifact="onnx").segment(image)
    assert written.shape == (128, 256) and written.dtype == np.uint8
    assert np.array_equal(written, result.confidence)
    assert written.mean() > 200  # palette colours are classified with high confidence


def test_argmax_only_model_writes_no_confidence_and_says_why(tmp_path, capsys):
    root = tmp_path / "argmax_only"
    bundle = make_palette_bundle(root, formats=("onnx_argmax",))
    assert list(bundle.card.artifacts) == ["onnx_argmax"]
    src = write_rgb(tmp_path / "frame.png", painted_scene(64, 128)[0])
    assert main(["segment", str(src), "--model", str(root), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "no _confidence.png" in out and "class ids only" in out and "wrote 3 files" in out
    assert not (tmp_path / "o" / "frame_confidence.png").exists()


def test_a_directory_given_as_an_image_is_named_as_a_directory(tmp_path, capsys):
    (tmp_path / "frames").mkdir()
    assert main(["segment", str(tmp_path / "frames"), "--model", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "frames: is a directory, not a file; give the image file itself" in capsys.readouterr().err

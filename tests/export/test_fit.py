"""The card's fit policy: a letterboxed 2:1 frame in a square uint8-input model keeps its aspect, and
the mask is cut back so each class lands on the frame pixels that produced it (stretch for old cards);
tiles cover the frame with input-sized crops whose masks are stitched (`cityseg import --fit tiles`)."""

import json

import numpy as np
import onnx
from onnx import TensorProto, helper

from cityseg.acquisition.importer import ImportOptions, import_onnx
from cityseg.bundle import Bundle
from cityseg.inference import Segmenter
from cityseg.labels import class_space
from cityseg.preprocess import letterbox_box

SIDE = 64


def threshold_model(path):
    """uint8 NHWC SIDExSIDE in -> int64 class ids out: 1 where the red channel > 127, else 0."""
    red = helper.make_node("Slice", ["image", "starts", "ends", "axes"], ["red"])
    as_float = helper.make_node("Cast", ["red"], ["red_f"], to=TensorProto.FLOAT)
    squeeze = helper.make_node("Squeeze", ["red_f", "axes"], ["plane"])
    bright = helper.make_node("Greater", ["plane", "half"], ["bright"])
    ids = helper.make_node("Cast", ["bright"], ["ids"], to=TensorProto.INT64)
    inits = [helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
             helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
             helper.make_tensor("axes", TensorProto.INT64, [1], [3]),
             helper.make_tensor("half", TensorProto.FLOAT, [], [127.0])]
    graph = helper.make_graph([red, as_float, squeeze, bright, ids], "threshold",
                              [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, SIDE, SIDE, 3])],
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, SIDE, SIDE])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def street_frame():
    """A 128x256 frame, dark, with a bright block in its top-right corner."""
    frame = np.full((128, 256, 3), 20, np.uint8)
    frame[8:56, 160:240] = 230
    return frame


def test_letterbox_mask_lands_on_the_frame_pixels(tmp_path):
    options = ImportOptions(channel_order="RGB", resize="nearest", fit="letterbox")
    bundle = import_onnx(threshold_model(tmp_path / "t.onnx"), tmp_path / "b", class_space("trainid"), options)
    assert bundle.card.fit == "letterbox"
    frame = street_frame()
    batch = bundle.card.preprocess([frame])
    top, left, h, w = letterbox_box(frame.shape[:2], SIDE, SIDE)
    assert (top, left, h, w) == (16, 0, 32, 64)
    assert batch[0, :top].max() == 0 and batch[0, top + h:].max() == 0  # black bars above and below
    mask = Segmenter(bundle.path, backend="onnxruntime").segment(frame).mask
    assert mask.shape == frame.shape[:2]
    np.testing.assert_array_equal(mask, (frame[..., 0] > 127).astype(np.uint8))


def test_stretch_is_the_default_and_old_cards_stretch(tmp_path):
    bundle = import_onnx(threshold_model(tmp_path / "t.onnx"), tmp_path / "b", class_space("trainid"),
                         ImportOptions(channel_order="RGB", resize="nearest"))
    raw = json.loads((bundle.path / "model.json").read_text())
    assert raw["fit"] == "stretch"
    del raw["fit"]
    (bundle.path / "model.json").write_text(json.dumps(raw))
    assert Bundle.load(bundle.path).card.fit == "stretch"
    frame = street_frame()
    mask = Segmenter(bundle.path, backend="onnxruntime").segment(frame).mask
    np.testing.assert_array_equal(mask, (frame[..., 0] > 127).astype(np.uint8))  # stretched back exactly
    assert bundle.card.preprocess([frame]).shape == (1, SIDE, SIDE, 3)


def test_fused_io_export_refuses_uint8_and_letterbox_cards(tmp_path):
    import pytest

    from cityseg.bundle.card import CameraInput
    from cityseg.export.errors import ExportError
    from cityseg.export.fused_io import export_fused

    options = ImportOptions(channel_order="RGB", resize="nearest", fit="letterbox")
    bundle = import_onnx(threshold_model(tmp_path / "t.onnx"), tmp_path / "b", class_space("trainid"), options)
    with pytest.raises(ExportError, match="uint8 input and fit letterbox"):
        export_fused(bundle, CameraInput(128, 256))
    assert sorted(p.name for p in bundle.path.iterdir()) == ["model.json", "model.onnx"]


def cli_import(model, out, *extra):
    from cityseg.cli import main

    return main(["import", str(model), "--out", str(out), "--labels", "cityscapes", "--channel-order", "rgb",
                 "--resize", "nearest", *extra])


def test_cli_import_with_fit_tiles_runs_a_batch_one_model_tile_by_tile(tmp_path, capsys):
    model = threshold_model(tmp_path / "t.onnx")  # fixed batch 1, 64x64 uint8 input
    assert cli_import(model, tmp_path / "b", "--fit", "tiles", "--tile-scale", "0.5") == 0
    assert "NHWC 64x64 RGB, fit tiles (tile scale 0.5), argmax output" in capsys.readouterr().out
    card = Bundle.load(tmp_path / "b").card
    assert (card.fit, card.tile_scale) == ("tiles", 0.5)
    frame = street_frame()  # 128x256 -> 64x128: two tiles
    segmenter = Segmenter(tmp_path / "b", backend="onnxruntime")
    assert segmenter.max_batch == 1 and card.tile_grid(frame.shape[:2]).count == 2
    result = segmenter.segment(frame)
    assert result.classes.shape == (64, 128)
    np.testing.assert_array_equal(result.mask, (frame[..., 0] > 127).astype(np.uint8))
    assert cli_import(model, tmp_path / "one", "--fit", "tiles") == 0
    assert Bundle.load(tmp_path / "one").card.tile_scale == 1.0
    mask = Segmenter(tmp_path / "one", backend="onnxruntime").segment(frame).mask  # 2 x 4 tiles at scale 1
    np.testing.assert_array_equal(mask, (frame[..., 0] > 127).astype(np.uint8))


def one_usage_error(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_bad_fit_and_tile_scale_are_refused_with_one_line(tmp_path, capsys):
    import pytest

    from cityseg.errors import InputError

    model = threshold_model(tmp_path / "t.onnx")
    for bad in (["--fit", "tiles", "--tile-scale", "0"], ["--fit", "tiles", "--tile-scale", "-2"],
                ["--fit", "tiles", "--tile-scale", "x"], ["--fit", "squares"]):
        with pytest.raises(SystemExit) as exit_info:
            cli_import(model, tmp_path / "b", *bad)
        assert exit_info.value.code == 2
        line = one_usage_error(capsys)
        assert ("--tile-scale" in line or "--fit" in line), line
    assert cli_import(model, tmp_path / "b", "--tile-scale", "0.5") == 2
    assert one_usage_error(capsys) == ("cityseg import: error: --tile-scale 0.5 only applies to --fit tiles "
                                       "(the fit is stretch)")
    assert not (tmp_path / "b").exists()
    space = class_space("trainid")
    with pytest.raises(InputError, match="--tile-scale 0: must be a positive number"):
        import_onnx(model, tmp_path / "b", space, ImportOptions(channel_order="RGB", resize="nearest", fit="tiles",
                                                                 tile_scale=0))
    with pytest.raises(InputError, match="--fit squares: unknown fit policy; use one of stretch, letterbox, tiles"):
        import_onnx(model, tmp_path / "b", space, ImportOptions(channel_order="RGB", resize="nearest", fit="squares"))


def test_fused_io_export_refuses_a_tiles_card(tmp_path):
    import pytest

    from cityseg.bundle.card import CameraInput
    from cityseg.export.errors import ExportError
    from cityseg.export.fused_io import export_fused

    options = ImportOptions(channel_order="RGB", resize="nearest", fit="tiles")
    bundle = import_onnx(threshold_model(tmp_path / "t.onnx"), tmp_path / "b", class_space("trainid"), options)
    with pytest.raises(ExportError, match="fit tiles"):
        export_fused(bundle, CameraInput(128, 256))


def test_letterboxed_confidence_from_scores_is_cut_back_when_first_used(tmp_path):
    from cityseg.bundle.card import replace_card

    from support import make_palette_bundle, painted_scene

    bundle = make_palette_bundle(tmp_path / "p", height=SIDE, width=SIDE)
    bundle.card = replace_card(bundle.card, fit="letterbox")
    bundle.save()
    frame, regions = painted_scene(64, 128, seed=9)
    result = Segmenter(bundle.path, backend="onnxruntime").segment(frame)
    assert callable(result.confidence_source)  # not computed until asked for
    assert result.classes.shape == result.confidence_low.shape == (32, 64)
    assert result.confidence.shape == frame.shape[:2] and result.confidence.min() > 0
    np.testing.assert_array_equal(result.mask, regions)

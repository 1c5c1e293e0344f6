"""The card's fit policy: a letterboxed 2:1 frame in a square uint8-input model keeps its aspect, and
the mask is cut back so each class lands on the frame pixels that produced it (stretch for old cards)."""

import json

import numpy as np
import onnx
from onnx import TensorProto, helper

from cityseg.bundle import Bundle
from cityseg.export.importer import ImportOptions, import_onnx
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

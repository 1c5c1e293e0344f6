"""Keras bundle -> real ONNX file, parity, card records, Segmenter agreement, refusals."""

import json
import re

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import cityseg.export.onnx as onnx_export
from cityseg.bundle import Artifact, Bundle, ModelCard
from cityseg.errors import BundleError
from cityseg.export import ExportError, ParityError, export_onnx
from cityseg.export.onnx import sha256_file
from cityseg.export.tensorrt_compat import check_model
from cityseg.inference import Segmenter
from cityseg.labels import class_space
from cityseg.preprocess import Normalization

from support import make_palette_bundle, painted_scene

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def palette(tmp_path):
    """A bundle holding only the palette classifier as model.keras (the trainer's output)."""
    return make_palette_bundle(tmp_path / "palette", formats=("keras",))


def painted_frames(count=3, height=128, width=256):
    return [painted_scene(height, width, seed=i)[0] for i in range(count)]


def test_export_writes_onnx_records_card_and_matches_keras(palette):
    report = export_onnx(palette, frames=painted_frames())
    assert report.passed and report.frame_source == "given" and report.frames == 3
    assert report.argmax_agreement >= 0.999 and report.max_abs_diff < 1e-4
    card = Bundle.load(palette.path).card  # what was saved, not the in-memory card
    artifact = card.artifacts["onnx"]
    assert artifact.path == "model.onnx" and artifact.format == "onnx" and artifact.output == "probabilities"
    details = artifact.details
    assert details["opset"] == 17 and details["source"] == "model.keras"
    assert details["sha256"] == sha256_file(palette.path / "model.onnx")
    assert details["input"] == {"name": "image", "shape": ["batch", 64, 128, 3], "dtype": "float32"}
    assert details["output"] == {"name": "probabilities", "shape": ["batch", 64, 128, 19], "dtype": "float32"}
    assert details["parity"]["passed"] and details["parity"]["argmax_agreement"] == report.argmax_agreement
    assert {"tf2onnx", "onnx"} <= set(details["versions"]) and details["tensorrt_check"] == []
    model = onnx.load(str(palette.path / "model.onnx"))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    onnx.checker.check_model(model, full_check=True)
    # the closing NCHW->NHWC transpose now precedes a last-axis softmax (the fast ONNX Runtime path)
    *_, transpose, softmax = model.graph.node
    assert (transpose.op_type, softmax.op_type) == ("Transpose", "Softmax")
    assert softmax.input[0] == transpose.output[0] and softmax.output[0] == "probabilities"
    assert [a.i for a in softmax.attribute if a.name == "axis"] == [-1]

    image, truth = painted_scene(256, 512, seed=7)
    onnx_result = Segmenter(palette.path, backend="onnxruntime").segment(image)
    keras_result = Segmenter(palette.path, backend="tensorflow").segment(image)
    assert np.array_equal(onnx_result.classes, keras_result.classes)
    assert (onnx_result.mask == truth).mean() > 0.99


def test_argmax_head_gives_identical_masks(palette):
    export_onnx(palette)
    report = export_onnx(palette, argmax_head=True)
    assert report.passed and report.max_abs_diff is None
    artifact = Bundle.load(palette.path).card.artifacts["onnx_argmax"]
    assert artifact.path == "model_argmax.onnx" and artifact.output == "argmax"
    assert artifact.details["output"] == {"name": "classes", "shape": ["batch", 64, 128], "dtype": "uint8"}
    head = Segmenter(palette.path, artifact="onnx_argmax")
    scores = Segmenter(palette.path, artifact="onnx")
    frames = painted_frames(4, 200, 300)
    raw = head.backend.infer(head.preprocess(frames))
    assert raw.dtype == np.uint8 and raw.shape == (4, 64, 128)
    for a, b in zip(head.segment_batch(frames), scores.segment_batch(frames)):
        assert np.array_equal(a.mask, b.mask)
    assert check_model(palette.path / "model_argmax.onnx") == []
    ops = [n.op_type for n in onnx.load(str(palette.path / "model_argmax.onnx")).graph.node]
    assert "Softmax" not in ops and ops[-3:] == ["ArgMax", "Cast", "Cast"]  # argmax of the logits


def test_argmax_head_with_confidence_output(palette):
    export_onnx(palette)
    report = export_onnx(palette, argmax_head=True, confidence=True)
    assert report.passed
    artifact = Bundle.load(palette.path).card.artifacts["onnx_argmax"]
    assert artifact.confidence == "confidence" and artifact.output == "argmax"
    assert artifact.details["output"]["name"] == "classes"
    assert artifact.details["extra_outputs"] == [{"name": "confidence", "shape": ["batch", 64, 128],
                                                  "dtype": "uint8"}]
    assert artifact.details["confidence_check"]["max_abs_diff"] <= 2
    assert check_model(palette.path / "model_argmax.onnx") == []  # uint8 only at the outputs
    head = Segmenter(palette.path, artifact="onnx_argmax")
    scores = Segmenter(palette.path, artifact="onnx")
    assert head.has_confidence and scores.has_confidence
    assert Segmenter(palette.path, need_confidence=True).backend.artifact_key == "onnx_argmax"
    frames = painted_frames(2, 200, 300)
    for a, b in zip(head.segment_batch(frames), scores.segment_batch(frames)):
        assert np.array_equal(a.mask, b.mask)
        assert np.abs(a.confidence.astype(int) - b.confidence.astype(int)).max() <= 2
        assert a.confidence.shape == (200, 300)


def test_confidence_output_needs_the_argmax_head(palette):
    with pytest.raises(ExportError, match="add --argmax-head"):
        export_onnx(palette, confidence=True)


def test_plain_argmax_head_is_skipped_when_confidence_is_needed(palette):
    export_onnx(palette)
    export_onnx(palette, argmax_head=True)
    assert Segmenter(palette.path).backend.artifact_key == "onnx_argmax"
    confident = Segmenter(palette.path, need_confidence=True)
    assert confident.backend.artifact_key == "onnx" and confident.has_confidence
    assert not Segmenter(palette.path).has_confidence


def test_refuses_to_overwrite_without_force(palette):
    export_onnx(palette)
    before = (palette.path / "model.onnx").stat().st_mtime_ns
    with pytest.raises(ExportError, match=r"model\.onnx: already exists.*--force"):
        export_onnx(palette)
    assert (palette.path / "model.onnx").stat().st_mtime_ns == before
    assert export_onnx(palette, force=True).passed


def test_refuses_an_unrecorded_user_file_without_force(palette):
    (palette.path / "model.onnx").write_bytes(b"my own file")
    with pytest.raises(ExportError, match="already exists"):
        export_onnx(palette)
    assert (palette.path / "model.onnx").read_bytes() == b"my own file"


def tamper_weights(monkeypatch, factor=-1.0):
    """Make the converter emit an ONNX whose largest weight tensor is scaled by ``factor``."""
    real_convert = onnx_export.convert

    def tampered(*args, **kwargs):
        proto = real_convert(*args, **kwargs)
        init = max(proto.graph.initializer, key=lambda t: np.prod(t.dims))
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * factor, init.name))
        return proto

    monkeypatch.setattr(onnx_export, "convert", tampered)


def test_broken_export_is_refused_with_the_numbers(palette, monkeypatch):
    card_before = (palette.path / "model.json").read_text()
    tamper_weights(monkeypatch)
    with pytest.raises(ParityError) as info:
        export_onnx(palette, frames=painted_frames())
    message = str(info.value)
    assert "model.onnx: refused" in message and "Nothing was written" in message
    agreement = float(re.search(r"argmax agreement ([\d.]+)%", message).group(1))
    assert agreement < 99.9 and "max |diff|" in message
    assert info.value.report.argmax_agreement < 0.999 and not info.value.report.passed
    assert not (palette.path / "model.onnx").exists()
    assert not [p for p in palette.path.iterdir() if p.name.startswith(".")]  # no temp files
    assert (palette.path / "model.json").read_text() == card_before


def test_failed_forced_export_keeps_the_good_file(palette, monkeypatch):
    export_onnx(palette)
    good = (palette.path / "model.onnx").read_bytes()
    tamper_weights(monkeypatch, factor=0.0)
    with pytest.raises(ParityError):
        export_onnx(palette, force=True)
    assert (palette.path / "model.onnx").read_bytes() == good
    assert Bundle.load(palette.path).card.artifacts["onnx"].details["parity"]["passed"]


def test_needs_a_keras_model(tmp_path):
    bundle = make_palette_bundle(tmp_path / "onnx_only", formats=("onnx",))
    with pytest.raises(ExportError, match="no Keras model"):
        export_onnx(bundle, force=True)


def test_card_and_model_must_agree(tmp_path):
    bundle = make_palette_bundle(tmp_path / "p", formats=("keras",))
    space = class_space("labelid")  # 34 classes; the model has 19
    bundle.card = ModelCard(name="p", architecture="x", input_height=64, input_width=128,
                            class_space="labelid", class_names=space.names,
                            artifacts=bundle.card.artifacts)
    with pytest.raises(BundleError, match="outputs 19 classes but the card declares 34"):
        export_onnx(bundle)


@pytest.mark.parametrize("changes", [
    {},
    {"channel_order": "BGR", "resize": "lanczos3"},
    {"normalization": Normalization(scale=1.0, mean=(120.0, 110.0, 100.0), std=(60.0, 55.0, 50.0))},
])
def test_parity_preprocessing_is_the_segmenters(tmp_path, changes):
    bundle = make_palette_bundle(tmp_path / "p", formats=("onnx",))
    for key, value in changes.items():
        setattr(bundle.card, key, value)
    frames = [painted_scene(300, 500, seed=1)[0], painted_scene(64, 128, seed=2)[0][..., 0].copy()]
    segmenter = Segmenter(bundle, backend="onnxruntime")
    expected = segmenter.preprocess(frames)
    assert np.array_equal(bundle.card.preprocess(frames), expected)
    bgr = [f[..., ::-1].copy() if f.ndim == 3 else f for f in frames]
    assert np.array_equal(bundle.card.preprocess(bgr, "BGR"), segmenter.preprocess(bgr, "BGR"))


def test_registered_model_exports_with_parity(tmp_path):
    models = pytest.importorskip("cityseg.models")
    name = models.DEFAULT_MODEL
    space = class_space("trainid")
    model = models.build_model(name, (64, 128, 3), space.num_classes)
    card = ModelCard(name=name, architecture=name, input_height=64, input_width=128,
                     class_space="trainid", class_names=space.names, resize="area")
    bundle = Bundle.create(tmp_path / name, card)
    model.save(bundle.path / "model.keras")
    bundle.add_artifact("keras", Artifact("model.keras", "keras", "probabilities"))
    report = export_onnx(bundle, argmax_head=True, strict=True)  # generated street frames
    assert report.passed and report.frame_source in ("synth", "structured")
    assert check_model(bundle.path / "model_argmax.onnx") == []
    frames = painted_frames(2)
    onnx_masks = Segmenter(bundle, backend="onnxruntime").segment_batch(frames)
    keras_masks = Segmenter(bundle, backend="tensorflow").segment_batch(frames)
    agreement = np.mean([(a.classes == b.classes).mean() for a, b in zip(onnx_masks, keras_masks)])
    assert agreement >= 0.999


def test_mixed_precision_model_is_exported_in_float32(tmp_path):
    import keras

    space = class_space("trainid")
    inputs = keras.Input((32, 64, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", dtype="mixed_float16")(inputs)
    x = keras.layers.Conv2D(space.num_classes, 1, dtype="mixed_float16")(x)
    outputs = keras.layers.Softmax(dtype="float32")(x)
    card = ModelCard(name="mp", architecture="tiny", input_height=32, input_width=64,
                     class_space="trainid", class_names=space.names, resize="area")
    bundle = Bundle.create(tmp_path / "mp", card)
    keras.Model(inputs, outputs).save(bundle.path / "model.keras")
    bundle.add_artifact("keras", Artifact("model.keras", "keras", "probabilities"))
    report = export_onnx(bundle)
    assert report.precision == "fp16"  # the source computes in fp16: compared with fp16 tolerance
    graph = onnx.load(str(bundle.path / "model.onnx")).graph
    float16 = [t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert float16 == []
    card_json = json.loads((bundle.path / "model.json").read_text())
    assert card_json["artifacts"]["onnx"]["details"]["parity"]["passed"]

"""`cityseg import` of TFLite files (float and int8, converted with tf2onnx) and of uint8-input graphs
with integer argmax outputs: the bundle's masks equal ONNX Runtime run directly on the same converted
ONNX and the same uint8 input, on every pixel; the shared Coral model (when present) segments streets."""

import json
import time

import numpy as np
import pytest
from tflite_models import CORAL, SIZE, build_tflite

from cityseg.acquisition.importer import ImportOptions, import_onnx
from cityseg.acquisition.tflite import tflite_to_onnx
from cityseg.cli import main
from cityseg.errors import InputError
from cityseg.inference import Segmenter
from cityseg.labels import class_space

UINT8_OPTIONS = ImportOptions(channel_order="RGB", resize="nearest")


def frames(count=3, size=SIZE):
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(count)]


def reference_ids(onnx_path, batch):
    """ONNX Runtime on the converted ONNX directly -> NxHxW class ids (argmax of scores)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out = np.concatenate([session.run(None, {name: batch[i:i + 1]})[0] for i in range(len(batch))])
    return out if out.ndim == 3 else out.argmax(axis=-1)


@pytest.fixture(scope="module")
def int8_tflite(tmp_path_factory):
    return build_tflite(tmp_path_factory.mktemp("tfl") / "seg_int8.tflite", int8=True)


def test_int8_tflite_imports_as_uint8_and_masks_equal_onnxruntime(tmp_path, int8_tflite):
    bundle = import_onnx(int8_tflite, tmp_path / "b", class_space("trainid"), UINT8_OPTIONS)
    card = bundle.card
    assert card.input_dtype == "uint8" and card.artifacts["onnx_quantized"].output == "argmax"
    twin = card.artifacts["onnx"]  # the TensorRT-ready float twin: scores (then ids) out
    assert (twin.output, twin.precision, twin.details["role"], twin.details["tensorrt_check"]) == \
        ("logits", "fp32", "float-twin", [])
    assert card.artifacts["onnx_quantized"].details["tensorrt_check"]  # the original: TensorRT rejects it
    assert card.imported["source"] == str(int8_tflite) and card.imported["converted"]
    assert json.loads((bundle.path / "model.json").read_text())["input_dtype"] == "uint8"
    converted = tflite_to_onnx(int8_tflite, tmp_path / "ref.onnx")
    images = frames()
    batch = np.stack(images)  # at the network size: the resize is the identity, no normalisation
    assert card.preprocess(images).dtype == np.uint8
    np.testing.assert_array_equal(card.preprocess(images), batch)
    expected = reference_ids(converted, batch)
    original = Segmenter(bundle.path, backend="onnxruntime", artifact="onnx_quantized")
    masks = [s.mask for s in original.segment_batch(images)]
    assert len(np.unique(expected)) > 1
    np.testing.assert_array_equal(np.stack(masks), expected)
    floated = [s.mask for s in Segmenter(bundle.path, backend="onnxruntime", artifact="onnx").segment_batch(images)]
    assert (np.stack(floated) == expected).mean() >= 0.95


def test_float_tflite_imports_and_masks_equal_onnxruntime(tmp_path):
    path = build_tflite(tmp_path / "seg_float.tflite")
    options = ImportOptions(channel_order="RGB", scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                            resize="nearest")
    bundle = import_onnx(path, tmp_path / "b", class_space("trainid"), options)
    assert bundle.card.input_dtype == "float32"
    converted = tflite_to_onnx(path, tmp_path / "ref.onnx")
    images = frames()
    batch = ((np.stack(images).astype(np.float32) / 255 - 0.5) / 0.25).astype(np.float32)
    expected = reference_ids(converted, batch)
    masks = np.stack([s.mask for s in Segmenter(bundle.path, backend="onnxruntime").segment_batch(images)])
    assert (masks == expected).mean() > 0.999  # float rounding of the normalisation may flip a tie


def test_old_cards_without_input_dtype_load_as_float32(tmp_path, int8_tflite):
    bundle = import_onnx(int8_tflite, tmp_path / "b", class_space("trainid"), UINT8_OPTIONS)
    raw = json.loads((bundle.path / "model.json").read_text())
    del raw["input_dtype"]
    (bundle.path / "model.json").write_text(json.dumps(raw))
    from cityseg.bundle import Bundle

    assert Bundle.load(bundle.path).card.input_dtype == "float32"


def test_not_a_tflite_is_refused_in_one_line(tmp_path, capsys):
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="tf2onnx cannot convert"):
        import_onnx(bad, tmp_path / "b", class_space("trainid"), UINT8_OPTIONS)
    assert not (tmp_path / "b").exists()
    code = main(["import", str(bad), "--out", str(tmp_path / "c"), "--labels", "cityscapes",
                 "--channel-order", "rgb", "--resize", "nearest"])
    assert code == 2 and not (tmp_path / "c").exists()


@pytest.mark.skipif(not CORAL.is_file(), reason=f"the shared Coral model is absent ({CORAL})")
def test_coral_model_imports_and_segments_synthetic_streets(tmp_path):
    from cityseg.labels import class_space as space
    from cityseg.synthetic.dataset import drive_frames

    bundle = import_onnx(CORAL, tmp_path / "coral", space("trainid"),
                         ImportOptions(channel_order="RGB", resize="bilinear"))
    card = bundle.card
    assert (card.input_height, card.input_width, card.input_dtype) == (513, 513, "uint8")
    segmenter = Segmenter(bundle.path, backend="onnxruntime", artifact="onnx_quantized")
    labelid = space("labelid")
    road_labelid = labelid.names.index("road")  # labelIds: the index is the id
    hits = []
    start = time.perf_counter()
    for image, labels in drive_frames(2, 256, 512, seed=3):
        mask = segmenter.segment(image).mask
        road = labels == road_labelid
        hits.append((mask[road] == 0).mean())  # trainId 0 = road
    assert time.perf_counter() - start < 20
    assert np.mean(hits) > 0.5, f"road recall on synthetic streets {hits}"
    image = next(drive_frames(1, 513, 513, seed=4))[0]  # network-size frame: masks compare 1:1
    converted = tflite_to_onnx(CORAL, tmp_path / "coral.onnx")
    np.testing.assert_array_equal(segmenter.segment(image).mask, reference_ids(converted, image[None])[0])


def test_a_refused_tflite_import_names_the_tflite_not_the_converted_onnx(tmp_path, int8_tflite):
    labels = tmp_path / "two.yaml"
    labels.write_text("name: two\nignore_id: 255\nclasses:\n  - {id: 0, name: a, color: [0, 0, 0]}\n"
                      "  - {id: 1, name: b, color: [255, 255, 255]}\n")
    from cityseg.labels import load_label_set

    with pytest.raises(InputError) as info:
        import_onnx(int8_tflite, tmp_path / "b", load_label_set(labels), UINT8_OPTIONS)
    assert str(info.value).startswith(f"{int8_tflite}: ") and ".onnx" not in str(info.value)
    assert not (tmp_path / "b").exists()


def test_cli_import_prints_one_tensorrt_summary_line_and_the_result_last(tmp_path, int8_tflite, capsys, caplog):
    out = tmp_path / "b"
    assert main(["import", str(int8_tflite), "--out", str(out), "--labels", "cityscapes",
                 "--channel-order", "rgb", "--resize", "nearest"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[-1].startswith(f"wrote {out}")
    artifacts = json.loads((out / "model.json").read_text())["artifacts"]
    assert artifacts["onnx"]["details"]["tensorrt_check"] == []
    assert artifacts["onnx_quantized"]["details"]["tensorrt_check"]
    assert lines[0].startswith("TensorRT 10: no operators or attributes TensorRT 10 is known to reject in the "
                               "float twin model.onnx (TensorRT builds from it; ")
    assert lines[0].endswith("the publisher's quantised model_quantized.onnx runs on CPUs")
    assert not [r for r in caplog.records if r.levelno >= 30 and "TensorRT" in r.getMessage()]


def test_a_trainid_model_given_the_labelid_set_is_refused_by_its_class_count(tmp_path, int8_tflite):
    with pytest.raises(InputError, match=r"ArgMax picks among 19 classes, the label set 'labelid' has 34.*"
                                         r"cityscapes, the trainIds") as info:
        import_onnx(int8_tflite, tmp_path / "b", class_space("labelid"), UINT8_OPTIONS)
    assert str(info.value).startswith(f"{int8_tflite}: ") and not (tmp_path / "b").exists()


@pytest.mark.skipif(not CORAL.is_file(), reason=f"the shared Coral model is absent ({CORAL})")
def test_coral_trainids_read_as_labelids_land_in_void_classes_and_are_refused(tmp_path):
    """The second check (for graphs whose ArgMax width is unknown): the Coral model's trainIds on a
    street frame, read as labelIds, are mostly void (road -> unlabeled, building -> rectification
    border); the street's true labelIds are not."""
    from cityseg.acquisition.class_checks import check_void_share
    from cityseg.synthetic.dataset import drive_frames

    bundle = import_onnx(CORAL, tmp_path / "coral", class_space("trainid"),
                         ImportOptions(channel_order="RGB", resize="bilinear"))
    image, truth = next(drive_frames(1, 256, 512, seed=5))
    mask = Segmenter(bundle.path, backend="onnxruntime", artifact="onnx_quantized").segment(image).mask
    with pytest.raises(InputError, match=r"of a street frame lands in void classes of 'labelid' \(.*unlabeled"):
        check_void_share(mask, class_space("labelid"), CORAL)
    assert check_void_share(truth, class_space("labelid"), "truth") < 0.5
    assert bundle.card.artifacts["onnx"].details["trial"]["void_share"] == 0.0  # trainIds have no void class


def test_two_conversions_of_one_file_give_the_same_bytes(tmp_path, int8_tflite):
    first = tflite_to_onnx(int8_tflite, tmp_path / "a.onnx").read_bytes()
    second = tflite_to_onnx(int8_tflite, tmp_path / "b.onnx").read_bytes()  # tf2onnx's counter has moved on
    assert first == second


def test_an_imported_quantised_model_now_gives_confidence_from_its_float_twin(tmp_path, int8_tflite, capsys):
    import cv2

    bundle = import_onnx(int8_tflite, tmp_path / "b", class_space("trainid"), UINT8_OPTIONS)
    image = tmp_path / "f.png"
    cv2.imwrite(str(image), frames(1)[0])
    assert main(["segment", str(image), "--model", str(bundle.path), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert not [line for line in out.splitlines() if line.startswith("no _confidence.png")]  # scores: the twin

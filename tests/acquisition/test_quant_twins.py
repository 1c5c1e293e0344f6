"""Float twins of quantised graphs (cityseg.export.qdq_float, integer_ops) on a small ONNX
quantised in the test with ONNX Runtime (QDQ, asymmetric uint8), and on the real Coral model when it
is present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from cityseg.export.qdq_float import QuantGraphError, float_twin, needs_float_twin, quantised_inside
from cityseg.export.tensorrt_compat import check_model
from tests.tflite_models import CORAL

H, W, CLASSES = 32, 48, 5


def float_net(path: Path) -> Path:
    """A float NCHW conv net: Conv-Relu-Conv-Relu, a residual Add, Conv(classes) -> ArgMax (int64 ids)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.4, shape).astype(np.float32), name) for name, shape in
             (("w1", (8, 3, 3, 3)), ("b1", (8,)), ("w2", (8, 8, 3, 3)), ("b2", (8,)), ("w3", (CLASSES, 8, 1, 1)),
              ("b3", (CLASSES,)))]
    nodes = [helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Add", ["r1", "r2"], ["residual"]),
             helper.make_node("Conv", ["residual", "w3", "b3"], ["scores"]),
             helper.make_node("ArgMax", ["scores"], ["ids"], axis=1, keepdims=0)]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, H, W])],
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, H, W])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def frames(count: int, seed: int = 1) -> list[np.ndarray]:
    """Smooth uint8 street-like NCHW frames (gradients plus blobs)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W] / max(H, W)
    out = []
    for _ in range(count):
        base = np.stack([np.sin(6 * xx * rng.uniform(0.5, 2) + rng.uniform(0, 6)) + yy * rng.uniform(-1, 1)
                         for _ in range(3)])
        out.append(np.clip(127 + 100 * base, 0, 255).astype(np.uint8)[None])
    return out


class Feed:
    def __init__(self, batches):
        self.batches = iter(batches)

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {"image": batch}


def quantised_net(tmp_path: Path, uint8_input: bool = True, per_channel: bool = False) -> Path:
    """The float net quantised by ONNX Runtime (QDQ, uint8 activations and weights with zero points);
    with ``uint8_input`` its input QuantizeLinear is dropped, so it takes the uint8 frame (as TFLite's)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    source, target = float_net(tmp_path / "float.onnx"), tmp_path / "quant.onnx"
    scaled = [(f.astype(np.float32) - 128) / 64 for f in frames(16, seed=2)]
    quantize_static(str(source), str(target), Feed(scaled), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": False})
    if uint8_input:
        model = onnx.load(str(target))
        quant = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "image")
        model.graph.node.remove(quant)
        model.graph.input[0].name = quant.output[0]
        model.graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
        onnx.save(model, str(target))
    return target


def run(model, batch: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString() if not isinstance(model, (str, Path)) else str(model),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})


def test_float_twin_of_a_uint8_quantised_net_has_no_qdq_exposes_scores_and_keeps_the_ids(tmp_path):
    path = quantised_net(tmp_path)
    original = onnx.load(str(path))
    assert needs_float_twin(original) and check_model(original)  # TensorRT 10 rejects the original
    twin = float_twin(original, str(path))
    assert quantised_inside(twin) == [] and check_model(twin) == []
    assert twin.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8  # the frame as it is, still
    assert [o.name for o in twin.graph.output][1] == original.graph.output[0].name
    assert integer_counts(twin) == {"convs": 3, "adds": 1}  # every Conv and the Add on the integers
    same = pixels = 0
    for batch in frames(8, seed=5):
        (ids,), (scores, twin_ids) = run(path, batch), run(twin, batch)
        assert scores.shape == (1, CLASSES, H, W) and scores.dtype == np.float32
        np.testing.assert_array_equal(scores.argmax(1), twin_ids)
        same, pixels = same + int((ids == twin_ids).sum()), pixels + ids.size
    assert same == pixels  # the quantised kernels' own ids, pixel for pixel


def test_the_twin_stays_exact_through_onnx_runtime_graph_optimisations(tmp_path):
    path = quantised_net(tmp_path)
    twin = float_twin(onnx.load(str(path)), str(path))
    bare = ort.SessionOptions()
    bare.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = ort.InferenceSession(twin.SerializeToString(), bare, providers=["CPUExecutionProvider"])
    batch = frames(1, seed=9)[0]
    # the Round fences keep Conv+Mul fusion from folding the scales into the integer weights
    np.testing.assert_array_equal(run(twin, batch)[0], plain.run(None, {plain.get_inputs()[0].name: batch})[0])


def test_the_twins_convs_sum_integers_and_a_real_valued_twin_has_none(tmp_path):
    """Why the twin matches the kernels: each Conv sums ``q - zero point`` integers, exactly."""
    path = quantised_net(tmp_path)
    original = onnx.load(str(path))
    twin = float_twin(original, str(path))
    sums = [n.output[0] for n in twin.graph.node if n.op_type == "Conv"]
    twin.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in sums)
    values = run(twin, frames(1, seed=5)[0])[2:]
    assert len(values) == 3 and all(np.array_equal(v, np.round(v)) and np.abs(v).max() > 1000 for v in values)
    real = float_twin(original, str(path), rounding=False)  # the diagnostic: Q/DQ dropped, reals throughout
    assert integer_counts(real) == {"convs": 0, "adds": 0} and quantised_inside(real) == []


def integer_counts(twin) -> dict:
    return {k: int(v) for k, v in json.loads(next(p.value for p in twin.metadata_props
                                                  if p.key == "cityseg.integer_ops")).items()}


def test_a_graph_of_symmetric_int8_or_float_needs_no_twin(tmp_path):
    assert not needs_float_twin(onnx.load(str(float_net(tmp_path / "f.onnx"))))


def test_per_channel_scales_on_an_unexpected_axis_are_refused_in_one_line(tmp_path):
    path = quantised_net(tmp_path, per_channel=True)
    model = onnx.load(str(path))
    twin = float_twin(model, str(path))  # axis 0: fine
    assert quantised_inside(twin) == []
    weight_dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0].startswith("w2"))
    for attribute in weight_dq.attribute:
        if attribute.name == "axis":
            attribute.i = 1  # w2 is 8x8x3x3: 8 scales fit axis 1 too, but a Conv weight's belong on axis 0
    with pytest.raises(QuantGraphError, match=r"quantised per channel on axis 1.*axis 0") as caught:
        float_twin(model, str(path))
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_per_channel_scales_that_do_not_fit_their_axis_are_refused(tmp_path):
    path = quantised_net(tmp_path, per_channel=True)
    model = onnx.load(str(path))
    weight_dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0].startswith("w1"))
    weight_dq.attribute.append(helper.make_attribute("axis", 2)) if not weight_dq.attribute else None
    for attribute in weight_dq.attribute:
        attribute.i = 2  # w1 is 8x3x3x3: 8 scales on an axis of 3
    with pytest.raises(QuantGraphError, match="8 per-channel scales on axis 2, which has 3 entries"):
        float_twin(model, str(path))


@pytest.mark.slow
@pytest.mark.skipif(not CORAL.is_file(), reason="the shared Coral model is not present")
def test_float_twin_of_the_coral_model_passes_the_tensorrt_check_and_keeps_the_ids(tmp_path):
    from cityseg.acquisition.tflite import tflite_to_onnx

    path = tflite_to_onnx(CORAL, tmp_path / "coral.onnx")
    original = onnx.load(str(path))
    assert needs_float_twin(original) and len(check_model(original)) > 100
    twin = float_twin(original, str(CORAL))
    assert quantised_inside(twin) == [] and check_model(twin) == []
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:513, 0:513]
    frame = np.stack([(xx // 3) % 256, (yy // 2) % 256, ((xx + yy) // 4) % 256], -1).astype(np.uint8)[None]
    frame = np.clip(frame.astype(int) + rng.integers(-8, 8, frame.shape), 0, 255).astype(np.uint8)
    (ids,), (scores, twin_ids) = run(path, frame), run(twin, frame)
    assert scores.shape == (1, 19, 513, 513)
    assert integer_counts(twin) == {"convs": 62, "adds": 15}
    assert (ids == twin_ids).mean() >= 0.99  # real CamVid frames: 99.99 % (docs/MODELS.md)

"""The TensorRT 10 parse check on real ONNX files built with onnx.helper."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cityseg.export import ExportError
from cityseg.export.tensorrt_compat import check_model, describe, enforce

from support import write_palette_onnx

SHAPE = ["N", 3, 16, 16]


def save_graph(path, nodes, inputs, outputs, initializers=(), opset=17, extra_opsets=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *extra_opsets])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def image(name="x", elem=TensorProto.FLOAT, shape=SHAPE):
    return helper.make_tensor_value_info(name, elem, shape)


def problems(path):
    return [str(f) for f in check_model(path)]


def test_our_palette_models_pass(tmp_path):
    assert check_model(write_palette_onnx(tmp_path / "p.onnx", height=64, width=128)) == []
    assert check_model(write_palette_onnx(tmp_path / "a.onnx", height=64, width=128, argmax=True)) == []


def test_unsupported_operator_is_flagged(tmp_path):
    path = save_graph(tmp_path / "unique.onnx",
                      [helper.make_node("Relu", ["x"], ["r"], name="relu"),
                       helper.make_node("Unique", ["r"], ["y"], name="uniq")],
                      [image()], [image("y", shape=["M"])])
    onnx.checker.check_model(onnx.load(str(path)))  # a valid ONNX model, just not for TensorRT
    assert problems(path) == ["node 'uniq' (Unique): not supported by the TensorRT 10 ONNX parser "
                              "(support matrix: N)"]


def test_bitwise_ops_from_keras_argmax_are_flagged(tmp_path):
    # keras.ops.argmax on the TF backend lowers to Bitcast/BitwiseAnd; TensorRT parses neither
    path = save_graph(tmp_path / "bits.onnx",
                      [helper.make_node("BitwiseAnd", ["a", "b"], ["y"], name="and")],
                      [image("a", TensorProto.INT32, [4]), image("b", TensorProto.INT32, [4])],
                      [image("y", TensorProto.INT32, [4])])
    assert problems(path) == ["node 'and' (BitwiseAnd): not supported by the TensorRT 10 ONNX parser "
                              "(support matrix: N)"]


def test_custom_domain_and_unknown_ops(tmp_path):
    path = save_graph(tmp_path / "custom.onnx",
                      [helper.make_node("FusedConv", ["x"], ["y"], name="fused", domain="com.microsoft")],
                      [image()], [image("y")], extra_opsets=[helper.make_opsetid("com.microsoft", 1)])
    assert "custom domain 'com.microsoft'" in problems(path)[0]


def test_resize_restrictions(tmp_path):
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="cubic",
                              coordinate_transformation_mode="tf_crop_and_resize", antialias=1)]
    path = save_graph(tmp_path / "resize.onnx", nodes, [image()], [image("y", shape=None)], [scales], opset=18)
    found = problems(path)
    assert len(found) == 3
    assert "mode 'cubic' is not supported" in found[0]
    assert "coordinate_transformation_mode 'tf_crop_and_resize'" in found[1]
    assert "antialiasing" in found[2]
    ok = [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear",
                           coordinate_transformation_mode="half_pixel")]
    assert problems(save_graph(tmp_path / "ok.onnx", ok, [image()], [image("y", shape=None)], [scales])) == []


def test_pooling_restrictions(tmp_path):
    nodes = [helper.make_node("MaxPool", ["x"], ["y", "idx"], name="pool", kernel_shape=[2, 2],
                              dilations=[2, 2])]
    path = save_graph(tmp_path / "pool.onnx", nodes, [image()],
                      [image("y", shape=None), image("idx", TensorProto.INT64, None)])
    found = problems(path)
    assert any("dilations [2, 2]" in f for f in found) and any("Indices output" in f for f in found)
    one_d = [helper.make_node("AveragePool", ["x"], ["y"], name="p1", kernel_shape=[2])]
    path = save_graph(tmp_path / "p1.onnx", one_d, [image(shape=["N", 3, 16])], [image("y", shape=None)])
    assert "1-D pooling is not supported" in problems(path)[0]


def test_topk_dropout_and_reduce_restrictions(tmp_path):
    k = numpy_helper.from_array(np.array([5000], np.int64), "k")
    train = numpy_helper.from_array(np.array(True), "train")
    nodes = [
        helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk", axis=1, sorted=0),
        helper.make_node("Dropout", ["x", "", "train"], ["d"], name="drop"),
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Slice", ["shape", "k", "k"], ["axes"], name="slice"),
        helper.make_node("ReduceSum", ["x", "axes"], ["s"], name="sum"),
    ]
    outputs = [image("v", shape=None), image("i", TensorProto.INT64, None), image("d", shape=None),
               image("s", shape=None)]
    path = save_graph(tmp_path / "misc.onnx", nodes, [image()], outputs, [k, train])
    found = "\n".join(problems(path))
    assert "sorted=0" in found and "K=5000 is too large" in found
    assert "training_mode must be an initializer that is False" in found
    assert "'axes' input must be an initializer" in found


def test_internal_uint8_and_unsupported_types(tmp_path):
    nodes = [helper.make_node("Cast", ["x"], ["u8"], name="to_u8", to=TensorProto.UINT8),
             helper.make_node("Cast", ["u8"], ["y"], name="back", to=TensorProto.FLOAT),
             helper.make_node("Cast", ["x"], ["s16"], name="to_i16", to=TensorProto.INT16)]
    path = save_graph(tmp_path / "types.onnx", nodes, [image()],
                      [image("y"), image("s16", TensorProto.INT16)])
    found = problems(path)
    assert "tensor 'u8': UINT8 is supported only as a network input or output, not inside the graph" in found
    assert "tensor 's16': type INT16 has no TensorRT equivalent" in found


def test_opset_outside_tensorrt_10_range(tmp_path):
    path = save_graph(tmp_path / "o21.onnx", [helper.make_node("Relu", ["x"], ["y"])], [image()],
                      [image("y")], opset=21)
    assert problems(path) == ["model: default-domain opset 21 is outside 9-20, the range every "
                              "TensorRT 10.x parses; export with --opset 17"]


def test_enforce_warns_or_refuses(tmp_path, caplog):
    path = save_graph(tmp_path / "u.onnx", [helper.make_node("Unique", ["x"], ["y"], name="u")],
                      [image()], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(ExportError, match=r"(?s)TensorRT 10 would reject 1 thing.*Unique.*Nothing was written"):
        enforce(onnx.load(str(path)), path, strict=True)
    findings = enforce(onnx.load(str(path)), path, strict=False)
    assert len(findings) == 1 and "a TensorRT build will fail" in caplog.text
    assert describe([]).startswith("no operators")

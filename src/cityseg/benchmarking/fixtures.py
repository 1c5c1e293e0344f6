"""What the benchmarks run on: a camera frame, and bundles of registered models with random weights
or of a generated imported-style ONNX (for latency only, never for accuracy); and the one ONNX
writer of foreign-style models that the benchmarks and the tests (tests/support.py) build."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cityseg.acquisition.importer import ImportOptions, import_onnx
from cityseg.bundle import Artifact, Bundle, ModelCard, framework_versions
from cityseg.export.onnx import export_onnx
from cityseg.labels import class_space

FRAME_HEIGHT, FRAME_WIDTH = 1024, 2048


def camera_frame() -> np.ndarray:
    """A 2048x1024 street scene (random pixels when the synthetic package is unavailable)."""
    try:
        from cityseg.synthetic.dataset import render_scene

        return render_scene(np.random.default_rng(0), FRAME_HEIGHT, FRAME_WIDTH)[0]
    except ImportError:  # synth is optional for benchmarking a user's bundle
        return np.random.default_rng(0).integers(0, 256, (FRAME_HEIGHT, FRAME_WIDTH, 3), np.uint8)


def make_random_bundle(root: Path, model_name: str, height: int, width: int) -> Path:
    """A bundle of a registered model with random weights (for latency only): Keras, ONNX and the
    argmax-head ONNX (which ONNX Runtime then runs, as the Segmenter prefers it)."""
    path = root / f"{model_name}_{height}x{width}"
    model, card = random_model(model_name, height, width, resize="area",
                               frameworks=framework_versions("tensorflow", "keras"))
    bundle = Bundle.create(path, card)
    model.save(path / "model.keras")
    bundle.add_artifact("keras", Artifact("model.keras", "keras", "probabilities"))
    export_onnx(bundle)
    export_onnx(bundle, argmax_head=True)  # what a vehicle runs: argmax in the graph, uint8 out
    return path


def random_model(model_name: str, height: int, width: int, **card_fields):
    """(Keras model with random weights, its trainId model card) of a registered architecture at
    ``height`` x ``width``; ``card_fields`` override card defaults (name: '<model>-random')."""
    # lazy: cityseg.models imports Keras (TensorFlow), needed only where a Keras model is built
    from cityseg.models import build_model

    space = class_space("trainid")
    model = build_model(model_name, (height, width, 3), space.num_classes)
    card_fields.setdefault("name", f"{model_name}-random")
    card = ModelCard(architecture=model_name, input_height=height, input_width=width,
                     class_space="trainid", class_names=space.names, **card_fields)
    return model, card


MMSEG_MEAN, MMSEG_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
"""mmsegmentation's ImageNet normalisation (RGB, 0-255 pixels): what its exported models expect."""


def save_onnx(path: Path, graph, opset: int = 17, producer: str = "") -> Path:
    """Check and save ``graph`` as an ONNX model of ``opset`` (IR version 8, which every supported
    ONNX Runtime and TensorRT reads), named as made by ``producer``."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name=producer)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def save_foreign_onnx(path: Path, nodes, input_shape, output_name: str, output_type: int, output_shape,
                      initializers: dict, opset: int = 17) -> Path:
    """Save a one-input ('input', float) one-output ONNX graph the way a foreign (PyTorch) exporter
    would; ``initializers`` maps names to numpy arrays."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(nodes, path.stem,
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)],
                              [helper.make_tensor_value_info(output_name, output_type, output_shape)],
                              initializer=[numpy_helper.from_array(v, k) for k, v in initializers.items()])
    return save_onnx(path, graph, opset, producer="pytorch")


IMPORTED_NAME = "stride8_nchw"
"""The generated stand-in for an imported real-time model (PIDNet/DDRNet/STDC-style output)."""


def write_imported_style_onnx(path: Path, height: int, width: int, classes: int = 19, seed: int = 0) -> Path:
    """An ONNX as PyTorch exports real-time models: NCHW float input of batch 1, three stride-2
    3x3 conv + ReLU stages (32, 64, 128 channels) and a 1x1 classifier, logits at 1/8 of the input.
    Random weights: for latency only."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    nodes, inits, previous, channels = [], {}, "input", 3
    for i, width_out in enumerate((32, 64, 128)):
        inits[f"w{i}"] = rng.normal(0, (2.0 / (9 * channels)) ** 0.5, (width_out, channels, 3, 3)).astype(np.float32)
        inits[f"b{i}"] = np.zeros(width_out, np.float32)
        nodes += [helper.make_node("Conv", [previous, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[3, 3],
                                   strides=[2, 2], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        previous, channels = f"r{i}", width_out
    inits["head"] = rng.normal(0, 0.1, (classes, channels, 1, 1)).astype(np.float32)
    inits["head_b"] = np.zeros(classes, np.float32)
    nodes.append(helper.make_node("Conv", [previous, "head", "head_b"], ["logits"], kernel_shape=[1, 1]))
    return save_foreign_onnx(path, nodes, [1, 3, height, width], "logits", TensorProto.FLOAT,
                             [1, classes, height // 8, width // 8], inits)


def make_imported_bundle(root: Path, height: int, width: int) -> Path:
    """:func:`write_imported_style_onnx` bundled by ``cityseg import`` (mmsegmentation's preprocessing)."""
    onnx_path = write_imported_style_onnx(root / f"{IMPORTED_NAME}.onnx", height, width)
    options = ImportOptions(channel_order="rgb", scale=1.0, mean=MMSEG_MEAN, std=MMSEG_STD, resize="bilinear")
    path = root / f"{IMPORTED_NAME}_{height}x{width}"
    import_onnx(onnx_path, path, class_space("trainid"), options, name=IMPORTED_NAME)
    return path

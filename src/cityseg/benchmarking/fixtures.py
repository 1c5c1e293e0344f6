"""What the benchmarks run on: a camera frame, and bundles of registered models with random weights
or of a generated imported-style ONNX (for latency only, never for accuracy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
    from cityseg.bundle import Artifact, Bundle, framework_versions
    from cityseg.export.onnx import export_onnx

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
    from cityseg.bundle import ModelCard
    from cityseg.labels import class_space
    from cityseg.models import build_model

    space = class_space("trainid")
    model = build_model(model_name, (height, width, 3), space.num_classes)
    card_fields.setdefault("name", f"{model_name}-random")
    card = ModelCard(architecture=model_name, input_height=height, input_width=width,
                     class_space="trainid", class_names=space.names, **card_fields)
    return model, card


IMPORTED_NAME = "stride8_nchw"
"""The generated stand-in for an imported real-time model (PIDNet/DDRNet/STDC-style output)."""


def write_imported_style_onnx(path: Path, height: int, width: int, classes: int = 19, seed: int = 0) -> Path:
    """An ONNX as PyTorch exports real-time models: NCHW float input of batch 1, three stride-2
    3x3 conv + ReLU stages (32, 64, 128 channels) and a 1x1 classifier, logits at 1/8 of the input.
    Random weights: for latency only."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits, previous, channels = [], [], "input", 3
    for i, width_out in enumerate((32, 64, 128)):
        weight = rng.normal(0, (2.0 / (9 * channels)) ** 0.5, (width_out, channels, 3, 3)).astype(np.float32)
        inits += [numpy_helper.from_array(weight, f"w{i}"),
                  numpy_helper.from_array(np.zeros(width_out, np.float32), f"b{i}")]
        nodes += [helper.make_node("Conv", [previous, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[3, 3],
                                   strides=[2, 2], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        previous, channels = f"r{i}", width_out
    head = rng.normal(0, 0.1, (classes, channels, 1, 1)).astype(np.float32)
    inits += [numpy_helper.from_array(head, "head"),
              numpy_helper.from_array(np.zeros(classes, np.float32), "head_b")]
    nodes.append(helper.make_node("Conv", [previous, "head", "head_b"], ["logits"], kernel_shape=[1, 1]))
    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, height, width])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes, height // 8, width // 8])
    graph = helper.make_graph(nodes, IMPORTED_NAME, [image], [logits], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def make_imported_bundle(root: Path, height: int, width: int) -> Path:
    """:func:`write_imported_style_onnx` bundled by ``cityseg import`` (mmsegmentation's preprocessing)."""
    from cityseg.export.importer import ImportOptions, import_onnx
    from cityseg.labels import class_space

    onnx_path = write_imported_style_onnx(root / f"{IMPORTED_NAME}.onnx", height, width)
    options = ImportOptions(channel_order="rgb", scale=1.0, mean=(123.675, 116.28, 103.53),
                            std=(58.395, 57.12, 57.375), resize="bilinear")
    path = root / f"{IMPORTED_NAME}_{height}x{width}"
    import_onnx(onnx_path, path, class_space("trainid"), options, name=IMPORTED_NAME)
    return path

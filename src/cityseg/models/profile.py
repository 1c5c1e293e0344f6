"""Model cost: parameters, multiply-accumulates / FLOPs per image, and on-disk size.

Compute is counted analytically by walking the model graph and reading each layer's input and
output shapes: the multiply-accumulates (MACs) of Conv2D (grouped and dilated included),
DepthwiseConv2D, SeparableConv2D, Conv2DTranspose and Dense layers. Element-wise work
(BatchNorm - folded into the conv at deployment -, activations, bias adds, pooling, resizing,
concatenation, softmax) is not counted; it is a few percent of the total for these models.

Convention: **FLOPs = 2 x MACs** (one multiply + one add). Papers that quote "FLOPs" from
fvcore/mmcv counters actually quote MACs; use :func:`gmacs` to compare with those.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import keras

from cityseg.models.common import ModelError


def count_params(model: keras.Model) -> int:
    """Number of parameters (trainable and not, e.g. BatchNorm statistics)."""
    return int(model.count_params())


def _shape(tensor) -> tuple:
    return tuple(tensor.shape)


def _spatial(shape: tuple) -> int:
    return math.prod(int(d) for d in shape[1:-1])


def layer_macs(layer, input_shape: tuple, output_shape: tuple) -> int:
    """MACs of one call of ``layer`` for one image (batch dimension ignored)."""
    if isinstance(layer, keras.layers.SeparableConv2D):
        kh, kw = layer.kernel_size
        cin = int(input_shape[-1])
        mid = cin * layer.depth_multiplier
        return _spatial(output_shape) * (kh * kw * mid + mid * layer.filters)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return _spatial(output_shape) * kh * kw * int(input_shape[-1]) * layer.depth_multiplier
    if isinstance(layer, keras.layers.Conv2DTranspose):
        kh, kw = layer.kernel_size
        # every input pixel scatters a kh x kw x filters kernel
        return _spatial(input_shape) * kh * kw * int(input_shape[-1]) * layer.filters
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        cin = int(input_shape[-1]) // layer.groups
        return _spatial(output_shape) * kh * kw * cin * layer.filters
    if isinstance(layer, keras.layers.Dense):
        return math.prod(int(d) for d in output_shape[1:-1]) * int(input_shape[-1]) * layer.units
    return 0


def _graph_macs(model: keras.Model) -> int:
    nodes_by_depth = getattr(model, "_nodes_by_depth", None)
    if nodes_by_depth is None:
        raise ModelError(f"{model.name}: only functional Keras models can be profiled")
    total = 0
    for nodes in nodes_by_depth.values():
        for node in nodes:
            layer = node.operation
            if isinstance(layer, keras.Model):
                total += _graph_macs(layer)
                continue
            inputs = node.arguments.keras_tensors
            if not inputs or not node.outputs:
                continue
            total += layer_macs(layer, _shape(inputs[0]), _shape(node.outputs[0]))
    return total


def _at_size(model: keras.Model, height: int, width: int) -> keras.Model:
    """``model`` itself when its input is ``height`` x ``width``, else a clone built at that size."""
    shape = tuple(model.inputs[0].shape)
    if shape[1:3] == (height, width):
        return model
    try:
        return keras.models.clone_model(model, input_tensors=keras.Input((height, width, shape[-1])))
    except Exception as exc:  # layers with fixed internal sizes cannot be re-shaped
        raise ModelError(f"{model.name}: built for {shape[1]}x{shape[2]} and cannot be re-shaped to "
                         f"{height}x{width} ({exc}); build it at that size with "
                         "cityseg.models.build_model") from None


def macs(model: keras.Model, height: int, width: int) -> int:
    """Multiply-accumulates for one ``height`` x ``width`` image."""
    return _graph_macs(_at_size(model, height, width))


def gmacs(model: keras.Model, height: int, width: int) -> float:
    """Giga multiply-accumulates per image (what fvcore/mmcv call "GFLOPs")."""
    return macs(model, height, width) / 1e9


def gflops(model: keras.Model, height: int, width: int) -> float:
    """Giga floating-point operations per image, FLOPs = 2 x MACs (see the module docstring)."""
    return 2 * macs(model, height, width) / 1e9


def saved_size_bytes(model: keras.Model) -> int:
    """Size in bytes of ``model`` saved as a ``.keras`` file (an uncompiled model: weights + config)."""
    with tempfile.TemporaryDirectory(prefix="cityseg-size-") as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.stat().st_size

"""Model architectures (Keras 3): a registry of name -> builder.

Every model maps float32 images ``(B, H, W, 3)`` (normalised as the model card says) to float32
softmax probabilities ``(B, H, W, num_classes)`` at the input resolution; the final activation is
float32, so the models are safe under mixed precision. Every dropout is a
:class:`~cityseg.models.layers.ScheduledDropout`. Importing this package registers the custom
layers with Keras, so ``keras.saving.load_model`` can read saved models.

=================  ==========================================================================
``unet``           the original study's U-Net (64..1024 filters, ~31M parameters)
``unet_lite``      depthwise-separable U-Net, the default (see docs/MODELS.md for its cost)
``mobilenetv2_unet``  MobileNetV2 encoder (optional local ImageNet weights) + separable decoder
``fast_scnn``      Fast-SCNN, a non-U-Net real-time baseline (~1.1M parameters)
=================  ==========================================================================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from cityseg.models.common import ModelError
from cityseg.models.layers import FusedBatchNormalization, ScheduledDropout, dropout_layers, set_dropout_rate

DEFAULT_MODEL = "unet_lite"
"""The default architecture: <= 2M parameters and <= 10 GFLOPs at 512x1024 (tested)."""

_BUILDERS: dict[str, str] = {
    "unet": "cityseg.models.unet:build_unet",
    "unet_lite": "cityseg.models.unet_lite:build_unet_lite",
    "mobilenetv2_unet": "cityseg.models.mobilenetv2_unet:build_mobilenetv2_unet",
    "fast_scnn": "cityseg.models.fast_scnn:build_fast_scnn",
}


def model_names() -> list[str]:
    """Names accepted by :func:`build_model` (``model.name`` in a training config)."""
    return list(_BUILDERS)


def builder(name: str) -> Callable:
    """The builder function registered as ``name``."""
    import importlib

    if name not in _BUILDERS:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(_BUILDERS)} "
                         "(model.name in the config)")
    module_name, function_name = _BUILDERS[name].split(":")
    return getattr(importlib.import_module(module_name), function_name)


def model_params(name: str) -> dict:
    """The builder parameters of model ``name`` and their defaults."""
    signature = inspect.signature(builder(name))
    return {p.name: p.default for p in signature.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "name"}


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int, **params):
    """Build model ``name`` for ``input_shape`` = (H, W, 3) and ``num_classes`` output classes.

    ``params`` are the builder's keyword arguments (``model.params`` in the config); unknown ones
    are refused with the list of accepted ones.
    """
    build = builder(name)
    accepted = model_params(name)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ModelError(f"model {name!r} has no parameter(s) {', '.join(unknown)}; accepted: "
                         f"{', '.join(f'{k} (default {v!r})' for k, v in accepted.items())}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ModelError(f"model {name!r}: num_classes must be an integer >= 2, got {num_classes!r}")
    return build(tuple(input_shape), num_classes, name=name, **params)


__all__ = ["DEFAULT_MODEL", "FusedBatchNormalization", "ModelError", "ScheduledDropout", "build_model", "builder",
           "dropout_layers", "model_names", "model_params", "set_dropout_rate"]

"""U-Net with a MobileNetV2 encoder (``keras.applications.MobileNetV2``) and a separable decoder.

``weights``: None (random), ``"imagenet"`` or the path of a local Keras weights file for the no-top
MobileNetV2 of the same ``alpha``. ``imagenet`` works as in Keras: the no-top file is downloaded
once with ``keras.utils.get_file`` into Keras' cache (``$KERAS_HOME/models``, default
``~/.keras/models``) and read from there afterwards; without network, put the file there yourself
or pass its path. Those weights were trained on inputs scaled to [-1, 1]; our cards normalise to
[0, 1] by default, which fine-tuning absorbs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras

from cityseg.models.common import (
    ModelError,
    check_input_shape,
    check_positive,
    check_rate,
    light_decoder_step,
    separable_bn_relu,
    softmax_head,
)

SKIP_LAYERS = ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
               "block_13_expand_relu")
"""MobileNetV2 activations at 1/2, 1/4, 1/8 and 1/16 of the input, the decoder's skips."""
ENCODER_OUTPUT = "block_16_project_BN"
"""The 1/32 feature map (320 x alpha channels) the decoder starts from."""


def _encoder(inputs, alpha: float, weights: str | Path | None, name: str) -> keras.Model:
    base = keras.applications.MobileNetV2(input_tensor=inputs, include_top=False, weights=None,
                                          alpha=alpha)
    if weights is not None:
        _load_encoder_weights(base, weights, name, alpha)
    return base


IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
IMAGENET_SIZES = (96, 128, 160, 192, 224)
"""Keras publishes no-top ImageNet weights for these widths, trained at these square sizes."""


def imagenet_weights_file(alpha: float, height: int, width: int) -> str:
    """The file name Keras gives the no-top ImageNet MobileNetV2 of ``alpha`` for this input.

    As ``keras.applications.MobileNetV2``: the weights trained at the input size when it is one
    of :data:`IMAGENET_SIZES` (square), else the 224 ones (convolutions work at any size).
    """
    rows = height if height == width and height in IMAGENET_SIZES else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"


def fetch_imagenet_weights(alpha: float, height: int, width: int, name: str) -> Path:
    """Keras' cached copy of the no-top ImageNet weights, downloaded on first use."""
    from keras.src.applications.mobilenet_v2 import BASE_WEIGHT_PATH

    if alpha not in IMAGENET_ALPHAS:
        raise ModelError(f"{name}: ImageNet weights exist only for alpha in "
                         f"{', '.join(map(str, IMAGENET_ALPHAS))}, not {alpha}")
    fname = imagenet_weights_file(alpha, height, width)
    try:
        return Path(keras.utils.get_file(fname, BASE_WEIGHT_PATH + fname, cache_subdir="models"))
    except Exception as exc:  # urllib/http errors, wrapped by Keras in plain Exceptions
        from keras.src.backend.config import keras_home  # where get_file caches

        cache = Path(keras_home()) / "models"
        raise ModelError(f"{name}: weights 'imagenet' needs {fname}, which Keras could not "
                         f"download from {BASE_WEIGHT_PATH} ({exc}). Without network, copy that "
                         f"file to {cache / fname} (Keras' cache; $KERAS_HOME moves it), or set "
                         "model.params.weights to the path of a local no-top MobileNetV2 weights "
                         "file") from None


def _load_encoder_weights(base: keras.Model, weights: str | Path, name: str, alpha: float) -> None:
    if str(weights).lower() == "imagenet":
        _, height, width, _ = base.inputs[0].shape
        weights = fetch_imagenet_weights(alpha, height, width, name)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelError(f"{name}: weights file {path} does not exist; pass the path of a local "
                         "no-top MobileNetV2 Keras weights file, or leave weights unset")
    try:
        with warnings.catch_warnings():  # Keras notes bookkeeping containers it skips; not weights
            warnings.filterwarnings("ignore", message="Skipping nested container")
            base.load_weights(path)
    except Exception as exc:  # keras raises many types for mismatched files
        raise ModelError(f"{name}: cannot load {path} into a MobileNetV2 (alpha={alpha}): "
                         f"{exc}; the file must hold no-top MobileNetV2 weights of the same alpha") from None


def build_mobilenetv2_unet(input_shape: tuple[int, int, int], num_classes: int, *,
                           alpha: float = 1.0, weights: str | None = None,
                           decoder_filters: tuple[int, ...] = (96, 64, 48, 32, 16),
                           dropout: float = 0.1, name: str = "mobilenetv2_unet") -> keras.Model:
    """MobileNetV2 encoder (width ``alpha``) + 5 decoder levels (1/16 .. 1/1) of separable convs.

    Input H and W must be divisible by 32 (and at least 32). ``weights``: optional local file.
    """
    check_positive(name, alpha=alpha, num_classes=num_classes)
    check_rate(name, dropout)
    filters = tuple(decoder_filters)
    if len(filters) != len(SKIP_LAYERS) + 1 or any(not isinstance(f, int) or f <= 0 for f in filters):
        raise ModelError(f"{name}: decoder_filters needs {len(SKIP_LAYERS) + 1} positive integers "
                         f"(1/16, 1/8, 1/4, 1/2, 1/1), got {decoder_filters!r}")
    height, width, channels = check_input_shape(name, input_shape, 32)
    inputs = keras.Input((height, width, channels), name="image")
    base = _encoder(inputs, alpha, weights, name)
    skips = [base.get_layer(layer).output for layer in reversed(SKIP_LAYERS)]
    x = base.get_layer(ENCODER_OUTPUT).output
    for level, (skip, f) in enumerate(zip(skips, filters)):
        x = light_decoder_step(x, skip, f, dropout=dropout, name=f"dec{len(SKIP_LAYERS) - level}",
                               fuse=("fuse",))
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name="dec0_resize")(x)
    x = separable_bn_relu(x, filters[-1], name="dec0_fuse")
    return keras.Model(inputs, softmax_head(x, num_classes), name=name)

"""The original study's U-Net, with its width, depth, dropout and up-sampling as parameters.

Defaults reproduce the study exactly: 4 encoder levels + bottleneck with 64, 128, 256, 512, 1024
filters; every level two 3x3 convs (same padding, ReLU, he_normal), each followed by BatchNorm;
2x2 max-pool then dropout 0.3 (none in the bottleneck); decoder levels 512..64: 3x3 transposed
conv stride 2 (linear), dropout 0.3, concatenation of the skip, two 3x3 conv + BN; 1x1 softmax head.
"""

from __future__ import annotations

import keras

from cityseg.models.common import check_choice, check_input_shape, check_positive, check_rate, softmax_head
from cityseg.models.layers import FusedBatchNormalization, ScheduledDropout

UPSAMPLING = ("transpose", "resize")


def _double_conv(x, filters: int, batch_norm: bool, name: str):
    """Two 3x3 convs (same, ReLU, he_normal), each followed by BatchNorm as in the study."""
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                kernel_initializer="he_normal", name=f"{name}_conv{i}")(x)
        if batch_norm:
            x = FusedBatchNormalization(name=f"{name}_bn{i}")(x)
    return x


def _upsample(x, filters: int, kind: str, name: str):
    """x2 up-sampling: 3x3 transposed conv stride 2, or bilinear resize followed by a 3x3 conv."""
    if kind == "transpose":
        return keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same",
                                            kernel_initializer="he_normal", name=f"{name}_upconv")(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)
    return keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_normal",
                               name=f"{name}_upconv")(x)


def build_unet(input_shape: tuple[int, int, int], num_classes: int, *, base_filters: int = 64,
               depth: int = 4, dropout: float = 0.3, upsampling: str = "transpose",
               batch_norm: bool = True, name: str = "unet") -> keras.Model:
    """The study's U-Net (see the module docstring); input H and W must be divisible by 2**depth.

    ``dropout=0`` removes the dropout layers (the study's "no dropout" versions 4 and 6).
    """
    check_positive(name, base_filters=base_filters, depth=depth, num_classes=num_classes)
    check_rate(name, dropout)
    check_choice(name, "upsampling", upsampling, UPSAMPLING)
    height, width, channels = check_input_shape(name, input_shape, 2 ** depth)
    inputs = keras.Input((height, width, channels), name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = _double_conv(x, base_filters * 2 ** level, batch_norm, f"enc{level + 1}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"enc{level + 1}_pool")(x)
        if dropout > 0:
            x = ScheduledDropout(dropout, name=f"enc{level + 1}_dropout")(x)
    x = _double_conv(x, base_filters * 2 ** depth, batch_norm, "bottleneck")
    for level in reversed(range(depth)):
        tag = f"dec{level + 1}"
        x = _upsample(x, base_filters * 2 ** level, upsampling, tag)
        if dropout > 0:
            x = ScheduledDropout(dropout, name=f"{tag}_dropout")(x)
        x = keras.layers.Concatenate(name=f"{tag}_concat")([x, skips[level]])
        x = _double_conv(x, base_filters * 2 ** level, batch_norm, tag)
    return keras.Model(inputs, softmax_head(x, num_classes), name=name)

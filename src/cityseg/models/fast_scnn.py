"""Fast-SCNN (Poudel et al., 2019, arXiv:1902.04502): the non-U-Net fast baseline.

Learning-to-downsample (conv + 2 depthwise-separable convs, 1/8) -> global feature extractor
(MobileNetV2 inverted-residual bottlenecks to 1/32 + pyramid pooling) -> feature fusion (the
1/32 features up-sampled x4, dilated depthwise conv, added to the 1/8 branch) -> classifier
(2 separable convs, 1x1 conv) -> bilinear x8 up-sampling. ~1.1M parameters at 19 classes.
Pyramid pooling is true adaptive average pooling (bins 1, 2, 3, 6, capped at the feature size)
and bilinear resizing back, both as :class:`~cityseg.models.layers.FixedResample` (exact, ONNX-safe).
"""

from __future__ import annotations

import keras

from cityseg.models.common import check_input_shape, check_positive, check_rate, conv_bn_relu, separable_bn_relu
from cityseg.models.layers import FixedResample, FusedBatchNormalization, ScheduledDropout

PYRAMID_BINS = (1, 2, 3, 6)
GFE_STAGES = ((64, 2), (96, 2), (128, 1))
"""Global feature extractor: (output channels, stride of the first block) per stage of 3 blocks."""


def _bottleneck(x, filters: int, strides: int, expansion: int, name: str):
    """MobileNetV2 inverted residual: 1x1 expand -> 3x3 depthwise -> 1x1 linear projection."""
    cin = x.shape[-1]
    y = conv_bn_relu(x, cin * expansion, kernel_size=1, name=f"{name}_expand")
    y = keras.layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False,
                                     name=f"{name}_dw")(y)
    y = FusedBatchNormalization(name=f"{name}_dw_bn")(y)
    y = keras.layers.ReLU(name=f"{name}_dw_relu")(y)
    y = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(y)
    y = FusedBatchNormalization(name=f"{name}_project_bn")(y)
    if strides == 1 and cin == filters:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


def _pyramid_pooling(x, filters: int, name: str = "ppm"):
    """PSPNet pyramid pooling: pooled branches (1/4 of the channels) resized back and concatenated."""
    height, width, channels = x.shape[1:]
    branches = [x]
    for bins in PYRAMID_BINS:
        tag = f"{name}_bin{bins}"
        cells = (min(bins, height), min(bins, width))
        y = FixedResample(cells, "adaptive_average", name=f"{tag}_pool")(x)
        y = conv_bn_relu(y, channels // 4, kernel_size=1, name=tag)
        y = FixedResample((height, width), "bilinear", name=f"{tag}_resize")(y)
        branches.append(y)
    y = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    return conv_bn_relu(y, filters, kernel_size=1, name=f"{name}_out")


def _feature_fusion(high, low, filters: int, name: str = "ffm"):
    """Add the x4-up-sampled low-resolution features to the 1/8 branch."""
    low = keras.layers.UpSampling2D(4, interpolation="bilinear", name=f"{name}_resize")(low)
    low = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=4, use_bias=False,
                                       name=f"{name}_low_dw")(low)
    low = FusedBatchNormalization(name=f"{name}_low_dw_bn")(low)
    low = keras.layers.ReLU(name=f"{name}_low_dw_relu")(low)
    low = keras.layers.Conv2D(filters, 1, name=f"{name}_low_conv")(low)
    low = FusedBatchNormalization(name=f"{name}_low_bn")(low)
    high = keras.layers.Conv2D(filters, 1, name=f"{name}_high_conv")(high)
    high = FusedBatchNormalization(name=f"{name}_high_bn")(high)
    fused = keras.layers.Add(name=f"{name}_add")([high, low])
    return keras.layers.ReLU(name=f"{name}_relu")(fused)


def build_fast_scnn(input_shape: tuple[int, int, int], num_classes: int, *, expansion: int = 6,
                    dropout: float = 0.1, name: str = "fast_scnn") -> keras.Model:
    """Fast-SCNN as in the paper; input H and W must be divisible by 32."""
    check_positive(name, expansion=expansion, num_classes=num_classes)
    check_rate(name, dropout)
    height, width, channels = check_input_shape(name, input_shape, 32)
    inputs = keras.Input((height, width, channels), name="image")
    # learning to downsample
    x = conv_bn_relu(inputs, 32, strides=2, name="lds1")
    x = separable_bn_relu(x, 48, strides=2, name="lds2")
    high = separable_bn_relu(x, 64, strides=2, name="lds3")
    # global feature extractor
    x = high
    for stage, (filters, strides) in enumerate(GFE_STAGES, start=1):
        for block in range(3):
            x = _bottleneck(x, filters, strides if block == 0 else 1, expansion,
                            name=f"gfe{stage}_{block + 1}")
    low = _pyramid_pooling(x, 128)
    # feature fusion and classifier
    x = _feature_fusion(high, low, 128)
    x = separable_bn_relu(x, 128, name="cls1")
    x = separable_bn_relu(x, 128, name="cls2")
    if dropout > 0:
        x = ScheduledDropout(dropout, name="cls_dropout")(x)
    logits = keras.layers.Conv2D(num_classes, 1, name="head_conv")(x)
    logits = keras.layers.UpSampling2D(8, interpolation="bilinear", name="head_resize")(logits)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, outputs, name=name)

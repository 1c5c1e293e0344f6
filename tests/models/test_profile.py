"""Parameter, MAC/FLOP and size counts: a hand-computed tiny model, and the default model's budget."""

import keras
import pytest

from cityseg.models import DEFAULT_MODEL, ModelError, build_model
from cityseg.models.profile import count_params, gflops, gmacs, macs, saved_size_bytes


def tiny_model(height=8, width=8):
    inputs = keras.Input((height, width, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)  # not counted
    x = keras.layers.SeparableConv2D(6, 3, padding="same")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", groups=2)(x)
    x = keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)  # not counted
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def test_macs_of_a_tiny_model_by_hand():
    pixels = 8 * 8
    expected = (pixels * 3 * 3 * 3 * 4               # conv 3->4
                + pixels * (3 * 3 * 4 + 4 * 6)       # separable 4->6: depthwise + pointwise
                + pixels * 3 * 3 * 6 * 2             # depthwise x2 on 6 channels
                + (4 * 4) * 3 * 3 * (12 // 2) * 4    # grouped strided conv 12->4, 2 groups, 4x4 out
                + (4 * 4) * 3 * 3 * 4 * 2            # transposed conv: each of 4x4 inputs scatters
                + 2 * 10)                            # dense 2->10
    model = tiny_model()
    assert macs(model, 8, 8) == expected
    assert gflops(model, 8, 8) == pytest.approx(2 * expected / 1e9)
    assert gmacs(model, 8, 8) == pytest.approx(expected / 1e9)


def test_other_sizes_are_counted_on_a_reshaped_clone():
    model = tiny_model(8, 8)
    assert macs(model, 16, 16) == macs(tiny_model(16, 16), 16, 16)
    fixed = build_model("fast_scnn", (64, 128, 3), 19)  # pyramid pooling is size-specific
    with pytest.raises(ModelError, match="build it at that size"):
        macs(fixed, 128, 256)


def test_default_model_meets_its_budget_at_512x1024():
    model = build_model(DEFAULT_MODEL, (512, 1024, 3), 19)
    assert count_params(model) <= 2_000_000
    assert gflops(model, 512, 1024) <= 10.0


def test_saved_size_is_about_four_bytes_per_parameter():
    model = build_model("unet_lite", (64, 64, 3), 19)
    size = saved_size_bytes(model)
    assert 4 * count_params(model) < size < 4 * count_params(model) + 400_000

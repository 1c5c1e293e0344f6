"""ScheduledDropout (rate changes without retracing) and FixedResample (exact pooling/resizing)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cityseg.models import ScheduledDropout, build_model, dropout_layers, set_dropout_rate
from cityseg.models.layers import FixedResample, adaptive_average_matrix, bilinear_matrix


def test_dropout_is_identity_at_inference_and_scales_survivors_in_training():
    layer = ScheduledDropout(0.5, seed=1)
    x = np.ones((4, 64, 64, 8), np.float32)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    y = np.asarray(layer(x, training=True))
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert abs((y == 0).mean() - 0.5) < 0.02
    layer.set_rate(0.0)
    np.testing.assert_array_equal(np.asarray(layer(x, training=True)), x)


def test_set_rate_takes_effect_in_a_traced_step_without_retracing():
    layer = ScheduledDropout(0.0, seed=3)
    traces = []

    @tf.function
    def step(x):
        traces.append(1)  # runs only while tracing
        return layer(x, training=True)

    x = tf.ones((1, 128, 128, 4))
    assert float(tf.reduce_mean(tf.cast(step(x) == 0, tf.float32))) == 0.0
    for rate in (0.2, 0.6):
        layer.set_rate(rate)
        zero_fraction = float(tf.reduce_mean(tf.cast(step(x) == 0, tf.float32)))
        assert abs(zero_fraction - rate) < 0.02
    assert len(traces) == 1


def test_schedule_changes_rate_between_epochs_of_model_fit():
    inputs = keras.Input((256,))
    dropped = ScheduledDropout(0.0, seed=0, name="drop")(inputs)
    summed = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones", trainable=False)(dropped)
    model = keras.Model(inputs, summed)
    model.compile(optimizer="sgd", loss="mse")

    class Schedule(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            set_dropout_rate(self.model, {0: 0.0, 1: 0.5}[epoch])

    x, y = np.ones((32, 256), np.float32), np.zeros((32, 1), np.float32)
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[Schedule()])
    assert history.history["loss"][0] == pytest.approx(256.0 ** 2)  # nothing dropped: sum = 256
    assert history.history["loss"][1] != pytest.approx(256.0 ** 2, rel=1e-3)


def test_rate_is_validated_and_helpers_find_every_dropout():
    with pytest.raises(ValueError, match=r"within \[0, 1\)"):
        ScheduledDropout(1.0)
    model = build_model("unet_lite", (64, 64, 3), 19)
    layers = dropout_layers(model)
    assert len(layers) == 10  # after each of 5 pools and each of 5 decoder up-samplings
    assert set_dropout_rate(model, 0.4) == 10
    assert all(l.rate == pytest.approx(0.4) for l in layers)
    with pytest.raises(ValueError):
        layers[0].set_rate(-0.1)


def test_fixed_resample_matches_keras_resizing_and_adaptive_pooling():
    x = np.random.default_rng(0).uniform(size=(2, 5, 10, 3)).astype(np.float32)
    for size in [(16, 32), (7, 3), (5, 10)]:
        np.testing.assert_allclose(np.asarray(FixedResample(size, "bilinear")(x)),
                                   np.asarray(keras.layers.Resizing(*size)(x)), atol=1e-6)
    x = np.random.default_rng(1).uniform(size=(2, 16, 32, 3)).astype(np.float32)
    for bins in [(1, 1), (2, 2), (3, 3), (6, 6)]:
        np.testing.assert_allclose(np.asarray(FixedResample(bins, "adaptive_average")(x)),
                                   np.asarray(keras.layers.AdaptiveAveragePooling2D(bins)(x)), atol=1e-6)


def test_resample_matrices_by_hand():
    # 5 -> 2 adaptive bins: [0, 3) and [2, 5)  (PyTorch's floor/ceil edges)
    np.testing.assert_allclose(adaptive_average_matrix(5, 2),
                               [[1 / 3, 1 / 3, 1 / 3, 0, 0], [0, 0, 1 / 3, 1 / 3, 1 / 3]])
    # 2 -> 4 bilinear, half-pixel centres: sources -0.25 (clamped), 0.25, 0.75, 1.25 (clamped)
    np.testing.assert_allclose(bilinear_matrix(2, 4), [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])

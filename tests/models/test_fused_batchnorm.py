"""FusedBatchNormalization: Keras' BatchNormalization maths, TensorFlow's fused training kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cityseg.models import FusedBatchNormalization, build_model
from cityseg.training.model_setup import batchnorm_layers


def _pair(channels: int = 6):
    """(Keras' layer, ours) built alike, with the same non-trivial gamma, beta and moving stats."""
    rng = np.random.default_rng(0)
    weights = [rng.normal(1.0, 0.3, channels), rng.normal(0.0, 0.5, channels),
               rng.normal(0.0, 0.2, channels), rng.uniform(0.5, 2.0, channels)]
    layers = (keras.layers.BatchNormalization(momentum=0.9), FusedBatchNormalization(momentum=0.9))
    for layer in layers:
        layer.build((None, 8, 10, channels))
        layer.set_weights([w.astype(np.float32) for w in weights])
    return layers


def _inputs(shape=(4, 8, 10, 6)):
    rng = np.random.default_rng(1)
    return tf.constant(rng.normal(3.0, 2.0, shape).astype(np.float32))


def _train_step(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * tf.sin(tf.reshape(tf.range(tf.size(y), dtype=tf.float32), y.shape)))
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return y, grads


def test_training_step_matches_keras_outputs_gradients_and_moving_statistics():
    reference, fused = _pair()
    x = _inputs()
    y_ref, g_ref = _train_step(reference, x)
    y_fused, g_fused = _train_step(fused, x)
    np.testing.assert_allclose(y_fused, y_ref, atol=2e-5)
    for ours, theirs in zip(g_fused, g_ref):
        np.testing.assert_allclose(ours, theirs, atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(fused.moving_mean, reference.moving_mean, atol=1e-6)
    # the biased batch variance, as Keras keeps it (the fused kernel returns the unbiased one)
    np.testing.assert_allclose(fused.moving_variance, reference.moving_variance, rtol=1e-5)


def test_inference_is_keras_own_path_bit_for_bit():
    reference, fused = _pair()
    x = _inputs()
    np.testing.assert_array_equal(fused(x, training=False), reference(x, training=False))


def test_a_traced_training_step_runs_the_fused_kernel_and_inference_does_not():
    layer = FusedBatchNormalization()
    x = _inputs()
    layer.build(x.shape)

    def ops_of(training: bool) -> set[str]:
        graph = tf.function(lambda t: layer(t, training=training)).get_concrete_function(x).graph
        return {op.type for op in graph.get_operations()}

    assert "FusedBatchNormV3" in ops_of(True)
    assert "FusedBatchNormV3" not in ops_of(False)
    layer.fused = False  # Keras' own path, for a baseline
    assert "FusedBatchNormV3" not in ops_of(True)


@pytest.mark.parametrize("flag", ["synchronized", "renorm"])
def test_synchronized_and_renorm_take_keras_path(flag):
    layer = FusedBatchNormalization(**{flag: True})
    x = _inputs()
    layer.build(x.shape)
    graph = tf.function(lambda t: layer(t, training=True)).get_concrete_function(x).graph
    assert "FusedBatchNormV3" not in {op.type for op in graph.get_operations()}


def test_bfloat16_policy_keeps_float32_statistics_and_bf16_output():
    layer = FusedBatchNormalization(dtype="mixed_bfloat16")
    y = layer(tf.cast(_inputs(), tf.bfloat16), training=True)
    assert y.dtype == tf.bfloat16
    assert layer.moving_mean.dtype == "float32"
    np.testing.assert_allclose(np.mean(np.asarray(tf.cast(y, tf.float32)), axis=(0, 1, 2)),
                               np.asarray(layer.beta), atol=0.05)


def test_models_use_it_and_it_survives_a_save_and_load(tmp_path):
    model = build_model("unet_lite", (64, 64, 3), 5, base_filters=8, depth=3)
    layers = batchnorm_layers(model)
    assert layers and all(isinstance(layer, FusedBatchNormalization) for layer in layers)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    x = np.random.default_rng(2).normal(size=(1, 64, 64, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))
    assert all(layer.fused for layer in batchnorm_layers(loaded))

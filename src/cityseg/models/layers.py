"""Custom layers of the cityseg models (registered so ``keras.saving.load_model`` finds them)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="cityseg")
class ScheduledDropout(keras.layers.Layer):
    """Inverted dropout whose rate is a non-trainable variable.

    ``layer.set_rate(r)`` assigns the variable, so a dropout schedule can change the rate between
    epochs of a compiled (traced) training step without retracing it; a plain
    ``keras.layers.Dropout`` bakes its rate into the graph as a constant. Inactive at inference.
    The current rate is saved with the weights, so a checkpoint resumes with the rate it had.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self._check_rate(rate)
        self.initial_rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self.rate_variable = self.add_weight(
            name="rate", shape=(), initializer=keras.initializers.Constant(self.initial_rate),
            trainable=False, dtype="float32")

    @staticmethod
    def _check_rate(rate: float) -> None:
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"dropout rate must be within [0, 1), got {rate}")

    @property
    def rate(self) -> float:
        """The current rate (a Python float)."""
        return float(ops.convert_to_numpy(self.rate_variable))

    def set_rate(self, rate: float) -> None:
        """Change the rate used by the next training steps (no retracing)."""
        self._check_rate(rate)
        self.rate_variable.assign(float(rate))

    def call(self, inputs, training=False):
        if not training:
            return inputs
        rate = ops.cast(self.rate_variable, inputs.dtype)
        keep = ops.greater_equal(
            keras.random.uniform(ops.shape(inputs), seed=self.seed_generator, dtype="float32"),
            ops.cast(self.rate_variable, "float32"))
        return ops.where(keep, inputs / (1.0 - rate), ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"rate": self.initial_rate, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="cityseg")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training step is TensorFlow's fused kernel.

    Keras 3 builds training-mode batch norm from about ten element-wise ops (``moments``, then
    ``tf.nn.batch_normalization``) and as many in the gradient: 37 % of the CamVid recipe's step
    on 2 CPU cores (docs/PERFORMANCE.md). One ``FusedBatchNormV3`` (oneDNN on x86) and its fused
    gradient compute the same normalisation; the moving statistics get the biased batch variance,
    as Keras' own path gives them. Inference (hence export), masks, renorm, synchronized
    (multi-replica) statistics and other backends take Keras' path unchanged. ``fused = False``
    on an instance (not saved) restores Keras' path everywhere, e.g. for a baseline measurement.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fused = True

    def _fused_applies(self, inputs, training, mask) -> bool:
        return (bool(training) and self.trainable and self.fused and mask is None
                and not self.renorm and not self.synchronized and len(inputs.shape) == 4
                and self.axis in (-1, 3) and keras.backend.backend() == "tensorflow")

    def call(self, inputs, training=None, mask=None):
        if not self._fused_applies(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, tf.float32)
        channels = x.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels])
        y, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
        count = tf.cast(tf.size(x) // channels, tf.float32)
        variance = unbiased_variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)


def adaptive_average_matrix(size_in: int, size_out: int) -> np.ndarray:
    """float32[out, in]: adaptive average pooling along one axis (PyTorch's bin edges)."""
    matrix = np.zeros((size_out, size_in), dtype=np.float32)
    for i in range(size_out):
        start, end = (i * size_in) // size_out, -(-((i + 1) * size_in) // size_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """float32[out, in]: bilinear resampling along one axis, half-pixel centres, no antialiasing
    (what ``tf.image.resize(..., "bilinear")`` does when up-sampling)."""
    matrix = np.zeros((size_out, size_in), dtype=np.float32)
    for i in range(size_out):
        source = min(max((i + 0.5) * size_in / size_out - 0.5, 0.0), size_in - 1.0)
        low = int(np.floor(source))
        high = min(low + 1, size_in - 1)
        frac = source - low
        matrix[i, low] += 1.0 - frac
        matrix[i, high] += frac
    return matrix


_RESAMPLE_MATRICES = {"adaptive_average": adaptive_average_matrix, "bilinear": bilinear_matrix}


@keras.saving.register_keras_serializable(package="cityseg")
class FixedResample(keras.layers.Layer):
    """Resample NHWC features to a fixed ``size`` with a separable linear map (two einsums).

    ``mode='adaptive_average'`` is adaptive average pooling, ``'bilinear'`` a bilinear resize.
    The maps are constants derived from the static input size, so the layer exports to ONNX as
    plain MatMuls with exact shapes; ``AdaptiveAveragePooling2D`` fails to trace for some sizes
    and ``Resizing`` exports with a wrong static output shape that breaks ONNX shape inference.
    """

    def __init__(self, size: tuple[int, int], mode: str = "bilinear", **kwargs):
        super().__init__(**kwargs)
        if mode not in _RESAMPLE_MATRICES:
            raise ValueError(f"mode must be one of {', '.join(_RESAMPLE_MATRICES)}, got {mode!r}")
        self.size = (int(size[0]), int(size[1]))
        self.mode = mode

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        if height is None or width is None:
            raise ValueError(f"{self.name}: FixedResample needs a static input height and width")
        make = _RESAMPLE_MATRICES[self.mode]
        self._rows = make(int(height), self.size[0])
        self._cols = make(int(width), self.size[1])

    def call(self, inputs):
        rows = ops.cast(ops.convert_to_tensor(self._rows), inputs.dtype)
        cols = ops.cast(ops.convert_to_tensor(self._cols), inputs.dtype)
        x = ops.einsum("ih,bhwc->biwc", rows, inputs)
        return ops.einsum("jw,biwc->bijc", cols, x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size[0], self.size[1], input_shape[3])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"size": self.size, "mode": self.mode})
        return config


def dropout_layers(model: keras.Model) -> list[ScheduledDropout]:
    """Every ScheduledDropout of ``model`` (nested models included), in layer order."""
    found = []
    for layer in model.layers:
        if isinstance(layer, ScheduledDropout):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(dropout_layers(layer))
    return found


def set_dropout_rate(model: keras.Model, rate: float) -> int:
    """Set the rate of every ScheduledDropout in ``model``; returns how many layers were changed."""
    layers = dropout_layers(model)
    for layer in layers:
        layer.set_rate(rate)
    return len(layers)

"""Small TFLite segmentation models built with TensorFlow's converter (float, and int8 with a
representative dataset), for the TFLite import and `cityseg pull` tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CORAL_FILE = "shared/models/coral_deeplab_edgetpu_cityscapes/deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite"
_REPO = Path(__file__).resolve().parents[1]
CORAL = next((p for p in (_REPO.parent / CORAL_FILE, _REPO.parent.parent / CORAL_FILE) if p.is_file()),
             _REPO.parent / CORAL_FILE)
"""The shared Coral model beside the repository (or beside the folder of git worktrees holding it)."""

SIZE = (32, 64)
"""(height, width) of the test models' input."""
CLASSES = 19


def _keras_model(uint8_argmax: bool):
    import tensorflow as tf

    rng = np.random.default_rng(3)
    inputs = tf.keras.Input((*SIZE, 3), batch_size=1, dtype="float32")
    x = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = tf.keras.layers.Conv2D(CLASSES, 1)(x)
    x = tf.keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
    model = tf.keras.Model(inputs, x)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
    if uint8_argmax:  # the Coral model's heads: class ids out
        ids = tf.keras.layers.Lambda(lambda s: tf.argmax(s, axis=-1, output_type=tf.int32))(model.output)
        model = tf.keras.Model(inputs, ids)
    return model


def build_tflite(path: Path, int8: bool = False) -> Path:
    """A float TFLite (float32 in, NHWC logits out) or an int8 one (uint8 in, int32 class ids out)."""
    import tensorflow as tf

    model = _keras_model(uint8_argmax=int8)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(4)

        def representative():
            for _ in range(8):
                yield [rng.uniform(0, 255, (1, *SIZE, 3)).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
    path.write_bytes(converter.convert())
    return path

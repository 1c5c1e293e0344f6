"""TensorFlow / Keras backend: runs the bundle's ``model.keras``."""

from __future__ import annotations

import numpy as np

from cityseg.bundle import Bundle
from cityseg.errors import BundleError
from cityseg.inference.backends.base import Backend


class TensorFlowBackend(Backend):
    name = "tensorflow"
    format = "keras"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            # lazy: cityseg.models imports Keras (TensorFlow), needed only where a Keras model is built
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        except ImportError:
            return "tensorflow is not installed (pip install 'cityseg[train]')"
        return None

    def __init__(self, bundle: Bundle, artifact_key: str):
        super().__init__(bundle, artifact_key)
        import keras

        import cityseg.models  # noqa: F401  (registers the project's custom layers)

        try:
            self.model = keras.saving.load_model(self.path, compile=False)
        except Exception as exc:  # keras raises many types for unreadable files
            raise BundleError(f"{self.path}: Keras cannot load this model ({exc}); the file is "
                              "corrupt or from an incompatible Keras - restore it from the training run") from None
        self._call = None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        if self._call is None:
            self._call = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        return np.asarray(self._call(tf.constant(batch)))

"""Every model learns: a few Adam steps on painted palette scenes lift pixel accuracy far above chance."""

import keras
import numpy as np
import pytest

from cityseg.models import build_model
from cityseg.training.config import LossConfig
from cityseg.training.losses import make_loss
from cityseg.training.metrics import keras_metrics

import support

HEIGHT, WIDTH, CLASSES = 64, 128, 19


def painted_batch(count, seed):
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(count):
        image, classes = support.painted_scene(HEIGHT, WIDTH, seed=seed * 1000 + i)
        noisy = image.astype(np.float32) + rng.normal(0, 8, image.shape)
        images.append(np.clip(noisy, 0, 255) / 255.0)
        labels.append(classes)
    return np.stack(images).astype(np.float32), np.stack(labels).astype(np.int32)


@pytest.mark.slow  # ~30 s per model on a shared 2-core CPU
@pytest.mark.parametrize("name,params", [("unet_lite", {}), ("fast_scnn", {}), ("mobilenetv2_unet", {}),
                                         ("unet", {"base_filters": 8, "dropout": 0.0})])
def test_model_learns_painted_scenes(name, params):
    keras.utils.set_random_seed(0)
    model = build_model(name, (HEIGHT, WIDTH, 3), CLASSES, **params)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=make_loss(LossConfig(name="ce"), CLASSES, 255),
                  metrics=keras_metrics(CLASSES, 255))
    x, y = painted_batch(16, seed=1)
    model.fit(x, y, batch_size=8, epochs=12, verbose=0)
    # BatchNorm moving statistics need hundreds of steps; score with batch statistics
    predicted = np.asarray(model(x, training=True)).argmax(-1)
    accuracy = (predicted == y).mean()
    assert accuracy > 0.5, f"{name}: pixel accuracy {accuracy:.2f} after training (chance ~0.05)"

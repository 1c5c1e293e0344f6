"""Training-time augmentation of one (image, label) pair, inside the tf.data pipeline.

Every transform has its own probability (``AugmentConfig``) and draws its randomness from a
per-sample stateless seed, so a run is reproducible. Images are float32 in pixel units
(0..255) before normalisation; labels are int32 class indices. Geometric transforms move the
image and its label together. Only ``make_dataset(..., training=True)`` calls this.
"""

from __future__ import annotations

from cityseg.config import ConfigError
from cityseg.data.config import AugmentConfig


def check_augment(aug: AugmentConfig) -> None:
    """Refuse settings the TensorFlow ops cannot take, naming the key and the fix."""
    if not 0.0 <= aug.hue <= 0.5:
        raise ConfigError(f"augment.hue must be within [0, 0.5] (a fraction of the hue circle), got {aug.hue}")
    if aug.brightness < 0:
        raise ConfigError(f"augment.brightness must be >= 0, got {aug.brightness}")
    for name in ("contrast", "saturation"):
        bounds = getattr(aug, name)
        if bounds is not None and not 0 <= bounds[0] < bounds[1]:
            raise ConfigError(f"augment.{name} must be [lower, upper] with 0 <= lower < upper, got {list(bounds)}")
    low, high = aug.scale_range
    if not 0 < low <= high:
        raise ConfigError(f"augment.scale_range must be [low, high] with 0 < low <= high, got {list(aug.scale_range)}")


def has_photometric(aug: AugmentConfig) -> bool:
    return aug.photometric_prob > 0 and bool(aug.hue or aug.brightness or aug.contrast or aug.saturation)


def augment(image, label, seed, aug: AugmentConfig, pad_label: int):
    """Augment one sample: image float32 HxWx3 (0..255), label int32 HxW, seed int64[2]."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, num=8)

    def chance(i: int, prob: float):
        return tf.random.stateless_uniform([], seeds[i]) < prob

    if has_photometric(aug):
        image = tf.cond(chance(0, aug.photometric_prob),
                        lambda: photometric(image, aug, seeds[1]), lambda: image)
    if aug.hflip_prob > 0:
        image, label = tf.cond(chance(2, aug.hflip_prob),
                               lambda: (tf.reverse(image, [1]), tf.reverse(label, [1])), lambda: (image, label))
    if aug.vflip_prob > 0:
        image, label = tf.cond(chance(3, aug.vflip_prob),
                               lambda: (tf.reverse(image, [0]), tf.reverse(label, [0])), lambda: (image, label))
    if aug.scale_crop_prob > 0:
        image, label = tf.cond(chance(4, aug.scale_crop_prob),
                               lambda: scale_crop(image, label, seeds[5], aug.scale_range, pad_label),
                               lambda: (image, label))
    if aug.crop is not None:
        image, label = random_crop(image, label, seeds[6], aug.crop)
    return image, label


def random_crop(image, label, seed, size: tuple[int, int]):
    """The same random ``size`` = (height, width) window of image and label."""
    import tensorflow as tf

    crop_h, crop_w = size
    s = tf.random.experimental.stateless_split(seed, num=2)
    y = _randint(s[0], image.shape[0] - crop_h)
    x = _randint(s[1], image.shape[1] - crop_w)
    image = tf.ensure_shape(image[y:y + crop_h, x:x + crop_w], (crop_h, crop_w, 3))
    label = tf.ensure_shape(label[y:y + crop_h, x:x + crop_w], (crop_h, crop_w))
    return image, label


def photometric(image, aug: AugmentConfig, seed):
    """The study's photometric set (hue, brightness, contrast, saturation) on [0, 1] floats."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, num=4)
    x = image / 255.0
    if aug.hue:
        x = tf.clip_by_value(tf.image.stateless_random_hue(x, aug.hue, seeds[0]), 0.0, 1.0)
    if aug.brightness:
        x = tf.clip_by_value(tf.image.stateless_random_brightness(x, aug.brightness, seeds[1]), 0.0, 1.0)
    if aug.contrast:
        x = tf.clip_by_value(tf.image.stateless_random_contrast(x, *aug.contrast, seeds[2]), 0.0, 1.0)
    if aug.saturation:
        x = tf.clip_by_value(tf.image.stateless_random_saturation(x, *aug.saturation, seeds[3]), 0.0, 1.0)
    return x * 255.0


def scale_crop(image, label, seed, scale_range: tuple[float, float], pad_label: int):
    """Rescale by a random factor (image bilinear, label nearest), then crop/pad back to HxW.

    Padding is black in the image and ``pad_label`` in the label (ignore, or 'unlabeled').
    """
    import tensorflow as tf

    height, width = image.shape[0], image.shape[1]
    s = tf.random.experimental.stateless_split(seed, num=5)
    factor = tf.random.stateless_uniform([], s[0], scale_range[0], scale_range[1])
    new_h = tf.maximum(1, tf.cast(tf.round(height * factor), tf.int32))
    new_w = tf.maximum(1, tf.cast(tf.round(width * factor), tf.int32))
    image = tf.image.resize(image, [new_h, new_w], method="bilinear")
    label = tf.image.resize(label[..., None], [new_h, new_w], method="nearest")[..., 0]
    pad_h, pad_w = tf.maximum(height - new_h, 0), tf.maximum(width - new_w, 0)
    top = _randint(s[1], pad_h)
    left = _randint(s[2], pad_w)
    paddings = [[top, pad_h - top], [left, pad_w - left]]
    image = tf.pad(image, paddings + [[0, 0]])
    label = tf.pad(label, paddings, constant_values=pad_label)
    y = _randint(s[3], tf.shape(label)[0] - height)
    x = _randint(s[4], tf.shape(label)[1] - width)
    image = tf.ensure_shape(image[y:y + height, x:x + width], (height, width, 3))
    label = tf.ensure_shape(label[y:y + height, x:x + width], (height, width))
    return image, label


def _randint(seed, high):
    """A random int32 in [0, high] (inclusive)."""
    import tensorflow as tf

    return tf.random.stateless_uniform([], seed, 0, high + 1, dtype=tf.int32)

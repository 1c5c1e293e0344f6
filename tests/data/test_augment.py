"""Augmentation keeps image and label aligned, follows its probabilities, and is training-only."""

from __future__ import annotations

import numpy as np
import pytest

from cityseg.config import ConfigError
from cityseg.data import find_samples
from cityseg.data.augment import augment, check_augment
from cityseg.data.config import AugmentConfig, DataConfig
from cityseg.data.pipeline import make_dataset
from cityseg.labels import IGNORE, class_space
from cityseg.preprocess import Normalization
from cityseg.training.config import TrainConfig

PALETTE = class_space("trainid").colors.astype(np.float32)


def painted(seed: int = 0, height: int = 48, width: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A label of random 12x12 blocks and an image derived from it (palette colour per class)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 19, size=(height // 12, width // 12))
    label = np.kron(blocks, np.ones((12, 12), np.int64)).astype(np.int32)
    return PALETTE[label], label


def classes_of(image: np.ndarray) -> np.ndarray:
    """Nearest palette class of every pixel: recovers the label from an unaugmented-colour image."""
    distances = ((image[..., None, :] - PALETTE) ** 2).sum(-1)
    return distances.argmin(-1)


def run(image, label, aug: AugmentConfig, seed=(1, 2), pad=IGNORE):
    import tensorflow as tf

    out_image, out_label = augment(tf.constant(image), tf.constant(label), tf.constant(seed, tf.int64), aug, pad)
    return out_image.numpy(), out_label.numpy()


def test_flips_move_image_and_label_together():
    image, label = painted()
    out_image, out_label = run(image, label, AugmentConfig(hflip_prob=1.0))
    assert np.array_equal(out_image, image[:, ::-1]) and np.array_equal(out_label, label[:, ::-1])
    out_image, out_label = run(image, label, AugmentConfig(vflip_prob=1.0, hflip_prob=1.0))
    assert np.array_equal(out_image, image[::-1, ::-1]) and np.array_equal(out_label, label[::-1, ::-1])
    assert np.array_equal(classes_of(out_image), out_label)


@pytest.mark.parametrize("seed", [(0, 1), (3, 4), (5, 9), (7, 7)])
def test_scale_crop_keeps_alignment_and_pads_with_ignore(seed):
    image, label = painted()
    aug = AugmentConfig(scale_crop_prob=1.0, scale_range=(0.5, 2.0))

    out_image, out_label = run(image, label, aug, seed=seed)

    assert out_image.shape == image.shape and out_label.shape == label.shape and out_label.dtype == np.int32
    assert not np.array_equal(out_label, label)
    padded = out_label == IGNORE
    assert (out_image[padded] == 0).all()
    valid = ~padded & (out_image.sum(-1) > 0)
    agreement = np.mean(classes_of(out_image)[valid] == out_label[valid])
    assert agreement > 0.9  # only block borders blur under bilinear resampling


def test_scale_crop_pads_labelid_space_with_unlabeled():
    image, label = painted()
    aug = AugmentConfig(scale_crop_prob=1.0, scale_range=(0.5, 0.5))
    out_image, out_label = run(image, label, aug, pad=0)
    assert (out_label[out_image.sum(-1) == 0] == 0).all() and (out_image.sum(-1) == 0).mean() >= 0.7


def test_photometric_changes_colours_not_labels_and_stays_in_range():
    image, label = painted()
    aug = AugmentConfig(photometric_prob=1.0, hue=0.1, brightness=0.2, contrast=(0.7, 1.3), saturation=(0.7, 1.3))
    out_image, out_label = run(image, label, aug)
    assert np.array_equal(out_label, label)
    assert not np.allclose(out_image, image, atol=1.0)
    assert out_image.min() >= 0.0 and out_image.max() <= 255.0 + 1e-3


def test_probability_zero_is_identity_and_a_seed_is_reproducible():
    image, label = painted()
    off = AugmentConfig(hue=0.1, brightness=0.3, scale_crop_prob=0.0)
    out_image, out_label = run(image, label, off)
    assert np.array_equal(out_image, image) and np.array_equal(out_label, label)
    half = AugmentConfig(photometric_prob=0.5, hue=0.1, hflip_prob=0.5, scale_crop_prob=0.5)
    results = [run(image, label, half, seed=(s, 0)) for s in range(12)]
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(results, [run(image, label, half, seed=(s, 0))
                                                                   for s in range(12)]))
    flipped = sum(np.array_equal(lab, label[:, ::-1]) for _, lab in results)
    untouched = sum(np.array_equal(lab, label) for _, lab in results)
    assert flipped > 0 and untouched > 0  # each transform happens sometimes, not always


def test_bad_settings_are_refused_with_the_key():
    with pytest.raises(ConfigError, match="augment.hue"):
        check_augment(AugmentConfig(hue=0.7))
    with pytest.raises(ConfigError, match="augment.contrast"):
        check_augment(AugmentConfig(contrast=(1.2, 0.8)))


def test_pipeline_augments_only_training_datasets(synth_root, tmp_path):
    data = DataConfig(root=str(synth_root), height=32, width=64, batch_size=6, cache_dir=str(tmp_path / "c"))
    samples = find_samples(synth_root, "train")
    cfg = TrainConfig(data=data, augment=AugmentConfig(hflip_prob=1.0))
    (plain_x, plain_y), = list(make_dataset(samples, cfg, Normalization(), training=False, progress=False))
    (aug_x, aug_y), = list(make_dataset(samples, cfg, Normalization(), training=True, progress=False))

    plain_x, plain_y, aug_x, aug_y = (t.numpy() for t in (plain_x, plain_y, aug_x, aug_y))
    for x, y in zip(aug_x, aug_y):  # every training sample is a mirrored eval sample, label included
        match = [i for i in range(6) if np.array_equal(x, plain_x[i][:, ::-1])]
        assert len(match) == 1 and np.array_equal(y, plain_y[match[0]][:, ::-1])


def test_random_crops_cut_the_same_window_of_image_and_label_and_move_between_seeds():
    image, label = painted(seed=4, height=48, width=96)
    aug = AugmentConfig(crop=(24, 36), hflip_prob=0.5)  # no rescale: every pixel keeps its colour
    windows = set()
    for seed in range(6):
        out_image, out_label = run(image, label, aug, seed=(seed, 7))
        assert out_image.shape == (24, 36, 3) and out_label.shape == (24, 36)
        inside = out_label != IGNORE
        np.testing.assert_array_equal(classes_of(out_image)[inside], out_label[inside])
        windows.add(out_label.tobytes())
    assert len(windows) > 3


def test_a_crop_larger_than_the_training_size_is_refused():
    with pytest.raises(ValueError, match=r"augment.crop \[64, 96\] is larger than the training size 48x96"):
        TrainConfig(data=DataConfig(height=48, width=96), augment=AugmentConfig(crop=(64, 96)))
    with pytest.raises(ValueError, match=r"augment.crop must be \[height, width\], two positive integers"):
        AugmentConfig(crop=(0, 32))

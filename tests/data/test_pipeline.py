"""The on-disk cache, the statistics and the tf.data pipeline."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cityseg.data import DatasetError, find_samples, pipeline
from cityseg.data.config import AugmentConfig, DataConfig
from cityseg.data.pipeline import (
    cache_path,
    class_pixel_counts,
    decode_sample,
    fit_normalization,
    load_arrays,
    make_dataset,
)
from cityseg.fileio import read_image, read_label_png, write_png
from cityseg.labels import class_space
from cityseg.preprocess import Normalization, normalize, resize_image, resize_mask
from cityseg.training.config import TrainConfig

H, W = 32, 64


def data_config(root, cache, **changes) -> DataConfig:
    settings = {"height": H, "width": W, "batch_size": 4, **changes}
    return DataConfig(root=str(root), cache_dir=str(cache) if cache else None, **settings)


def expected_arrays(samples, data: DataConfig):
    """What the pipeline must produce, computed independently with the inference preprocessing."""
    space = class_space(data.class_space)
    images = [resize_image(read_image(s.image)[..., ::-1].copy(), H, W, data.resize) for s in samples]
    labels = [space.from_label_id[resize_mask(read_label_png(s.label), H, W)] for s in samples]
    return np.stack(images), np.stack(labels)


@pytest.fixture
def decode_counter(monkeypatch):
    calls = []

    def counting(sample, data):
        calls.append(sample.key)
        return decode_sample(sample, data)

    monkeypatch.setattr(pipeline, "decode_sample", counting)
    return calls


def test_cache_is_built_once_then_reused_without_decoding(synth_root, tmp_path, decode_counter):
    data = data_config(synth_root, tmp_path / "cache")
    samples = find_samples(synth_root, "train")

    images, labels = load_arrays(samples, data, progress=False)
    assert len(decode_counter) == len(samples) == 6
    entries = list((tmp_path / "cache").iterdir())
    assert entries == [cache_path(samples, data)]  # one entry, no temporary folder left behind
    assert sorted(p.name for p in entries[0].iterdir()) == ["images.npy", "labels.npy", "meta.json"]

    again_images, again_labels = load_arrays(samples, data, progress=False)
    for _ in make_dataset(samples, TrainConfig(data=data), Normalization(), training=True, progress=False):
        pass
    assert len(decode_counter) == 6  # neither a second load nor a training epoch decodes a PNG
    assert isinstance(again_images, np.memmap)
    expected_images, expected_labels = expected_arrays(samples, data)
    assert np.array_equal(images, expected_images) and np.array_equal(again_labels, expected_labels)
    assert images.dtype == labels.dtype == np.uint8 and labels.shape == (6, H, W)


def test_cache_is_rebuilt_when_a_file_or_a_setting_changes(synth_root, tmp_path, decode_counter):
    root = tmp_path / "data"
    for s in find_samples(synth_root, "train")[:3]:
        for path in (s.image, s.label):
            target = root / path.relative_to(synth_root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    data = data_config(root, tmp_path / "cache", class_space="labelid")
    samples = find_samples(root, "train")
    first = np.array(load_arrays(samples, data, progress=False)[1])
    assert len(decode_counter) == 3

    changed = samples[1].label
    write_png(changed, np.full_like(read_label_png(changed), 26))  # now all 'car'
    os.utime(changed, ns=(1, 1))  # a different mtime even on coarse-clock filesystems
    _, labels = load_arrays(samples, data, progress=False)
    assert len(decode_counter) == 6
    assert (labels[1] == 26).all() and np.array_equal(labels[0], first[0])

    load_arrays(samples, DataConfig(**{**data.__dict__, "resize": "area"}), progress=False)
    assert len(decode_counter) == 9
    assert len(list((tmp_path / "cache").iterdir())) == 3


@pytest.mark.parametrize("cached", [True, False])
def test_dataset_pixels_equal_the_inference_preprocessing_exactly(synth_root, tmp_path, cached):
    data = data_config(synth_root, tmp_path / "cache" if cached else None)
    samples = find_samples(synth_root, "train")
    norm = Normalization(mean=(0.3, 0.4, 0.5), std=(0.2, 0.25, 0.3))
    cfg = TrainConfig(data=data, augment=AugmentConfig(hflip_prob=1.0, vflip_prob=1.0, photometric_prob=1.0,
                                                       hue=0.1, scale_crop_prob=1.0))  # unused: training=False

    batches = list(make_dataset(samples, cfg, norm, training=False, progress=False))

    assert [tuple(x.shape) for x, _ in batches] == [(4, H, W, 3), (2, H, W, 3)]
    images = np.concatenate([x.numpy() for x, _ in batches])
    labels = np.concatenate([y.numpy() for _, y in batches])
    assert images.dtype == np.float32 and labels.dtype == np.int32 and labels.shape == (6, H, W)
    expected_images, expected_labels = expected_arrays(samples, data)
    assert np.array_equal(images, normalize(expected_images, norm))  # bit-exact, in sample order
    assert np.array_equal(labels, expected_labels.astype(np.int32))


def test_training_dataset_is_shuffled_deterministically_each_epoch(synth_root, tmp_path):
    data = data_config(synth_root, tmp_path / "cache", batch_size=1)
    samples = find_samples(synth_root, "train")
    reference = normalize(expected_arrays(samples, data)[0], Normalization())

    def epoch_order(ds):
        return [int(np.argmin([np.abs(x.numpy()[0] - r).sum() for r in reference])) for x, _ in ds]

    ds = make_dataset(samples, TrainConfig(data=data, seed=7), Normalization(), training=True, progress=False)
    first, second = epoch_order(ds), epoch_order(ds)
    again = epoch_order(make_dataset(samples, TrainConfig(data=data, seed=7), Normalization(), True, progress=False))

    assert sorted(first) == list(range(6))  # one pass over every sample
    assert first != list(range(6)) and first != second  # shuffled, and reshuffled each epoch
    assert again == first  # reproducible for a seed


def test_mean_std_is_measured_on_the_given_training_samples_only(tmp_path, tree):
    rng = np.random.default_rng(0)
    for split, low, high in (("train", 0, 100), ("val", 150, 256)):
        for i in range(3):
            image = rng.integers(low, high, size=(16, 32, 3), dtype=np.uint8)
            image[..., 2] //= 2
            tree.write_pair(tmp_path, split, "ulm", f"ulm_{i:06d}_000019", image, np.full((16, 32), 7, np.uint8))
    data = DataConfig(root=str(tmp_path), height=16, width=32, normalization="mean_std",
                      cache_dir=str(tmp_path / "cache"))
    train, val = find_samples(tmp_path, "train"), find_samples(tmp_path, "val")

    norm = fit_normalization(train, data)

    pixels = np.stack([read_image(s.image)[..., ::-1] for s in train]).reshape(-1, 3) / 255.0
    assert np.allclose(norm.mean, pixels.mean(axis=0), atol=1e-9)
    assert np.allclose(norm.std, pixels.std(axis=0), atol=1e-9)
    assert norm.scale == pytest.approx(1 / 255)
    assert fit_normalization(train + val, data).mean[0] > norm.mean[0] + 0.2  # val would shift it
    assert fit_normalization(train, DataConfig(normalization="scale")) == Normalization()


@pytest.mark.parametrize("space", ["trainid", "labelid"])
def test_class_pixel_counts_count_each_class_without_ignore(synth_root, tmp_path, space):
    data = data_config(synth_root, tmp_path / "cache", class_space=space)
    samples = find_samples(synth_root, "train")

    counts = class_pixel_counts(samples, data)

    labels = expected_arrays(samples, data)[1]
    n = class_space(space).num_classes
    assert counts.dtype == np.int64 and counts.shape == (n,)
    assert np.array_equal(counts, np.bincount(labels.ravel(), minlength=256)[:n])
    assert counts.sum() == (labels != 255).sum() and counts.sum() > 0
    if space == "labelid":
        assert counts.sum() == labels.size


def test_unlabelled_samples_and_non_labelid_files_are_refused(tmp_path, tree):
    image, _ = tree.flat_pair(10)
    tree.write_pair(tmp_path, "test", "berlin", "berlin_000000_000019", image, None)
    data = DataConfig(root=str(tmp_path), height=8, width=16, cache_dir=None)
    with pytest.raises(DatasetError, match="no label file"):
        load_arrays(find_samples(tmp_path, "test"), data)

    trainids = np.full((16, 32), 255, np.uint8)  # a *_trainIds.png saved under the labelIds name
    tree.write_pair(tmp_path, "train", "ulm", "ulm_000000_000019", image, trainids)
    with pytest.raises(DatasetError, match=r"contains value 255, which is not a Cityscapes labelId"):
        load_arrays(find_samples(tmp_path, "train"), data, progress=False)


def test_a_file_corrupted_after_discovery_is_named(tmp_path, tree):
    image, label = tree.flat_pair(10)
    tree.write_pair(tmp_path, "train", "ulm", "ulm_000000_000019", image, label)
    samples = find_samples(tmp_path, "train")
    data = samples[0].image.read_bytes()
    samples[0].image.write_bytes(data[:60])  # header intact, pixel data gone
    with pytest.raises(DatasetError, match=r"ulm_000000_000019_leftImg8bit.png: cannot decode(.|\n)*re-extract"):
        load_arrays(samples, DataConfig(height=8, width=16, cache_dir=str(tmp_path / "c")), progress=False)
    assert not list((tmp_path / "c").iterdir())  # no half-built cache left behind

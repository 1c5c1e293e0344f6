"""Discovery, pairing by key, refusal of unpaired/unreadable files, and the splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityseg.data import DatasetError, Sample, find_samples, make_splits, study_split, validation_split
from cityseg.data.config import DataConfig
from cityseg.fileio import read_image, read_label_png


def test_pairs_by_key_even_when_sorted_positions_disagree(tmp_path, tree):
    # Labels live in differently named city folders, so the two sorted path lists are in a
    # different order: pairing by position (the study's flaw) would mismatch every pair.
    placements = {"aachen_000000_000019": ("aachen", "zz"), "aachen_000001_000019": ("aachen", "aa"),
                  "bochum_000000_000019": ("bochum", "mm")}
    for value, (key, (city, label_city)) in enumerate(placements.items(), start=1):
        image, label = tree.flat_pair(value * 10)
        tree.write_pair(tmp_path, "train", city, key, image, label, label_city=label_city)

    samples = find_samples(tmp_path, "train")

    assert [s.key for s in samples] == sorted(placements)
    for s in samples:
        assert s.split == "train" and s.label.name.startswith(s.key)
        assert read_image(s.image)[0, 0, 0] == read_label_png(s.label)[0, 0]
    by_position = zip(sorted(s.image for s in samples), sorted(s.label for s in samples))
    assert any(read_image(i)[0, 0, 0] != read_label_png(l)[0, 0] for i, l in by_position)


def test_refuses_unpaired_images_and_labels_naming_them(tmp_path, tree):
    image, label = tree.flat_pair(7)
    tree.write_pair(tmp_path, "val", "lindau", "lindau_000000_000019", image, label)
    tree.write_pair(tmp_path, "val", "lindau", "lindau_000001_000019", image, None)  # no label
    tree.write_pair(tmp_path, "val", "lindau", "lindau_000002_000019", image, label)
    (tmp_path / "leftImg8bit/val/lindau/lindau_000002_000019_leftImg8bit.png").unlink()  # no image

    with pytest.raises(DatasetError) as err:
        find_samples(tmp_path, "val")

    message = str(err.value)
    assert "1 images without" in message and "lindau_000001_000019_leftImg8bit.png" in message
    assert "1 labels without" in message and "lindau_000002_000019_gtFine_labelIds.png" in message
    assert "add the missing files or remove the unpaired ones" in message


def test_lists_a_few_paths_and_the_count_when_many_are_unpaired(tmp_path, tree):
    image, _ = tree.flat_pair(1)
    for i in range(8):
        tree.write_pair(tmp_path, "train", "ulm", f"ulm_{i:06d}_000019", image, None)
    (tmp_path / "gtFine/train/ulm").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"8 images without(.|\n)*and 3 more"):
        find_samples(tmp_path, "train")


def test_refuses_unreadable_and_wrong_kind_files(tmp_path, tree):
    image, label = tree.flat_pair(3)
    for i in range(4):
        tree.write_pair(tmp_path, "train", "jena", f"jena_{i:06d}_000019", image, label)
    truncated = tmp_path / "leftImg8bit/train/jena/jena_000000_000019_leftImg8bit.png"
    truncated.write_bytes(truncated.read_bytes()[:20])
    colour_label = tmp_path / "gtFine/train/jena/jena_000001_000019_gtFine_labelIds.png"
    tree.write_pair(tmp_path, "train", "jena", "jena_000001_000019", image, image)  # an RGB "label"
    tree.write_pair(tmp_path, "train", "jena", "jena_000002_000019", image, label[:8])  # wrong size

    with pytest.raises(DatasetError) as err:
        find_samples(tmp_path, "train")

    message = str(err.value)
    assert message.startswith("3 unreadable or invalid files")
    assert f"{truncated}: not a PNG" in message
    assert f"{colour_label}: expected an 8-bit single-channel labelIds PNG" in message
    assert "jena_000002_000019_gtFine_labelIds.png: size 32x8 differs from its image's 32x16" in message
    assert "jena_000003" not in message


def test_missing_root_explains_the_layout_and_offers_synth(tmp_path):
    with pytest.raises(DatasetError, match=r"leftImg8bit/train: no such folder(.|\n)*cityseg synth"):
        find_samples(tmp_path / "nowhere", "train")
    with pytest.raises(DatasetError, match="unknown split 'training'"):
        find_samples(tmp_path, "training")


def test_test_split_may_lack_labels_but_train_may_not(tmp_path, tree):
    image, _ = tree.flat_pair(5)
    tree.write_pair(tmp_path, "test", "berlin", "berlin_000000_000019", image, None)
    tree.write_pair(tmp_path, "train", "ulm", "ulm_000000_000019", image, None)

    assert find_samples(tmp_path, "test") == [
        Sample("berlin_000000_000019", tmp_path / "leftImg8bit/test/berlin/berlin_000000_000019_leftImg8bit.png",
               None, "test")]
    with pytest.raises(DatasetError, match=r"gtFine/train: no such folder"):
        find_samples(tmp_path, "train")


def test_refuses_names_that_are_not_cityscapes_keys(tmp_path, tree):
    image, label = tree.flat_pair(5)
    tree.write_pair(tmp_path, "train", "ulm", "ulm_frame_7", image, label)
    with pytest.raises(DatasetError, match=r"not named <city>_<seq:6 digits>_<frame:6 digits>"):
        find_samples(tmp_path, "train")


def _fake_samples(count: int) -> list[Sample]:
    cities = ["aachen", "frankfurt", "zurich", "bochum", "lindau"]
    samples = [Sample(f"{cities[i % 5]}_{i:06d}_000019", Path(f"/nowhere/{i}.png"), Path(f"/nowhere/{i}_l.png"),
                      "train" if i % 7 else "val") for i in range(count)]
    return samples[::-1]  # unsorted on purpose


def test_study_split_reproduces_2085_521_869_in_key_order():
    samples = _fake_samples(3475)

    splits = study_split(samples)

    assert {k: len(v) for k, v in splits.items()} == {"train": 2085, "dev": 521, "test": 869}
    ordered = splits["train"] + splits["dev"] + splits["test"]
    assert [s.key for s in ordered] == sorted(s.key for s in samples)
    assert study_split(list(reversed(samples))) == splits  # input order does not matter


def test_seeded_study_split_is_a_deterministic_shuffle():
    samples = _fake_samples(1000)

    a, b, c = study_split(samples, seed=1), study_split(samples, seed=1), study_split(samples, seed=2)

    assert a == b and a != c
    assert {k: len(v) for k, v in a.items()} == {"train": 600, "dev": 150, "test": 250}
    pooled = [s.key for part in a.values() for s in part]
    assert sorted(pooled) == sorted(s.key for s in samples) and len(set(pooled)) == 1000
    assert pooled != sorted(pooled)


def test_make_splits_official_study_and_max_samples(synth_root):
    official = make_splits(DataConfig(root=str(synth_root)))
    assert {k: len(v) for k, v in official.items()} == {"train": 6, "val": 2}
    assert all(s.split == name for name, part in official.items() for s in part)

    study = make_splits(DataConfig(root=str(synth_root), split="study"))
    assert {k: len(v) for k, v in study.items()} == {"train": 4, "dev": 1, "test": 3}
    assert {s.key for part in study.values() for s in part} == {s.key for part in official.values() for s in part}

    small = make_splits(DataConfig(root=str(synth_root), max_samples=1))
    assert small == {"train": official["train"][:1], "val": official["val"][:1]}
    assert validation_split(DataConfig()) == "val" and validation_split(DataConfig(split="study")) == "dev"


def test_make_splits_needs_a_root():
    with pytest.raises(DatasetError, match="--data-root"):
        make_splits(DataConfig(root=None))



def test_study_split_in_path_order_puts_all_official_val_into_test():
    cities = {"train": ["aachen", "bochum", "zurich"], "val": ["frankfurt", "lindau", "munster"]}
    samples = []
    for split, count in (("train", 2975), ("val", 500)):
        for i in range(count):
            city = cities[split][i % 3]
            key = f"{city}_{i:06d}_000019"
            samples.append(Sample(key, Path(f"/cs/leftImg8bit/{split}/{city}/{key}_leftImg8bit.png"),
                                  Path(f"/cs/gtFine/{split}/{city}/{key}_gtFine_labelIds.png"), split))

    splits = study_split(samples[::-1], order="path")

    assert {k: len(v) for k, v in splits.items()} == {"train": 2085, "dev": 521, "test": 869}
    assert all(s.split == "train" for s in splits["train"] + splits["dev"])
    assert sum(s.split == "val" for s in splits["test"]) == 500
    ordered = [s.image for part in splits.values() for s in part]
    assert ordered == sorted(s.image for s in samples)  # exactly the study's sorted file paths
    with pytest.raises(ValueError, match="'key' or 'path'"):
        study_split(samples, order="random")

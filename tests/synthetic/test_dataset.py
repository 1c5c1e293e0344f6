"""The synthetic street-scene generator and `cityseg synth`."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cityseg.cli import main
from cityseg.data import DatasetError, find_samples
from cityseg.fileio import read_image, read_label_png
from cityseg.labels import LABELS, class_space
from cityseg.synthetic.dataset import drive_frames, render_scene, split_counts, write_dataset
from cityseg.synthetic.geometry import BUILDING, CAR, ROAD, SKY

from support import flat_pair, write_pair

VALID_IDS = {label.id for label in LABELS}


def test_writes_the_exact_cityscapes_layout_and_naming(tmp_path):
    counts = write_dataset(tmp_path, 5, size=(96, 48), seed=1, splits={"train": 0.6, "val": 0.2, "test": 0.2})

    assert counts == {"train": 3, "val": 1, "test": 1}
    name = re.compile(r"^[a-z]+_\d{6}_\d{6}_(leftImg8bit|gtFine_labelIds|gtFine_color)\.png$")
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.png"))
    assert len(files) == 15
    for rel in files:
        top, split, city = rel.parts[:3]
        assert top in ("leftImg8bit", "gtFine") and split in counts and name.match(rel.name)
        assert rel.name.startswith(city + "_") and len(rel.parts) == 4
    palette = class_space("labelid").palette
    for split, n in counts.items():
        samples = find_samples(tmp_path, split)
        assert len(samples) == n
        for s in samples:
            image, label = read_image(s.image), read_label_png(s.label)
            assert image.shape == (48, 96, 3) and label.shape == (48, 96)
            colour = read_image(s.label.with_name(s.key + "_gtFine_color.png"))[..., ::-1]
            assert np.array_equal(colour, palette[label])
    assert (tmp_path / "synth.json").is_file()


def test_labels_are_cityscapes_ids_covering_the_street_classes():
    seen = set()
    for i in range(6):
        image, label = render_scene(np.random.default_rng(i), 128, 256)
        assert image.shape == (128, 256, 3) and image.dtype == np.uint8
        assert label.shape == (128, 256) and label.dtype == np.uint8
        ids = set(np.unique(label).tolist())
        assert ids <= VALID_IDS
        assert {ROAD, BUILDING, SKY} <= ids
        seen |= ids
    names = {label.name for label in LABELS if label.id in seen}
    assert {"road", "sidewalk", "building", "sky", "vegetation", "pole", "traffic sign", "car",
            "person"} <= names
    assert len(seen) >= 14


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_dataset(a, 3, size=(64, 32), seed=5)
    write_dataset(b, 3, size=(64, 32), seed=5)
    write_dataset(c, 3, size=(64, 32), seed=6)
    pngs = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in pngs)
    assert any((a / p).read_bytes() != (c / p).read_bytes() for p in pngs)


def test_colours_are_not_a_giveaway_of_the_class():
    """The same class gets different colours across scenes and is textured within a scene."""
    car_means, road_means, building_stds = [], [], []
    for i in range(10):
        image, label = render_scene(np.random.default_rng(100 + i), 128, 256)
        pixels = image.astype(np.float64)
        if (label == CAR).sum() > 50:
            car_means.append(pixels[label == CAR].mean(axis=0))
        road_means.append(pixels[label == ROAD].mean(axis=0))
        building_stds.append(pixels[label == BUILDING].std(axis=0).mean())
    assert len(car_means) >= 5
    assert np.std(car_means, axis=0).mean() > 15.0
    assert np.std(road_means, axis=0).mean() > 8.0
    assert min(building_stds) > 10.0


def test_drive_frames_move_through_one_coherent_street():
    frames = list(drive_frames(12, 64, 128, seed=2))
    labels = [label for _, label in frames]

    assert len(frames) == 12
    assert all(img.shape == (64, 128, 3) and lab.shape == (64, 128) for img, lab in frames)
    neighbour = [np.mean(labels[i] == labels[i + 1]) for i in range(11)]
    assert min(neighbour) > 0.8  # temporally coherent
    assert np.mean(labels[0] == labels[11]) < min(neighbour)  # but the camera does move
    assert not np.array_equal(labels[0], labels[1])
    again = next(drive_frames(12, 64, 128, seed=2))
    assert np.array_equal(again[0], frames[0][0]) and np.array_equal(again[1], labels[0])


def test_split_counts_share_every_image():
    assert split_counts(10, {"train": 0.7, "val": 0.2, "test": 0.1}) == {"train": 7, "val": 2, "test": 1}
    assert sum(split_counts(7, {"train": 1, "val": 1, "test": 1}).values()) == 7
    with pytest.raises(DatasetError, match="not Cityscapes splits"):
        split_counts(10, {"training": 1.0})
    with pytest.raises(DatasetError, match="positive"):
        split_counts(0, {"train": 1.0})


def test_cli_writes_and_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "scenes"
    argv = ["synth", "--out", str(out), "--count", "3", "--size", "64x32", "--seed", "4",
            "--split-fractions", "train=2,val=1"]

    assert main(argv) == 0
    assert {s.key for s in find_samples(out, "train")} and len(find_samples(out, "val")) == 1
    assert "wrote 3 scenes (train 2, val 1) of 64x32" in capsys.readouterr().out

    assert main(argv) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert main(["synth", "--out", str(out), "--count", "2", "--size", "64x32", "--force"]) == 0
    assert len(list(out.rglob("*_leftImg8bit.png"))) == 2  # replaced, no stale scenes mixed in


def test_force_never_replaces_a_tree_synth_did_not_write(tmp_path):
    image, label = flat_pair(3)
    write_pair(tmp_path, "train", "aachen", "aachen_000000_000019", image, label)
    with pytest.raises(DatasetError, match="was not written by `cityseg synth`"):
        write_dataset(tmp_path, 2, size=(64, 32), force=True)
    assert len(find_samples(tmp_path, "train")) == 1


def test_cli_rejects_a_malformed_size(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path), "--count", "1", "--size", "big"])
    assert "is not WIDTHxHEIGHT" in capsys.readouterr().err


def test_drive_never_runs_through_a_vehicle_in_its_lane():
    from cityseg.synthetic.dataset import _keep_ego_lane_clear
    from cityseg.synthetic.items import Vehicle
    from cityseg.synthetic.street import make_world

    for seed in range(20):
        world = make_world(np.random.default_rng(seed), length=200.0)
        _keep_ego_lane_clear(world)
        cam = world.camera
        for item in world.front:
            if isinstance(item, Vehicle) and abs(item.x - cam.x) < 1.8 and item.z > 0:
                for t in np.linspace(0, 10, 21):  # ten seconds of driving
                    assert item.z_at(t) - cam.speed * t >= item.z - 1e-9

"""Calibration / evaluation frames: which images, checked before any work, hashed, fed like inference."""

import cv2
import numpy as np
import pytest

from cityseg.errors import InputError
from cityseg.export.calibration import FrameFeed, dataset_frames, folder_frames, image_files

from support import painted_scene, palette_card


def write_images(directory, count, size=(90, 160), start=0):
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        rgb, _ = painted_scene(*size, seed=i)
        path = directory / f"frame_{i:03d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def test_image_files_sorted_and_spread(tmp_path):
    paths = write_images(tmp_path / "calib" / "aachen", 10)
    (tmp_path / "calib" / "notes.txt").write_text("not an image")
    assert image_files(tmp_path / "calib") == paths
    assert image_files(tmp_path / "calib", limit=4) == [paths[i] for i in (0, 3, 6, 9)]
    with pytest.raises(InputError, match="no such directory"):
        image_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        image_files(tmp_path / "empty")


def test_folder_frames_are_rgb_hashed_and_fed_through_the_card(tmp_path):
    card = palette_card(height=64, width=128, resize="area")
    paths = write_images(tmp_path / "calib", 9)
    frames = folder_frames(tmp_path / "calib", minimum=8)
    assert len(frames.frames) == 9 and frames.describe()["size"] == "160x90"
    again = folder_frames(tmp_path / "calib", minimum=8)
    assert frames.sha256 == again.sha256 and len(frames.sha256) == 64
    rgb = cv2.cvtColor(cv2.imread(str(paths[0])), cv2.COLOR_BGR2RGB)
    assert np.array_equal(frames.frames[0], rgb)
    feed = FrameFeed(frames, card, "image", batch=4)
    first = feed.get_next()["image"]
    assert first.dtype == np.float32 and np.array_equal(first, card.preprocess(frames.frames[:4]))
    assert feed.get_next() is not None and feed.get_next() is None  # 9 frames: two full batches
    assert len(feed) == 2
    feed.set_range(1, 5)  # a stride of ONNX Runtime's calibrator: the second batch only
    assert np.array_equal(feed.get_next()["image"], card.preprocess(frames.frames[4:8])) and feed.get_next() is None
    feed.rewind()
    assert np.array_equal(feed.get_next()["image"], first) and feed.get_next() is not None and feed.get_next() is None


@pytest.mark.parametrize("bad", ["few", "size", "unreadable", "grey", "rgba"])
def test_bad_calibration_folders_are_refused_with_the_file(tmp_path, bad):
    folder = tmp_path / "calib"
    write_images(folder, 3 if bad == "few" else 9)
    if bad == "size":
        write_images(folder, 1, size=(100, 160), start=50)
    elif bad == "unreadable":
        (folder / "frame_900.png").write_bytes(b"not a png")
    elif bad == "grey":
        cv2.imwrite(str(folder / "frame_900.png"), np.zeros((90, 160), np.uint8))
    elif bad == "rgba":
        cv2.imwrite(str(folder / "frame_900.png"), np.zeros((90, 160, 4), np.uint8))
    expected = {"few": "at least 8", "size": "frame_050.png is 160x100", "unreadable": "frame_900.png cannot be read",
                "grey": "frame_900.png is a single-channel", "rgba": "frame_900.png is a 4-channel"}[bad]
    with pytest.raises(InputError, match=expected):
        folder_frames(folder)


def test_dataset_frames_with_labels(tmp_path):
    from cityseg.synthetic.dataset import write_dataset

    write_dataset(tmp_path / "data", 6, (128, 64), seed=0, splits={"train": 0.5, "val": 0.5})
    frames = dataset_frames(tmp_path / "data", "val", minimum=1, with_labels=True)
    assert len(frames.frames) == len(frames.labels) >= 2
    assert frames.labels[0].shape == frames.frames[0].shape[:2] and frames.labels[0].dtype == np.uint8
    with pytest.raises(InputError, match="--calib-data"):
        dataset_frames(tmp_path / "nowhere", "val")


def test_frames_are_counted_after_reading_not_by_extension(tmp_path):
    folder = tmp_path / "calib"
    write_images(folder, 2)
    (folder / "notes.png").write_bytes(b"a text file named like an image")
    with pytest.raises(InputError, match="notes.png cannot be read"):  # not "3 frame(s) found"
        folder_frames(folder)

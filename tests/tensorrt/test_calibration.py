"""INT8 calibration without TensorRT: which images, and batches preprocessed like inference."""

import cv2
import numpy as np
import pytest

from cityseg.errors import InputError
from cityseg.tensorrt.calibration import CalibrationBatches, calibration_files

from support import painted_scene, palette_card


def write_images(directory, count, size=(90, 160)):
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        rgb, _ = painted_scene(*size, seed=i)
        path = directory / f"frame_{i:03d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def test_calibration_files_sorted_and_spread(tmp_path):
    paths = write_images(tmp_path / "calib" / "aachen", 10)
    (tmp_path / "calib" / "notes.txt").write_text("not an image")
    assert calibration_files(tmp_path / "calib") == paths
    picked = calibration_files(tmp_path / "calib", limit=4)
    assert picked == [paths[i] for i in (0, 3, 6, 9)]
    with pytest.raises(InputError, match="no such directory"):
        calibration_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        calibration_files(tmp_path / "empty")


def test_calibration_batches_are_preprocessed_like_inference(tmp_path):
    card = palette_card(height=64, width=128, resize="area")
    paths = write_images(tmp_path / "calib", 7)
    batches = CalibrationBatches(paths, card, batch_size=3)
    assert len(batches) == 2 and batches.shape == (3, 64, 128, 3) and batches.nbytes == 3 * 64 * 128 * 3 * 4
    produced = list(batches)
    assert len(produced) == 2 and all(b.dtype == np.float32 and b.flags.c_contiguous for b in produced)
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths[:3]]
    assert np.array_equal(produced[0], card.preprocess(frames))
    with pytest.raises(InputError, match="at least 8 images"):
        CalibrationBatches(paths, card, batch_size=8)

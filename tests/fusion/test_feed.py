"""The fusion's inputs and the node's queue: the same dataclasses drive a runner whether they come
from the node's thread or straight from the bag replay; a full queue drops (counted), never blocks;
the extrinsics file is read once, when the config is made."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from cityseg.errors import InputError
from cityseg.fusion.cloud import make_cloud
from cityseg.fusion.config import FusionConfig
from cityseg.fusion.feed import CloudInput, FusionQueue, MaskInput
from cityseg.fusion.runner import FusionRunner
from cityseg.ros.core.messages import CameraInfoValues

CLASSES = [(7, "road"), (23, "sky"), (26, "car")]
MS = 1_000_000
INFO = CameraInfoValues.pinhole(48, 64, 90.0)


def _cloud(points):
    pts = np.asarray(points, np.float32)
    layout, data = make_cloud([("x", pts[:, 0]), ("y", pts[:, 1]), ("z", pts[:, 2])])
    return SimpleNamespace(fields=layout.fields, height=1, width=len(pts), point_step=layout.point_step,
                           row_step=layout.row_step, is_bigendian=False, is_dense=True,
                           data=np.frombuffer(data, np.uint8))


def _segmentation(value):
    """What the inference gives (classes and scores' confidence), as the node queues it."""
    return SimpleNamespace(classes=np.full((48, 64), value, np.uint8), has_confidence=True,
                           confidence_low=np.full((48, 64), 200, np.uint8))


def _extrinsics(tmp_path):
    path = tmp_path / "rig.yaml"
    path.write_text("- {parent: lidar, child: cam, translation: [0, 0, 0], rotation: [0, 0, 0, 1]}\n")
    return path


def test_the_extrinsics_file_is_read_once_when_the_config_is_made(tmp_path):
    path = _extrinsics(tmp_path)
    config = FusionConfig("/points", path, sync_tolerance_ms=20)
    path.unlink()  # nothing after this may read it again: the runner labels with what was read
    out = []
    runner = FusionRunner(config, CLASSES, ["cam"], out.append)
    runner.feed(MaskInput(0, 100 * MS, "cam", _segmentation(26), INFO))
    runner.feed(CloudInput(100 * MS, "lidar", _cloud([[0, 0, 5]]), tag="t"))
    runner.finish()
    rows = np.frombuffer(out[0].data, np.uint8).reshape(-1, out[0].layout.point_step)
    assert out[0].tag == "t" and rows[0, 12] == 26 and rows[0, 13] == 200  # label, confidence
    with pytest.raises(InputError, match="rig.yaml"):
        FusionConfig("/points", path)  # refused when made, naming the file
    assert config == FusionConfig("/points", path.with_name("rig.yaml"), sync_tolerance_ms=20,
                                  extrinsics=config.extrinsics)  # the tree is not part of the config's identity


def test_queue_feeds_the_runner_on_its_thread_and_drops_when_full(tmp_path):
    gate, fed = threading.Event(), []

    class SlowRunner:
        def feed(self, item):
            gate.wait(5)
            fed.append(item)

    said, errors = [], []
    q = FusionQueue(SlowRunner(), depth=2, on_drop=said.append, on_error=errors.append)
    q.start()
    items = [CloudInput(i, "lidar", None) for i in range(5)]
    results = [q.put(items[0])]
    for _ in range(100):  # the thread takes the first and waits in the runner
        if q._queue.empty():
            break
        threading.Event().wait(0.01)
    results += [q.put(item) for item in items[1:]]
    assert results == [True, True, True, False, False] and q.dropped == 2
    assert said == ["fusion is 2 inputs behind: an input was dropped"] * 2
    gate.set()
    q.stop()
    assert fed == items[:3] and errors == []


def test_a_failing_input_is_said_and_the_thread_serves_on():
    out, errors = [], []
    runner = FusionRunner(FusionConfig("/points"), CLASSES, ["cam"], out.append)
    q = FusionQueue(runner, depth=4, on_error=errors.append)
    q.start()
    q.put(MaskInput(5, 0, "cam", _segmentation(7)))  # no camera 5: IndexError in the runner
    q.put(MaskInput(0, 0, "cam", _segmentation(7), INFO))
    q.stop()
    assert len(errors) == 1 and errors[0].startswith("fusion failed: IndexError")
    assert runner.cameras[0].latest_ns == 0  # the next input was taken

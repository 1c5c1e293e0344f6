"""The real ``segmentation_node``'s compressed outputs over DDS (rclpy + Fast DDS, separate processes).

The node runs as its own process in the private, loopback-only graph of tests/ros/conftest.py and
this process subscribes to its raw and compressed outputs, as rviz or Foxglove would over Wi-Fi.
Needs rclpy: ``pip install -e .[ros]``.
"""

from __future__ import annotations

import signal
import time

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy", reason="needs rclpy: `pip install -e .[ros]` (ROS 2 Jazzy wheels) "
                                            "or a sourced ROS 2")

from cityseg.benchmarking.ros_probe import Probe, wait_until
from cityseg.benchmarking.ros_probe import diagnostic_totals as totals
from cityseg.ros.core.images import encode_rgb
from cityseg.ros.core.messages import RosbagsMessages
from cityseg.ros.core.processor import FrameProcessor, ProcessorConfig
from cityseg.ros.live.diagnostics import EVENTS

from support import start_node  # noqa: E402

SIZE = (1024, 2048)
COMPRESSED = ("mask/compressed", "overlay/compressed")


@pytest.fixture(scope="module")
def street():
    """A rendered 2048x1024 street scene (RGB), as a camera would send it."""
    from cityseg.synthetic.dataset import render_scene

    return render_scene(np.random.default_rng(17), *SIZE)[0]


def stream(probe: Probe, rgb: np.ndarray, count: int, rate_hz: float, first: int = 0) -> int:
    """Publish ``count`` rgb8 frames at ``rate_hz``, stamped on the same grid from frame ``first`` on."""
    start = time.monotonic()
    for i in range(first, first + count):
        time.sleep(max(0.0, start + (i - first) / rate_hz - time.monotonic()))
        stamp_ns = 1_700_000_000 * 10**9 + round(i * 1e9 / rate_hz)
        probe.publish(probe.msgs.image(probe.msgs.header(stamp_ns // 10**9, stamp_ns % 10**9, "cam"),
                                       encode_rgb(rgb, "rgb8")))
    return count


def raw_overlay(bundle, rgb: np.ndarray) -> np.ndarray:
    """The node's raw ~/overlay of ``rgb`` (rgb8), computed in this process by the same processor."""
    f = RosbagsMessages()
    proc = FrameProcessor.from_bundle(bundle, f, ProcessorConfig(id_space="trainid", outputs={"overlay"}),
                                      backend="onnxruntime")
    msg = proc.process(f.image(f.header(0, 0, "cam"), encode_rgb(rgb, "rgb8"))).messages["overlay"]
    return msg.data.reshape(msg.height, msg.width, 3)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def by_stamp(messages) -> dict:
    return {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in messages}


def test_compressed_outputs_over_dds_match_the_raw_ones_and_cost_nothing_unwatched(graph, bundle, street):
    node = start_node(graph, bundle, "/small")
    wanted = ("mask", *COMPRESSED)
    probe = Probe("/small", outputs=frozenset(wanted), history=wanted)
    try:
        assert probe.wait_connected(), node.output
        sent = stream(probe, street, 6, 4.0)
        diag = probe.wait_settled(sent, timeout=30.0)
        processed = totals(diag)["processed"]
        assert processed >= 2, (diag, node.output)
        record = probe.record.messages
        masks, pngs, jpegs = (by_stamp(record[s]) for s in wanted)
        assert set(pngs) == set(masks) == set(jpegs) and len(masks) == processed  # every frame, all three
        for stamp, png in pngs.items():
            assert png.format == "mono8; png compressed " and png.header.frame_id == "cam"
            decoded = cv2.imdecode(np.frombuffer(bytes(png.data), np.uint8), cv2.IMREAD_UNCHANGED)
            assert decoded.tobytes() == bytes(masks[stamp].data)  # lossless, byte for byte
        expected = raw_overlay(bundle, street)
        for jpeg in jpegs.values():
            assert jpeg.format == "rgb8; jpeg compressed bgr8"
            bgr = cv2.imdecode(np.frombuffer(bytes(jpeg.data), np.uint8), cv2.IMREAD_COLOR)
            assert psnr(bgr[..., ::-1], expected) >= 30.0
        raw_bytes = SIZE[0] * SIZE[1] * 4  # mono8 mask + rgb8 overlay
        small = np.mean([len(p.data) + len(j.data) for p, j in zip(pngs.values(), jpegs.values())])
        print(f"2048x1024 mask + overlay: {raw_bytes / 1e6:.1f} MB raw, {small / 1e6:.2f} MB compressed per frame")
        assert {int(diag[f"{s} published"]) for s in wanted} == {processed}

        for suffix in COMPRESSED:  # nobody on */compressed any more: nothing is encoded
            probe.forget(suffix)
        assert wait_until(lambda: probe.last_diagnostics().get("live outputs") == "mask", 10.0)
        before = probe.last_diagnostics()
        sent += stream(probe, street, 4, 4.0, first=6)
        diag = probe.wait_settled(sent, timeout=30.0)
        assert totals(diag)["processed"] > totals(before)["processed"], diag
        assert int(diag["mask published"]) == totals(diag)["processed"]
        assert all(diag[f"{s} published"] == before[f"{s} published"] for s in COMPRESSED)
        assert "color_mask/compressed published" not in diag and "color_mask published" not in diag
        assert set(totals(diag)) == set(EVENTS)
    finally:
        probe.close()
        code, _ = node.stop(signal.SIGINT)
    assert code == 0 and "Traceback" not in node.output, node.output

"""The real ``segmentation_node`` executable in a real ROS 2 graph (rclpy + Fast DDS, separate processes).

Each test starts the node as its own process, as ``ros2 launch`` does, and talks to it over DDS
from this process (cityseg.benchmarking.ros_probe). The graph is private and loopback-only
(tests/ros/conftest.py): a domain id of its own, ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``,
and the shipped large-images Fast DDS profile on both sides (as docs/ROS.md tells users to do).
Needs rclpy: ``pip install -e .[ros]`` (``make test`` installs it).
"""

from __future__ import annotations

import signal
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from cityseg.ros.core.images import encode_compressed, encode_rgb

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy", reason="needs rclpy: `pip install -e .[ros]` (ROS 2 Jazzy wheels) "
                                            "or a sourced ROS 2")

from cityseg.benchmarking.ros_probe import NodeProcess, Probe, graph_environment, percentile, wait_until  # noqa: E402
from cityseg.benchmarking.ros_probe import diagnostic_totals as totals
from cityseg.labels import class_space  # noqa: E402

from support import READY, camvid_bundle, camvid_scene, painted_scene, start_node  # noqa: E402


def stop(node: NodeProcess) -> str:
    code, _ = node.stop(signal.SIGINT)
    assert code == 0, node.output
    assert "Traceback" not in node.output, node.output
    return node.output


def frame(probe: Probe, rgb: np.ndarray, index: int, *, encoding: str = "rgb8", rate_hz: float = 10.0,
          frame_id: str = "cam"):
    """An Image (or CompressedImage for jpeg/png) stamped on a steady ``rate_hz`` grid."""
    stamp_ns = 1_700_000_000 * 10**9 + round(index * 1e9 / rate_hz)
    header = probe.msgs.header(stamp_ns // 10**9, stamp_ns % 10**9, frame_id)
    if encoding in ("jpeg", "png"):
        return probe.msgs.compressed_image(header, *encode_compressed(rgb, encoding))
    return probe.msgs.image(header, encode_rgb(rgb, encoding))


def camera_info(probe: Probe, msg, height: int, width: int):
    from cityseg.ros.core.messages import CameraInfoValues

    return probe.msgs.camera_info(msg.header, CameraInfoValues.pinhole(height, width))


def stream(probe: Probe, rgb: np.ndarray, count: int, rate_hz: float, *, skip=lambda i: False,
           encoding: str = "rgb8", with_info: bool = True, first: int = 0) -> int:
    """Publish ``count`` frames at ``rate_hz`` (stamps on the same grid, from frame ``first`` on);
    skipped ones are not sent."""
    height, width = rgb.shape[:2]
    if with_info:  # a camera driver publishes its CameraInfo before the first frame, too
        probe.info_pub.publish(camera_info(probe, frame(probe, rgb, 0), height, width))
        time.sleep(0.2)
    start, sent = time.monotonic(), 0
    for i in range(first, first + count):
        time.sleep(max(0.0, start + (i - first) / rate_hz - time.monotonic()))
        if skip(i):
            continue
        msg = frame(probe, rgb, i, encoding=encoding, rate_hz=rate_hz)
        probe.publish(msg, camera_info(probe, msg, height, width) if with_info else None)
        sent += 1
    return sent


MIDDLEWARE_DELIVERY = 0.8
"""Best-effort camera frames the node must receive at least (of those sent): the large-images
profile delivers all of them on a quiet machine, and without it 2048x1024 frames mostly never
arrive (6-19 of 80, docs/ROS.md); a frame Fast DDS drops under load is not the node's loss."""


def check_every_processed_frame_came_back(probe: Probe, diag: dict[str, str], sent: int) -> None:
    """The node accounts for every frame it received and every processed frame's outputs arrive
    (over reliable, deep subscriptions: lossless); best-effort frames lost inside Fast DDS before the
    node (``sent - received``) only need to stay rare."""
    t = totals(diag)
    assert sent >= t["received"] >= MIDDLEWARE_DELIVERY * sent, (t, sent)
    if t["received"] < sent:
        warnings.warn(f"{sent - t['received']} of {sent} best-effort frames lost in the middleware (machine under "
                      "load?); the node's own accounting is checked", stacklevel=2)
    assert t["processed"] + t["dropped"] + t["failed"] + t["errors"] == t["received"]
    published = set(probe.record.published)
    for suffix in ("mask", "color_mask", "overlay", "camera_info"):
        arrived = probe.record.outputs[suffix]
        assert len(arrived) == t["processed"], (suffix, len(arrived), t)
        assert {r.stamp for r in arrived} <= published and len({r.stamp for r in arrived}) == len(arrived)
        assert {r.frame_id for r in arrived} == {"cam"}


@pytest.mark.parametrize("size, rate_hz, seconds", [((1024, 2048), 10.0, 3.0), ((512, 1024), 30.0, 3.0)],
                         ids=["2048x1024@10Hz", "1024x512@30Hz"])
def test_large_frames_come_back_whole_on_every_output(graph, bundle, size, rate_hz, seconds):
    node = start_node(graph, bundle, "/big")
    probe = Probe("/big", keep=("mask",))
    try:
        assert probe.wait_connected(), node.output
        rgb, mask = painted_scene(*size, space_name="trainid", seed=5)
        sent = stream(probe, rgb, int(rate_hz * seconds), rate_hz)
        diag = probe.wait_settled(sent)
        check_every_processed_frame_came_back(probe, diag, sent)
        assert totals(diag)["processed"] >= sent // 2  # the node keeps up, or drops only the surplus
        last = probe.record.last_message["mask"]
        np.testing.assert_array_equal(np.frombuffer(bytes(last.data), np.uint8).reshape(size), mask)
        latency = probe.record.latencies_ms("mask")
        print(f"{size[1]}x{size[0]} @ {rate_hz:g} Hz: {sent} in, {len(latency)} masks, "
              f"latency p50 {percentile(latency, 50):.0f} ms p90 {percentile(latency, 90):.0f} ms")
        assert float(diag["upstream lost (%)"]) == 0.0
    finally:
        probe.close()
        output = stop(node)
    assert "ready in" in output and "Fast DDS runs without a profile" not in output
    assert output.count("~/label_info is off") <= 1


def test_outputs_are_built_only_while_someone_listens(graph, bundle):
    node = start_node(graph, bundle, "/lazy")
    probe = Probe("/lazy", outputs=frozenset())
    try:
        assert probe.wait_connected(), node.output
        rgb, mask = painted_scene(512, 1024, space_name="trainid", seed=2)
        sent = stream(probe, rgb, 5, 10.0)
        diag = probe.wait_settled(sent)  # nobody listens: nothing is segmented
        assert diag["live outputs"] == "none" and "idle" in diag["message"]
        assert totals(diag)["unwatched"] + totals(diag)["dropped"] == sent and totals(diag)["processed"] == 0

        probe.listen("mask")  # a mask consumer: the mask alone is built
        assert wait_until(lambda: probe.last_diagnostics().get("live outputs") == "mask", 10.0)
        sent += stream(probe, rgb, 10, 10.0, first=5)
        diag = probe.wait_settled(sent)
        processed = totals(diag)["processed"]
        assert processed >= 5 and int(diag["mask published"]) == probe.count("mask") == processed
        assert not any(f"{s} published" in diag for s in ("color_mask", "overlay", "camera_info"))

        probe.listen("overlay")  # a later overlay subscriber gets every frame from the next one on
        assert wait_until(lambda: probe.last_diagnostics().get("live outputs") == "mask, overlay", 10.0)
        sent += stream(probe, rgb, 10, 10.0, first=15)
        diag = probe.wait_settled(sent)
        after = totals(diag)["processed"] - processed
        assert after >= 5 and probe.count("overlay") == int(diag["overlay published"]) == after
        assert int(diag["mask published"]) == probe.count("mask") == totals(diag)["processed"]
        assert "color_mask published" not in diag
        overlays = probe.record.outputs["overlay"]
        assert {r.size for r in overlays} == {(512, 1024)} and {r.encoding for r in overlays} == {"rgb8"}
    finally:
        probe.close()
        stop(node)


@pytest.mark.parametrize("reliable", [False, True], ids=["best-effort camera", "reliable bag player"])
def test_cameras_and_bag_players_connect_with_the_default_parameters(graph, bundle, reliable):
    node = start_node(graph, bundle, "/qos")
    probe = Probe("/qos", reliable=reliable)
    try:
        assert probe.wait_connected(), node.output
        rgb, _ = painted_scene(128, 256, space_name="trainid", seed=1)
        sent = stream(probe, rgb, 10, 10.0)
        check_every_processed_frame_came_back(probe, probe.wait_settled(sent), sent)
    finally:
        probe.close()
        output = stop(node)
    assert "incompatible QoS" not in output


def test_compressed_input_and_a_corrupt_jpeg(graph, bundle):
    node = start_node(graph, bundle, "/jpeg", input_compressed=True)
    probe = Probe("/jpeg", compressed=True, keep=("mask",))
    try:
        assert probe.wait_connected(), node.output
        rgb, mask = painted_scene(256, 512, space_name="trainid", seed=2)
        good = frame(probe, rgb, 0, encoding="png")
        corrupt = frame(probe, rgb, 1, encoding="jpeg")
        corrupt.data = corrupt.data[: len(corrupt.data) // 3]  # a JPEG cut short on the wire
        probe.publish(corrupt)
        assert wait_until(lambda: totals(probe.last_diagnostics()).get("failed", 0) >= 1, 10.0), node.output
        probe.publish(good)
        assert wait_until(lambda: probe.count("mask") >= 1, 10.0)
        out = probe.record.last_message["mask"]
        np.testing.assert_array_equal(np.frombuffer(bytes(out.data), np.uint8).reshape(256, 512), mask)
    finally:
        probe.close()
        output = stop(node)
    assert "skipped an image" in output


@pytest.mark.parametrize("encoding, overlay_encoding", [("bgr8", "bgr8"), ("mono8", "rgb8"), ("yuv422", "rgb8")])
def test_other_camera_encodings(graph, bundle, encoding, overlay_encoding):
    node = start_node(graph, bundle, "/enc")
    probe = Probe("/enc", keep=("mask", "overlay"))
    try:
        assert probe.wait_connected(), node.output
        rgb, mask = painted_scene(128, 256, space_name="trainid", seed=4)
        sent = stream(probe, rgb, 5, 10.0, encoding=encoding)
        check_every_processed_frame_came_back(probe, probe.wait_settled(sent), sent)
        overlay = probe.record.last_message["overlay"]
        assert (overlay.height, overlay.width, overlay.encoding) == (128, 256, overlay_encoding)
        if encoding == "bgr8":  # lossless: the mask is exact
            out = np.frombuffer(bytes(probe.record.last_message["mask"].data), np.uint8).reshape(128, 256)
            np.testing.assert_array_equal(out, mask)
    finally:
        probe.close()
        stop(node)


def test_overload_keeps_the_latest_frame_and_bounded_latency(graph, bundle):
    rate_limit = 4.0  # the node segments at most 4 frames/s: a node four to eight times too slow
    node = start_node(graph, bundle, "/busy", max_rate_hz=rate_limit)
    probe = Probe("/busy")
    try:
        assert probe.wait_connected(), node.output
        rgb, _ = painted_scene(512, 1024, space_name="trainid", seed=6)
        sent = stream(probe, rgb, 90, 30.0)
        diag = probe.wait_settled(sent)
        t = totals(diag)
        # best effort on a starved CPU may lose a few frames in DDS: the node accounts for what it got
        assert t["received"] >= 0.9 * sent and t["processed"] + t["dropped"] == t["received"]
        assert t["dropped"] > t["received"] // 2
        latency = probe.record.latencies_ms("mask")
        frame_time_ms = 1e3 / rate_limit
        assert percentile(latency, 90) <= 2 * frame_time_ms, latency
        stamps = [r.stamp for r in probe.record.outputs["mask"]]
        assert stamps == sorted(stamps)  # always the newest frame, never a stale one from a queue
        assert float(diag["dropped rate (Hz)"]) > 0
    finally:
        probe.close()
        stop(node)


def malformed(probe: Probe, rgb: np.ndarray):
    """(what, message) pairs a broken driver could send."""
    def image(index: int, **fields):
        msg = frame(probe, rgb, index)
        for name, value in fields.items():
            setattr(msg, name, value)
        return msg

    half = image(3)
    half.data = half.data[: len(half.data) // 2]
    return [("wrong step", image(1, step=10)), ("unknown encoding", image(2, encoding="32FC7")),
            ("truncated data", half), ("0x0", image(4, height=0, width=0, step=0))]


def test_malformed_messages_are_reported_and_the_next_frame_is_segmented(graph, bundle):
    node = start_node(graph, bundle, "/bad", qos_reliability="reliable", qos_depth=10)  # none lost on the way
    probe = Probe("/bad", reliable=True, keep=("mask",))
    try:
        assert probe.wait_connected(), node.output
        rgb, mask = painted_scene(128, 256, space_name="trainid", seed=7)
        bad = malformed(probe, rgb)
        for i, (_, msg) in enumerate(bad):
            probe.publish(msg)
            assert wait_until(lambda i=i: totals(probe.last_diagnostics()).get("failed", 0) > i, 20.0), bad[i][0]
        diag = probe.last_diagnostics()
        assert diag["level"] == "1" and "malformed images" in diag["message"]
        probe.publish(frame(probe, rgb, 10))
        assert wait_until(lambda: probe.count("mask") == 1, 20.0), node.output
        out = np.frombuffer(bytes(probe.record.last_message["mask"].data), np.uint8).reshape(128, 256)
        np.testing.assert_array_equal(out, mask)
        assert node.process.poll() is None
    finally:
        probe.close()
        output = stop(node)
    assert "skipped an image" in output and "internal error" not in output


@pytest.mark.parametrize("params, message", [
    ({"overlay_alpha": 3.0}, "overlay_alpha must be within [0, 1]"),
    ({"qos_depth": 0}, "qos_depth must be >= 1"),
    ({"model": "/nonexistent/bundle"}, "/nonexistent/bundle"),
    ({"overlay_alpah": 0.3}, "unknown parameter(s) overlay_alpah (did you mean overlay_alpha?)"),
    ({"model": ""}, "model is required"),
])
def test_bad_parameters_or_a_missing_bundle_exit_2_with_one_clear_line(graph, bundle, params, message):
    node = NodeProcess("/cfg", {"model": str(bundle.path), "backend": "onnxruntime", **params}, env=graph)
    code = node.wait(30.0)
    assert code == 2, node.output
    lines = [line for line in node.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("segmentation_node: error:") and message in lines[0], lines
    assert "Traceback" not in node.output


@pytest.mark.parametrize("content, message", [
    (b"/**:\n  ros__parameters:\n    overlay_alpah: 0.3\n",
     "unknown parameter(s) overlay_alpah (did you mean overlay_alpha?)"),
    (b"/**:\n  ros__parameters:\n    overlay_alpha: \"\xff\xfe\"\n", "not a readable UTF-8 YAML params file"),
], ids=["typo", "not-utf8"])
def test_a_bad_params_file_exits_2_with_one_clear_line(graph, bundle, tmp_path, content, message):
    from cityseg.benchmarking.ros_probe import node_command

    params = tmp_path / "params.yaml"
    params.write_bytes(content)
    command = node_command("/pf", {"model": str(bundle.path), "backend": "onnxruntime"}) + [
        "--params-file", str(params)]
    node = NodeProcess("/pf", {}, env=graph, command=command)
    assert node.wait(30.0) == 2, node.output
    lines = [line for line in node.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("segmentation_node: error:") and message in lines[0], lines


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signals_end_the_node_cleanly_within_3_s(graph, bundle, sig):
    node = start_node(graph, bundle, "/sig")
    probe = Probe("/sig")
    try:
        assert probe.wait_connected(), node.output
        rgb, _ = painted_scene(512, 1024, space_name="trainid", seed=8)
        stream(probe, rgb, 10, 20.0)  # stopped while busy
        code, seconds = node.stop(sig, timeout=10.0)
    finally:
        probe.close()
    assert code == 0 and seconds < 3.0, (code, seconds, node.output)
    assert "Traceback" not in node.output


def test_two_nodes_in_two_namespaces_do_not_cross_talk(graph, bundle):
    nodes = [start_node(graph, bundle, ns) for ns in ("/left", "/right")]
    probes = [Probe(ns, name=f"probe_{ns[1:]}") for ns in ("/left", "/right")]
    try:
        assert all(p.wait_connected() for p in probes)
        rgb, _ = painted_scene(128, 256, space_name="trainid", seed=9)
        for i in range(6):
            for probe, frame_id in zip(probes, ("left_cam", "right_cam")):
                msg = frame(probe, rgb, i, frame_id=frame_id)
                probe.publish(msg, camera_info(probe, msg, 128, 256))
            time.sleep(0.1)
        for probe in probes:
            probe.wait_settled(6)
        for probe, frame_id in zip(probes, ("left_cam", "right_cam")):
            for suffix in ("mask", "color_mask", "overlay", "camera_info"):
                assert {r.frame_id for r in probe.record.outputs[suffix]} == {frame_id}, suffix
            assert totals(probe.last_diagnostics())["received"] == 6
    finally:
        for probe in probes:
            probe.close()
        for node in nodes:
            stop(node)


def test_two_nodes_with_one_name_are_warned_about(graph, bundle):
    """Two nodes /twin/segmentation: each input would give two masks on one topic; they say so."""
    first = start_node(graph, bundle, "/twin")
    second = start_node(graph, bundle, "/twin")
    try:
        warned = "another node is also named /twin/segmentation"
        # both say it: the first sees the second appear later (the graph is watched, not looked at once)
        assert wait_until(lambda: warned in first.output and warned in second.output, 20.0), second.output
    finally:
        for node in (first, second):
            stop(node)
    alone = start_node(graph, bundle, "/single")
    time.sleep(3.0)  # past the name check
    assert "another node is also named" not in stop(alone)


def test_frames_lost_upstream_are_estimated_and_warned_about(graph, bundle):
    # reliable on both sides: only the frames the test leaves out may be missing
    node = start_node(graph, bundle, "/lossy", stats_window=30.0, qos_reliability="reliable", qos_depth=20)
    probe = Probe("/lossy", reliable=True)
    try:
        assert probe.wait_connected(), node.output
        rgb, _ = painted_scene(128, 256, space_name="trainid", seed=10)
        sent = stream(probe, rgb, 60, 20.0, skip=lambda i: i % 4 == 3)  # the camera's every 4th frame is lost
        diag = probe.wait_settled(sent)
        assert totals(diag)["received"] == sent == 45
        # 15 frames lost: the first gap comes before the rate is known, the last (frame 59) is never
        # followed by a frame that would reveal it
        assert totals(diag)["upstream_lost"] == 13
        assert float(diag["upstream lost (%)"]) == pytest.approx(100 * 13 / 58, abs=0.01)
        assert diag["level"] == "1" and "never arrived" in diag["message"]
    finally:
        probe.close()
        output = stop(node)
    assert "were lost before they reached this node" in output and "Large images" in output


def write_jittered_bag(path: Path, rgb: np.ndarray, count: int, rate_hz: float, jitter: float) -> None:
    """A camera rosbag2 whose header stamps wobble by up to +-jitter of the period (a real driver's)."""
    from rosbags.rosbag2 import Writer

    from cityseg.ros.core.messages import RosbagsMessages

    factory, rng = RosbagsMessages(), np.random.default_rng(11)
    with Writer(path, version=9) as writer:
        conn = writer.add_connection("/replay/image", "sensor_msgs/msg/Image", typestore=factory.typestore)
        for i in range(count):
            stamp = 1_700_000_000 * 10**9 + round((i + rng.uniform(-jitter, jitter)) * 1e9 / rate_hz)
            msg = factory.image(factory.header(stamp // 10**9, stamp % 10**9, "cam"), encode_rgb(rgb, "rgb8"))
            writer.write(conn, stamp, factory.serialize(msg))


def play_bag(probe: Probe, path: Path) -> int:
    """Publish a rosbag2's raw CDR messages at their recorded pace, as `ros2 bag play` does."""
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        start, first, sent = time.monotonic(), None, 0
        for _, timestamp, raw in reader.messages():
            first = timestamp if first is None else first
            time.sleep(max(0.0, start + (timestamp - first) / 1e9 - time.monotonic()))
            probe.image_pub.publish(bytes(raw))
            sent += 1
    return sent


def test_steady_streams_and_a_jittery_bag_replay_report_no_upstream_loss(graph, bundle, tmp_path):
    rgb, _ = painted_scene(128, 256, space_name="trainid", seed=12)
    write_jittered_bag(tmp_path / "drive", rgb, 50, 20.0, jitter=0.15)
    # `ros2 bag play` is reliable; with a reliable, deep subscription nothing is really lost, so any
    # loss reported would be the jitter mistaken for gaps
    node = start_node(graph, bundle, "/replay", stats_window=30.0, qos_reliability="reliable", qos_depth=20)
    probe = Probe("/replay", reliable=True)
    try:
        assert probe.wait_connected(), node.output
        sent = play_bag(probe, tmp_path / "drive")
        diag = probe.wait_settled(sent)
        assert totals(diag)["received"] == sent == 50
        assert totals(diag)["upstream_lost"] == 0 and float(diag["upstream lost (%)"]) == 0.0
        assert diag["level"] == "0", diag
    finally:
        probe.close()
        output = stop(node)
    assert "lost before they reached" not in output


def test_parameters_are_described_and_a_qos_mismatch_is_explained(graph, bundle):
    from rcl_interfaces.srv import DescribeParameters

    node = start_node(graph, bundle, "/desc", qos_reliability="reliable")
    probe = Probe("/desc")  # a best-effort camera cannot feed a reliable subscription
    try:
        client = probe.node.create_client(DescribeParameters, "/desc/segmentation/describe_parameters")
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(DescribeParameters.Request(names=["backend", "publish_mask", "overlay_alpha"]))
        assert wait_until(future.done, 10.0)
        described = {d.name: d for d in future.result().descriptors}
        assert "onnxruntime" in described["backend"].additional_constraints
        assert described["publish_mask"].description.startswith("publish ~/mask")
        assert "[0, 1]" in described["overlay_alpha"].description and described["overlay_alpha"].read_only
        assert node.wait_for_output("incompatible QoS", 10.0), node.output
    finally:
        probe.close()
        output = stop(node)
    line = next(line for line in output.splitlines() if "incompatible QoS" in line)
    assert "/desc/image" in line and "RELIABILITY" in line.upper() and "qos_reliability" in line


def test_confidence_over_dds_and_an_argmax_model_that_cannot_give_it(graph, bundle, tmp_path):
    from support import make_palette_bundle

    node = start_node(graph, bundle, "/conf", publish_confidence=True)
    from cityseg.ros.core.outputs import DEFAULT_OUTPUTS

    probe = Probe("/conf", outputs=DEFAULT_OUTPUTS | {"confidence"}, keep=("confidence",))
    try:
        assert probe.wait_connected(), node.output
        rgb, _ = painted_scene(128, 256, space_name="trainid", seed=13)
        sent = stream(probe, rgb, 5, 10.0)
        diag = probe.wait_settled(sent)
        assert probe.count("confidence") == totals(diag)["processed"] == probe.count("mask")
        conf = probe.record.last_message["confidence"]
        assert (conf.height, conf.width, conf.encoding) == (128, 256, "mono8")
        assert np.frombuffer(bytes(conf.data), np.uint8).min() > 127
    finally:
        probe.close()
        stop(node)
    argmax_only = make_palette_bundle(tmp_path / "argmax", "trainid", 64, 128, formats=("onnx_argmax",))
    node = start_node(graph, argmax_only, "/noconf", publish_confidence=True)
    output = stop(node)
    line = next(line for line in output.splitlines() if "~/confidence is off" in line)
    assert "argmax head" in line and "--confidence" in line


def test_without_vision_msgs_or_a_profile_the_node_says_so_once(graph, bundle):
    try:
        import vision_msgs  # noqa: F401
        has_vision_msgs = True
    except ImportError:
        has_vision_msgs = False
    env = graph_environment(int(graph["ROS_DOMAIN_ID"]), None, base=graph)
    node = NodeProcess("/plain", {"model": str(bundle.path), "backend": "onnxruntime"}, env=env)
    assert node.wait_for_output(READY, 30.0), node.output
    output = stop(node)
    assert output.count("Fast DDS runs without a profile") == 1
    assert output.count("~/label_info is off") == (0 if has_vision_msgs else 1)


def test_the_node_runs_a_camvid_bundle_with_its_ids_and_colours(graph, tmp_path):
    bundle = camvid_bundle(tmp_path / "camvid", 96, 128)
    node = start_node(graph, bundle, "/camvid", id_space="auto")
    probe = Probe("/camvid", keep=("mask", "color_mask"))
    try:
        assert probe.wait_connected(), node.output
        rgb, annotation = camvid_scene(96, 128, seed=4)
        sent = stream(probe, rgb, 3, 5.0)
        probe.wait_settled(sent)
        mask_msg, color_msg = probe.record.last_message["mask"], probe.record.last_message["color_mask"]
        mask = np.frombuffer(bytes(mask_msg.data), np.uint8).reshape(96, 128)
        scored = annotation < 11   # the void block is painted black: whatever class is nearest
        np.testing.assert_array_equal(mask[scored], annotation[scored])
        assert color_msg.encoding == "rgb8"
        colours = np.frombuffer(bytes(color_msg.data), np.uint8).reshape(96, 128, 3)
        np.testing.assert_array_equal(colours, class_space("camvid").palette[mask])
    finally:
        probe.close()
        stop(node)


def test_an_imported_uint8_tflite_gives_confidence_through_its_float_twin(graph, tmp_path):
    """A quantised TFLite (ids out, like the pulled Coral model): the node takes its float twin where
    confidence is asked for, so ~/confidence is published over DDS like for a bundle of ours."""
    from tflite_models import SIZE, build_tflite

    from cityseg.acquisition.importer import ImportOptions, import_onnx
    from cityseg.labels import class_space as space
    from cityseg.ros.core.outputs import DEFAULT_OUTPUTS

    tflite = build_tflite(tmp_path / "seg_int8.tflite", int8=True)
    bundle = import_onnx(tflite, tmp_path / "imported", space("trainid"),
                         ImportOptions(channel_order="RGB", resize="nearest"))
    assert bundle.card.artifacts["onnx_quantized"].output == "argmax"  # the publisher's graph: no scores
    node = start_node(graph, bundle, "/twin", publish_confidence=True)
    probe = Probe("/twin", outputs=DEFAULT_OUTPUTS | {"confidence"}, keep=("confidence", "mask"))
    try:
        assert probe.wait_connected(), node.output
        rgb, _ = painted_scene(SIZE[0] * 2, SIZE[1] * 2, space_name="trainid", seed=3)
        sent = stream(probe, rgb, 4, 5.0)
        diag = probe.wait_settled(sent)
        assert probe.count("confidence") == totals(diag)["processed"] == probe.count("mask") > 0
        conf = probe.record.last_message["confidence"]
        assert (conf.height, conf.width, conf.encoding) == (SIZE[0] * 2, SIZE[1] * 2, "mono8")
    finally:
        probe.close()
        output = stop(node)
    assert "~/confidence is off" not in output

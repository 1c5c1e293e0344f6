"""The real ``segmentation_node`` as a managed (lifecycle) node, driven over DDS through its own
``~/change_state`` and ``~/get_state`` services, as ``ros2 lifecycle set``, launch_ros' ChangeState
events and Nav2's lifecycle manager drive it."""

from __future__ import annotations

import signal
import time

import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy", reason="needs rclpy: `pip install -e .[ros]` (ROS 2 Jazzy wheels) "
                                            "or a sourced ROS 2")
pytest.importorskip("lifecycle_msgs.srv", reason="needs lifecycle_msgs (ros-jazzy-lifecycle-msgs)")

from lifecycle_msgs.msg import Transition  # noqa: E402

from cityseg.benchmarking.ros_probe import NodeProcess, Probe, wait_until  # noqa: E402
from cityseg.benchmarking.ros_probe import diagnostic_totals as totals
from cityseg.ros.core.images import encode_rgb  # noqa: E402

from support import Lifecycle, painted_scene  # noqa: E402


@pytest.fixture(scope="module")
def big_bundle(tmp_path_factory):
    """The palette classifier at 512x1024: its runtime holds ~50 MB of activations after a frame."""
    from support import make_palette_bundle

    return make_palette_bundle(tmp_path_factory.mktemp("big") / "palette", "trainid", 512, 1024)


def start(graph, bundle, namespace: str, **params) -> NodeProcess:
    values = {"model": str(bundle.path), "backend": "onnxruntime", "id_space": "trainid", "autostart": False,
              "diagnostics_period": 0.25, "log_period": 0.0, **params}
    node = NodeProcess(namespace, values, env=graph)
    assert node.wait_for_output("waiting for a lifecycle manager", 30.0), node.output
    return node


def rss_mb(node: NodeProcess) -> float:
    with open(f"/proc/{node.process.pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def send(probe: Probe, rgb, count: int, first: int) -> None:
    for i in range(first, first + count):
        header = probe.msgs.header(1_700_000_000 + i, 0, "cam")
        probe.publish(probe.msgs.image(header, encode_rgb(rgb, "rgb8")))
        time.sleep(0.1)


def test_every_transition_over_the_lifecycle_services(graph, big_bundle):
    node = start(graph, big_bundle, "/managed")
    probe = Probe("/managed", outputs=frozenset({"mask"}))
    try:
        lifecycle = Lifecycle(probe)
        rgb, _ = painted_scene(128, 256, space_name="trainid", seed=1)
        assert lifecycle.state() == "unconfigured"
        assert "ros2 lifecycle set /managed/segmentation configure" in node.output
        unconfigured_rss = rss_mb(node)

        assert lifecycle.set(Transition.TRANSITION_CONFIGURE) and lifecycle.state() == "inactive"
        configured_rss = rss_mb(node)
        send(probe, rgb, 5, 0)  # inactive: nobody subscribes to the camera, nothing comes out
        assert wait_until(lambda: probe.last_diagnostics().get("lifecycle state") == "inactive", 10.0)
        assert "inactive" in probe.last_diagnostics()["message"] and probe.count("mask") == 0

        assert lifecycle.set(Transition.TRANSITION_ACTIVATE) and lifecycle.state() == "active"
        assert wait_until(lambda: probe.image_pub.get_subscription_count() > 0, 10.0)
        send(probe, rgb, 5, 5)
        assert wait_until(lambda: probe.count("mask") >= 3, 10.0), node.output

        assert lifecycle.set(Transition.TRANSITION_DEACTIVATE) and lifecycle.state() == "inactive"
        seen = probe.count("mask")
        send(probe, rgb, 5, 10)
        time.sleep(0.5)
        assert probe.count("mask") == seen  # no frame processed, nothing published
        assert wait_until(lambda: probe.last_diagnostics().get("lifecycle state") == "inactive", 10.0)

        assert lifecycle.set(Transition.TRANSITION_ACTIVATE)  # and back: outputs again
        assert wait_until(lambda: probe.image_pub.get_subscription_count() > 0, 10.0)
        send(probe, rgb, 5, 15)
        assert wait_until(lambda: probe.count("mask") >= seen + 3, 10.0)
        assert totals(probe.last_diagnostics())["processed"] >= 6

        assert lifecycle.set(Transition.TRANSITION_DEACTIVATE)
        assert lifecycle.set(Transition.TRANSITION_CLEANUP) and lifecycle.state() == "unconfigured"
        cleaned_rss = rss_mb(node)
        print(f"RSS unconfigured {unconfigured_rss:.0f} MB, configured {configured_rss:.0f} MB, "
              f"after cleanup {cleaned_rss:.0f} MB")
        assert configured_rss - unconfigured_rss > 40  # the model, its runtime and the warm-up's buffers...
        assert cleaned_rss < configured_rss - 30  # ...given back (the runtime's libraries stay loaded)

        assert lifecycle.set(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN) and lifecycle.state() == "finalized"
    finally:
        probe.close()
        code, _ = node.stop(signal.SIGINT)
    assert code == 0 and "Traceback" not in node.output, node.output


def test_a_bad_model_fails_configure_not_the_process(graph, bundle, tmp_path):
    node = start(graph, bundle, "/badmodel", model=str(tmp_path / "missing"))
    probe = Probe("/badmodel", outputs=frozenset({"mask"}))
    try:
        lifecycle = Lifecycle(probe)
        assert not lifecycle.set(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.state() == "unconfigured" and node.process.poll() is None
        assert node.wait_for_output("configure failed:", 5.0)
        errors = [line for line in node.output.splitlines() if "configure failed" in line]
        assert len(errors) == 1 and "missing" in errors[0] and "Traceback" not in node.output
    finally:
        probe.close()
        code, _ = node.stop(signal.SIGTERM)
    assert code == 0, node.output


def test_autostart_is_the_default_and_a_bad_model_still_exits_2(graph, bundle, tmp_path):
    node = NodeProcess("/auto", {"model": str(tmp_path / "missing"), "backend": "onnxruntime"}, env=graph)
    assert node.wait(30.0) == 2
    lines = [line for line in node.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "missing" in lines[0], node.output

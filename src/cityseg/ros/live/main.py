"""``segmentation_node``'s entry point: rclpy set up, the node spun until SIGINT/SIGTERM (rclpy imported
here lazily, so a missing ROS installation is one line, not a traceback)."""

from __future__ import annotations

import signal
import sys
import threading

from cityseg.errors import CitysegError
from cityseg.ros.core.outputs import NODE_EXECUTABLE
from cityseg.ros.live.frame_memory import retain_frame_memory
from cityseg.ros.live.rcl_args import ros_arguments_problem, stderr_without


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``segmentation_node`` console script: 0 on SIGINT/SIGTERM, 2 on bad setup.

    The node handles SIGINT and SIGTERM itself (rclpy's handlers would shut the context down under
    a frame still being published): the signal ends the spin loop, then the inference thread
    finishes its frame, then the node and the context go.
    """
    try:
        import rclpy
        from rclpy.signals import SignalHandlerOptions
    except ImportError as exc:
        print(f"{NODE_EXECUTABLE}: error: {exc}; source a ROS 2 installation (source "
              "/opt/ros/$ROS_DISTRO/setup.bash) or `pip install cityseg[ros]`", file=sys.stderr)
        return 2

    retain_frame_memory()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    from rclpy.impl.implementation_singleton import rclpy_implementation

    try:
        with stderr_without("Failed to parse global arguments"):  # said below, in one line
            rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except rclpy_implementation.RCLError as exc:  # an unparsable -p rule or params file
        print(f"{NODE_EXECUTABLE}: error: {ros_arguments_problem(str(exc))}", file=sys.stderr)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        return 2
    try:
        try:
            # lazy: the node module imports rclpy (the ros extra), checked just above
            from cityseg.ros.live.node import SegmentationNode

            segmentation = SegmentationNode()
        except CitysegError as exc:  # autostart: a failed configure ends the process, as before
            print(f"{NODE_EXECUTABLE}: error: {exc}", file=sys.stderr)
            return 2
        except ImportError as exc:  # a message package (sensor_msgs, diagnostic_msgs) is missing
            print(f"{NODE_EXECUTABLE}: error: {exc}; install the ROS dependencies with `rosdep install "
                  "--from-paths src -y --ignore-src`", file=sys.stderr)
            return 2
        try:
            _spin_until(segmentation, stop)
        finally:
            segmentation.close()
        return 0
    finally:
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _spin_until(node, stop: threading.Event) -> None:
    """Serve the node's callbacks until ``stop`` is set or the context shuts down."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        pass
    finally:
        executor.shutdown(timeout_sec=1.0)


if __name__ == "__main__":
    sys.exit(main())

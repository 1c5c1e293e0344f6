"""Benchmarking: what `cityseg bench` and the scripts in ``benchmarks/`` share.

* :mod:`cityseg.benchmarking.harness` - per-stage latency of the frame path (``cityseg bench``).
* :mod:`cityseg.benchmarking.baseline` - the original study's approach, timed as the baseline.
* :mod:`cityseg.benchmarking.fixtures` - the camera frame and random-weight / imported-style bundles.
* :mod:`cityseg.benchmarking.report` - result rows, markdown table, RESULT line, machine description,
  and the doc patcher that refreshes a table between markers.
* :mod:`cityseg.benchmarking.timing` - median wall time of repeated calls.

Model facts (parameters, GFLOPs) are :mod:`cityseg.models.profile`; the ROS graph probe used by the
node tests and ``benchmarks/ros_graph.py`` is still :mod:`cityseg.ros.probe`.
"""

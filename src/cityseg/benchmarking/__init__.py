"""Benchmarking: what `cityseg bench` and the scripts in ``benchmarks/`` share.

* :mod:`cityseg.benchmarking.harness` - per-stage latency of the frame path (``cityseg bench``).
* :mod:`cityseg.benchmarking.baseline` - the original study's approach, timed as the baseline.
* :mod:`cityseg.benchmarking.fixtures` - the camera frame and random-weight / imported-style bundles.
* :mod:`cityseg.benchmarking.report` - result rows, markdown table, RESULT line, machine description,
  and the doc patcher that refreshes a table between markers.
* :mod:`cityseg.benchmarking.timing` - median wall time of repeated calls.

* :mod:`cityseg.benchmarking.ros_probe` - a camera and an output recorder around a real
  ``segmentation_node`` process over DDS (the node tests, ``benchmarks/ros_graph.py``,
  ``benchmarks/camera_rig.py``).

Model facts (parameters, GFLOPs) are :mod:`cityseg.models.profile`.
"""

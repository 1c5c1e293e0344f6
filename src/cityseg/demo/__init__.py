"""`cityseg demo`: the whole product on generated data (what `make demo` runs). The stages are
:mod:`cityseg.demo.run`, the report and overlay strip :mod:`cityseg.demo.report`."""

from cityseg.demo.run import MARKER, DemoOutputs, DemoSettings, run_demo

__all__ = ["MARKER", "DemoOutputs", "DemoSettings", "run_demo"]

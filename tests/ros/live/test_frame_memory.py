"""Frame buffers reuse warm pages once the node has tuned glibc's allocator (in a fresh process)."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
import numpy as np
from cityseg.ros.core.cdr import ImageBuffer
from cityseg.ros.live.frame_memory import retain_frame_memory
tuned = retain_frame_memory() if sys.argv[1] == "tuned" else False

def frame():
    outs = [ImageBuffer(1, 2, "cam", 1024, 2048, enc, ch) for enc, ch in (("mono8", 1), ("rgb8", 3), ("rgb8", 3))]
    for out in outs:
        out.pixels.fill(7)
    return [out.message() for out in outs]

for _ in range(3):
    frame()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    frame()
print(tuned, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def faults_per_frame(mode: str) -> tuple[str, float]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    tuned, faults = done.stdout.split()
    return tuned, float(faults)


def test_tuned_heap_faults_no_pages_per_frame():
    tuned, faults = faults_per_frame("tuned")
    if tuned != "True":
        pytest.skip("not glibc: the allocator cannot be tuned here")
    assert faults < 50  # 14 MiB of outputs per frame: ~3,500 page faults without the tuning
    _, default_faults = faults_per_frame("default")
    assert default_faults > 10 * max(faults, 1.0)

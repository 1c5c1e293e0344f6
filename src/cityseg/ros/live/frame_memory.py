"""Keep the pages of freed frame buffers mapped, so every frame reuses warm memory (glibc). No ROS.

Each frame the node allocates megabytes: the received CDR bytes, the output messages, OpenCV and
ONNX Runtime results. glibc serves allocations above its mmap threshold with fresh mappings and
returns freed heap tops to the kernel above its trim threshold, so at 2048x1024 every output page
was faulted in again on every frame (~3,500 minor faults per frame with three image outputs,
measured here). Raising both thresholds keeps those buffers on the heap and their pages mapped:
0 faults per frame after the first, and the postprocess ~25 % faster on this machine
(docs/PERFORMANCE.md). The cost is that up to ``TRIM_THRESHOLD`` bytes of freed heap stay resident.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc's mallopt parameter numbers (malloc.h)."""
MMAP_THRESHOLD = 64 << 20
"""Allocations below this come from the heap (a 2048x1024 rgb8 frame is 6 MiB)."""
TRIM_THRESHOLD = 256 << 20
"""Freed heap is returned to the kernel only above this much."""
DISABLE_VARIABLE = "CITYSEG_KEEP_FRAME_MEMORY"
"""Set to 0 to leave glibc's defaults."""


def retain_frame_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where that is not possible
    (not glibc, or disabled with CITYSEG_KEEP_FRAME_MEMORY=0)."""
    if os.environ.get(DISABLE_VARIABLE, "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, macOS, Windows: nothing to tune
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def release_freed_memory() -> bool:
    """Give freed heap memory back to the kernel now (after a model is unloaded); False where
    glibc's malloc_trim is not available."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False

"""ONNX Runtime's CPU session as cityseg runs it, for the backend and the converter's checks alike:
all graph optimisations, no spinning threads, exact int8 kernels where a file needs them.
onnxruntime is imported by the function that builds the options (an optional dependency).
"""

from __future__ import annotations

EXACT_INT8 = ("session.x64quantprecision", "1")
"""ONNX Runtime's session entry for int8 kernels that cannot overflow: on x86 without VNNI (AVX2,
AVX-512 without VNNI) its fast U8S8 kernels sum pairs of uint8 x int8 products in int16, which
saturates with 8-bit weights (silently wrong masks: the palette test model fell to 44-89 % pixel
agreement on this project's non-VNNI AMD EPYC); with this entry they use U8U8 (slower). Files with
7-bit weights (``cityseg export --precision int8`` tries those first) cannot saturate and do not
need it."""


def cpu_session_options(exact_int8: bool = False, optimized: bool = True):
    """ONNX Runtime CPU session options as the inference backend uses them: all graph optimizations,
    no busy-waiting after a run (the cores are needed at once by postprocessing and, in the node, by
    the ROS executor: spinning threads slowed the frame around inference by ~2x), and
    :data:`EXACT_INT8` when ``exact_int8``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if exact_int8:
        options.add_session_config_entry(*EXACT_INT8)
    return options


def needs_exact_int8(artifact) -> bool:
    """Does ``artifact`` (a card entry) need :data:`EXACT_INT8`: int8 with 8-bit weights (cards
    written before ``weight_bits`` was recorded had 8-bit weights)?"""
    return artifact.precision == "int8" and artifact.details.get("weight_bits", 8) == 8

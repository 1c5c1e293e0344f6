"""Which CPU backend runs which of the bundle's ONNX artifacts: the documented ``auto`` rule.

1. Only artifacts that may be picked: fp32, or a reduced precision whose accuracy gate passed at
   export (``Artifact.gated``); an entry bound to one runtime (bf16: OpenVINO) only on that one.
2. Each (backend, precision) pair is scored by its latency relative to fp32 ONNX Runtime, both
   measured in the same export run on this machine (``details['latency_ms']`` of the precision
   artifacts, keys ``<backend>:<precision>``). fp32 on ONNX Runtime scores 1.0 by definition.
3. The lowest score wins, so a reduced-precision artifact is chosen only where it measured faster
   than fp32 ONNX Runtime, and by a clear margin: one scoring above ``MIN_GAIN`` (less than 10 %
   faster: within the noise of a one-frame measurement) is not worth its accuracy cost and ranks
   after every fp32 pair. A pair never measured scores after every measured one (fp32 ONNX Runtime
   first among those). Within a pair, :func:`cityseg.inference.backends.pick_artifact`'s order
   (confidence if needed, tensor I/O before fused, the argmax head) decides.
"""

from __future__ import annotations

import math

from cityseg.bundle import Artifact, Bundle

CPU_BACKENDS = ("onnxruntime", "openvino")
BASELINE = "onnxruntime:fp32"
MIN_GAIN = 0.9
"""A reduced precision must measure at most this fraction of fp32 ONNX Runtime's latency to be picked."""


def relative_latency(bundle: Bundle) -> dict[str, float]:
    """{'<backend>:<precision>': latency / fp32 ONNX Runtime latency of the same export run}."""
    ratios = {BASELINE: 1.0}
    for artifact in bundle.card.artifacts.values():
        timings = artifact.details.get("latency_ms") or {}
        base = timings.get(BASELINE)
        if not base or not artifact.gated:
            continue
        for pair, ms in timings.items():
            if pair == BASELINE or not ms:
                continue
            if pair.endswith(":fp32") or pair.endswith(f":{artifact.precision}"):
                ratios[pair] = min(ratios.get(pair, math.inf), ms / base)
    return ratios


def runnable(artifact: Artifact, backend: str) -> bool:
    """May ``backend`` run ``artifact`` as the card records it (gated, and its runtime if bound)?"""
    return artifact.format == "onnx" and artifact.gated and artifact.runtime in (None, backend)


def choose(bundle: Bundle, backends: list[str]) -> tuple[str, str] | None:
    """(backend, precision) to run: the lowest relative latency among ``backends`` and the bundle's
    pickable ONNX artifacts (None when none of them has any)."""
    ratios = relative_latency(bundle)
    pairs = {(b, a.precision) for b in backends for a in bundle.artifacts("onnx").values() if runnable(a, b)}
    if not pairs:
        return None
    unmeasured = [(b, p) for b, p in [("onnxruntime", "fp32")] + sorted(pairs) if (b, p) in pairs]

    def score(pair: tuple[str, str]) -> tuple[bool, float, int]:
        ratio = ratios.get(f"{pair[0]}:{pair[1]}", math.inf)
        return pair[1] != "fp32" and not ratio <= MIN_GAIN, ratio, unmeasured.index(pair)

    return min(pairs, key=score)

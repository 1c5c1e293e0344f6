"""Backend registry: pick a backend by name, or the fastest one that can run here.

``auto`` tries TensorRT (needs an engine, TensorRT and a GPU), then the CPU backends - ONNX Runtime
and OpenVINO, whichever are installed - with the bundle's gated ONNX artifacts, by the rule of
:mod:`cityseg.inference.backends.choice` (the lowest latency measured at export relative to fp32
ONNX Runtime; nothing ungated), then TensorFlow (needs ``model.keras``). A named CPU backend
applies the same rule to its own artifacts.
"""

from __future__ import annotations

import importlib

from cityseg.bundle import Bundle
from cityseg.errors import BackendUnavailable, CitysegError
from cityseg.inference.backends import choice
from cityseg.inference.backends.base import Backend
from cityseg.inference.backends.choice import CPU_BACKENDS

BACKENDS = {
    "tensorrt": "cityseg.inference.backends.tensorrt:TensorRTBackend",
    "onnxruntime": "cityseg.inference.backends.onnxruntime:OnnxRuntimeBackend",
    "openvino": "cityseg.inference.backends.openvino:OpenVinoBackend",
    "tensorflow": "cityseg.inference.backends.tensorflow:TensorFlowBackend",
}
AUTO_ORDER = ("tensorrt", "onnxruntime", "openvino", "tensorflow")
BACKEND_CHOICES = ("auto",) + tuple(BACKENDS)


def backend_class(name: str) -> type[Backend]:
    """The Backend subclass registered as ``name``."""
    if name not in BACKENDS:
        raise CitysegError(f"unknown backend {name!r}; use one of {', '.join(BACKEND_CHOICES)}")
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


FUSED_IO_PREFERRED = {"tensorrt": False, "onnxruntime": False, "openvino": False, "tensorflow": False}
"""Whether the automatic pick prefers a fused-I/O artifact (uint8 camera frame in, mask out) over the
unfused ones, per backend. Only where it measured faster: on ONNX Runtime's CPU provider it measured
slower (benchmarks/fused_io.py, docs/EXPORT.md "Fused I/O"); on a GPU it is not measured here, so not
preferred either. Choose a fused artifact by name (``artifact=``) to run it."""


PICKED_PRECISION = {"onnx": "fp32", "keras": "fp32", "tensorrt": None}
"""The precision :func:`pick_artifact` looks for by default, per format (what each artifact records:
:mod:`cityseg.bundle.precision`). None: any gated one - an engine computes in the precision its
export chose. The CPU backends choose theirs by measured latency (:func:`open_cpu_backend`)."""


def pick_artifact(bundle: Bundle, fmt: str, need_confidence: bool = False, *, io: str | None = None,
                  prefer_fused: bool = False, precision: str | None = "", backend: str | None = None) -> str | None:
    """The bundle's artifact of ``fmt`` and ``precision`` (default: :data:`PICKED_PRECISION`; None: any)
    to run (gated, and runnable by ``backend`` when given): an argmax-head variant first (less data
    out); with ``need_confidence``, one that gives a per-pixel confidence first (scores, or an argmax
    head with a confidence output). Fused-I/O artifacts come after the others unless
    ``prefer_fused``; ``io`` ('tensor' or 'fused') keeps only that kind."""
    precision = PICKED_PRECISION.get(fmt, "fp32") if precision == "" else precision
    candidates = {k: a for k, a in bundle.artifacts(fmt).items()
                  if (io is None or a.io == io) and precision in (None, a.precision) and a.gated
                  and (backend is None or a.runtime in (None, backend))}
    if not candidates:
        return None

    def rank(key: str) -> tuple[int, int, int]:
        artifact = candidates[key]
        confident = gives_confidence(artifact)
        return (0 if confident or not need_confidence else 1, 0 if artifact.fused == prefer_fused else 1,
                0 if artifact.output == "argmax" else 1)

    return min(candidates, key=rank)


def gives_confidence(artifact) -> bool:
    """True when the artifact yields a per-pixel confidence (scores, or an argmax head with one)."""
    return artifact.output != "argmax" or bool(artifact.confidence)


def unavailable_reason(bundle: Bundle, name: str, io: str | None = None) -> str | None:
    """Why backend ``name`` cannot run ``bundle`` (artifacts of ``io`` kind, if given) here (None when it can)."""
    cls = backend_class(name)
    reason = cls.unavailable_reason()
    if reason:
        return reason
    if pick_artifact(bundle, cls.format, io=io) is None:
        hint = {"onnx": "run `cityseg export BUNDLE --onnx`",
                "tensorrt": "run `cityseg export BUNDLE --tensorrt` on the target GPU",
                "keras": "this bundle was exported without its Keras model"}[cls.format]
        return f"the bundle has no {cls.format} model ({hint})"
    return None


def open_backend(bundle: Bundle, name: str = "auto", artifact: str | None = None, *,
                 need_confidence: bool = False, io: str | None = None) -> Backend:
    """Open the backend ``name`` (or the first usable one for 'auto') on ``bundle``; see
    :func:`pick_artifact` for ``need_confidence`` and ``io``."""
    if artifact is not None:
        if artifact not in bundle.card.artifacts:
            raise CitysegError(f"{bundle.path}: no artifact {artifact!r}; it has "
                               f"{', '.join(bundle.card.artifacts) or 'none'}")
        fmt = bundle.card.artifacts[artifact].format
        name = next(n for n in AUTO_ORDER if backend_class(n).format == fmt) if name == "auto" else name
    if name == "auto":
        reasons = []
        cpu = [n for n in CPU_BACKENDS if unavailable_reason(bundle, n, io) is None]
        for candidate in AUTO_ORDER:
            why = unavailable_reason(bundle, candidate, io)
            if why is None:
                if candidate in CPU_BACKENDS:
                    return open_cpu_backend(bundle, cpu, need_confidence, io)
                return open_backend(bundle, candidate, need_confidence=need_confidence, io=io)
            reasons.append(f"{candidate}: {why}")
        raise BackendUnavailable(f"{bundle.path}: no backend can run this bundle here - "
                                 + "; ".join(reasons))
    why = unavailable_reason(bundle, name, io) if artifact is None else backend_class(name).unavailable_reason()
    if why:
        raise BackendUnavailable(f"backend {name} cannot run {bundle.path}: {why}")
    if artifact is None and name in CPU_BACKENDS:
        return open_cpu_backend(bundle, [name], need_confidence, io)
    cls = backend_class(name)
    return cls(bundle, artifact or pick_artifact(bundle, cls.format, need_confidence, io=io,
                                                 prefer_fused=FUSED_IO_PREFERRED.get(name, False)))


def open_cpu_backend(bundle: Bundle, backends: list[str], need_confidence: bool, io: str | None) -> Backend:
    """The CPU backend and precision :func:`cityseg.inference.backends.choice.choose` picks, on its
    artifact; fp32 on the first of ``backends`` when that precision has no artifact of the wanted kind."""
    chosen = choice.choose(bundle, backends)
    tries = ([chosen] if chosen else []) + [(backends[0], "fp32")]
    # with need_confidence, a slower precision that gives confidence beats a faster one that cannot
    # (an imported quantised graph ends in ArgMax; its float twin gives the scores)
    for only_confident in ((True, False) if need_confidence else (False,)):
        for name, precision in tries:
            key = pick_artifact(bundle, "onnx", need_confidence, io=io, precision=precision, backend=name,
                                prefer_fused=FUSED_IO_PREFERRED.get(name, False))
            if key is not None and (not only_confident or gives_confidence(bundle.card.artifacts[key])):
                return backend_class(name)(bundle, key)
    raise BackendUnavailable(f"{bundle.path}: no ONNX artifact that {backends[0]} can run here")

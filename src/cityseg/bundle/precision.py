"""The precision vocabulary: the names, what each needs and runs on, how an artifact records it.

Every model file of a bundle records the numbers it computes in as its card entry's ``precision``
(:attr:`cityseg.bundle.card.Artifact.precision`): an fp16 or int8 ONNX says so, and so does a
TensorRT engine built from one (a strongly typed engine computes in its ONNX's types). The
automatic choice of artifact and backend reads that field and nothing else; a reduced precision is
picked only once its accuracy gate passed (:attr:`Artifact.gated`).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

from cityseg.errors import InputError

Precision = Literal["fp32", "fp16", "int8", "bf16"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
"""Every precision a card entry may record, fp32 first."""


@dataclass(frozen=True)
class PrecisionRule:
    """What one precision means for the converter and the runtimes."""

    name: str
    needs_calibration: bool
    """int8: activation ranges measured on calibration frames (`--calib-images` / `--calib-data`)."""
    own_file: bool
    """Written as its own ONNX (``model_<name>.onnx``); bf16 is a record of the fp32 ONNX."""
    runtimes: tuple[str, ...]
    """The backends that run an artifact of this precision as recorded."""
    parity_threshold: float
    """Minimum argmax agreement with fp32 (int8 is quantised on purpose: 99 %)."""
    tie_margin: float
    """Top-2 score margin under which the fp32 reference has no preferred class."""


RULES: dict[str, PrecisionRule] = {
    "fp32": PrecisionRule("fp32", False, True, ("onnxruntime", "openvino", "tensorrt", "tensorflow"), 0.999, 1e-4),
    "fp16": PrecisionRule("fp16", False, True, ("onnxruntime", "openvino", "tensorrt"), 0.999, 2e-3),
    "int8": PrecisionRule("int8", True, True, ("onnxruntime", "openvino", "tensorrt"), 0.99, 1e-2),
    "bf16": PrecisionRule("bf16", False, False, ("openvino",), 0.999, 2e-3),
}
REDUCED_PRECISIONS = tuple(p for p in ("int8", "fp16", "bf16") if p in RULES)
"""The precisions `cityseg export --precision` derives from the fp32 ONNX, gated."""
TENSORRT_PRECISIONS = tuple(p for p in PRECISIONS if "tensorrt" in RULES[p].runtimes)
"""The precisions a TensorRT engine is built in (from the ONNX of that precision)."""


def check_precision(name: str, allowed: tuple[str, ...] = PRECISIONS) -> str:
    """``name`` when it is one of ``allowed``; else InputError naming the choices."""
    if name not in allowed:
        raise InputError(f"precision {name!r}: use one of {', '.join(allowed)}")
    return name

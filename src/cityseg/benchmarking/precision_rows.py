"""The precision variants `cityseg bench --precisions` times beside fp32: made, gated, and which backend runs which.

Each variant is made exactly as `cityseg export --precision` makes it (:mod:`cityseg.export.precision`),
calibrated on generated street scenes and gated against the fp32 ONNX on others; a variant that fails
its gate is still timed (a benchmark shows what it costs) but its row says FAILED, and the card records
the failed gate, so the ``auto`` choice never picks it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cityseg.bundle import Bundle
from cityseg.errors import CitysegError
from cityseg.export.calibration import generated_frames
from cityseg.export.precision import export_precision

CALIB_FRAMES = 16
GATE_FRAMES = 8
RUNS_ON = {"fp32": ("onnxruntime", "openvino", "tensorflow", "tensorrt"), "int8": ("onnxruntime", "openvino"),
           "fp16": ("onnxruntime",), "bf16": ("openvino",)}
"""Which backends a precision's rows are timed on (OpenVINO's CPU plugin runs an fp16 ONNX in fp32;
bf16 is OpenVINO's; the TensorRT rows are fp32/fp16/int8 engines, built on a GPU machine)."""


@dataclass
class Variant:
    precision: str
    artifact: str | None
    """Card key to time; None: the backend's own pick (fp32)."""
    gate: str
    """'ok 99.2%' / 'FAILED 91.0%' (pixel agreement with fp32), or '' for fp32."""


def make_variants(bundle: Bundle, precisions: list[str], calib_method: str = "minmax") -> list[Variant]:
    """fp32 plus each precision of ``precisions`` the bundle can get here (printed when one cannot);
    int8 calibrated with ``calib_method``."""
    variants = [Variant("fp32", None, "")] if "fp32" in precisions else []
    for precision in [p for p in precisions if p != "fp32"]:
        try:
            calibration = generated_frames(bundle.card, CALIB_FRAMES, seed=7)
            result = export_precision(bundle, precision, calibration=calibration,
                                      evaluation=generated_frames(bundle.card, GATE_FRAMES, seed=11),
                                      method=calib_method, force=True, refuse_failed=False)
        except CitysegError as exc:
            print(f"no {precision} rows for {bundle.path.name}: {exc}", flush=True)
            continue
        report = result.reports[-1]
        verdict = f"{'ok' if report.passed else 'FAILED'} {report.pixel_agreement:.1%}"
        variants.append(Variant(precision, result.keys[-1], verdict))
    return variants

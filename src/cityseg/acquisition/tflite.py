"""TFLite -> ONNX with tf2onnx, for `cityseg import` of the models publishers ship as ``.tflite``
(int8-quantized ones become Q/DQ ONNX with their uint8 input kept)."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

from cityseg.errors import InputError

OPSET = 17
"""The opset tf2onnx writes (what the Coral model was checked with; TensorRT 10 takes it)."""


def is_tflite(path: Path) -> bool:
    """True for a ``.tflite`` file name, or a file whose FlatBuffer identifier is TFLite's ``TFL3``."""
    if path.suffix.lower() == ".tflite":
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(8)[4:8] == b"TFL3"
    except OSError:
        return False


def tflite_to_onnx(path: Path, out: Path) -> Path:
    """Convert the TFLite file ``path`` to the ONNX file ``out`` (returned); InputError naming the
    operator (or the reason) when tf2onnx cannot convert it."""
    try:
        from tf2onnx import convert
    except ImportError as exc:
        raise InputError(f"{path}: importing a TFLite file needs tf2onnx ({exc}); pip install tf2onnx") from None
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):
            model, _ = convert.from_tflite(str(path), opset=OPSET, output_path=str(out))
    except Exception as exc:  # tf2onnx raises ValueError/RuntimeError/its own for unsupported ops
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: tf2onnx cannot convert this TFLite file ({reason}); "
                         "export the model to ONNX with its own framework and import that") from None
    import onnx

    from cityseg.acquisition.canonical_names import canonical_names

    onnx.save(canonical_names(model), str(out))  # the same bytes for the same file, every run
    unconverted = sorted({n.op_type for n in model.graph.node if n.domain not in ("", "ai.onnx", "com.microsoft")})
    if unconverted:
        out.unlink(missing_ok=True)
        raise InputError(f"{path}: tf2onnx left operator(s) {', '.join(unconverted)} unconverted (no ONNX "
                         "equivalent); ONNX Runtime cannot run them - export the model to ONNX another way")
    return out

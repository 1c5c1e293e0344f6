"""ONNX Runtime backend: CUDA execution provider when present, else CPU."""

from __future__ import annotations

import numpy as np

from cityseg.bundle import Bundle
from cityseg.errors import BundleError
from cityseg.inference.backends.base import Backend
from cityseg.inference.onnxruntime_session import cpu_session_options, needs_exact_int8


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    format = "onnx"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime is not installed (pip install 'cityseg[onnx]')"
        return None

    def __init__(self, bundle: Bundle, artifact_key: str, providers: list[str] | None = None):
        super().__init__(bundle, artifact_key)
        import onnxruntime as ort

        available = ort.get_available_providers()
        if providers is None:
            preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            providers = [p for p in preferred if p in available]
        options = cpu_session_options(exact_int8=needs_exact_int8(self.artifact))
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise BundleError(f"{self.path}: ONNX Runtime cannot load this model ({exc}); the file "
                              "is corrupt or not ONNX - re-run `cityseg export --onnx --force`") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise BundleError(f"{self.path}: expected one input, the model has {len(inputs)}")
        self.input_name = inputs[0].name
        self._check_input_shape(inputs[0].shape)
        self.fixed_batch = inputs[0].shape[0] if isinstance(inputs[0].shape[0], int) else None
        names = [o.name for o in self.session.get_outputs()]
        confidence = self.artifact.confidence
        if confidence and confidence not in names:
            raise BundleError(f"{self.path}: the card names confidence output {confidence!r}, the model "
                              f"has {names}; re-export the bundle")
        self.output_names = [next(n for n in names if n != confidence)] + ([confidence] if confidence else [])

    def _check_input_shape(self, shape) -> None:
        card = self.bundle.card
        layout = "NHWC camera frame" if self.artifact.fused else card.input_layout
        expected = self.artifact.frame_shape(card)
        if len(shape) != 4:
            raise BundleError(f"{self.path}: expected a 4-D image input ({layout}), got shape {shape}")
        if any(isinstance(got, int) and got != want for got, want in zip(shape[1:], expected)):
            raise BundleError(f"{self.path}: model input {shape} does not match the card's "
                              f"{'x'.join(map(str, expected))} ({layout}); the ONNX file "
                              "belongs to another model - re-export (or re-import) it into this bundle")

    @property
    def max_batch(self) -> int | None:
        """The ONNX's fixed batch (batches are run frame by frame), None for a dynamic batch."""
        return self.fixed_batch

    def _run_all(self, batch: np.ndarray) -> list[np.ndarray]:
        fixed = self.fixed_batch
        if fixed and batch.shape[0] != fixed:  # chunks of the fixed batch, the last one padded
            parts = [self._run_padded(batch[i:i + fixed]) for i in range(0, batch.shape[0], fixed)]
            return [np.concatenate(column) for column in zip(*parts)]
        return self.session.run(self.output_names, {self.input_name: batch})

    def _run_padded(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Run up to ``fixed_batch`` frames, padded with copies of the last one, padding dropped."""
        count = len(chunk)
        if count < self.fixed_batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.fixed_batch - count, axis=0)])
        return [out[:count] for out in self.session.run(self.output_names, {self.input_name: chunk})]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self._run_all(batch)[0]

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = self._run_all(batch)
        return outputs[0], (outputs[1] if len(outputs) > 1 else None)

    def describe(self) -> str:
        return f"{self.name} ({self.path.name}, {self.session.get_providers()[0]})"

"""Run TensorRT 10 / 11 engines: the CUDA runtime, device and pinned host buffers, the engine runner.

:class:`EngineRunner` runs an engine on one CUDA stream with pinned host buffers (cuda-python);
the TensorRT inference backend wraps it, and the converter uses it for its parity check.
TensorRT and cuda-python are imported inside the functions that need them, so importing this
module needs neither. Which engine file to run is decided by :mod:`cityseg.tensorrt.engine_cache`.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from cityseg.errors import BundleError, DeviceError, InputError
from cityseg.tensorrt.engine_cache import Platform

INSTALL_HINT = ("pip install 'cityseg[tensorrt]' (TensorRT 10.x or 11.x + cuda-python) on a machine with an NVIDIA GPU")
SUPPORTED_MAJORS = (10, 11)


def import_cudart():
    """cuda-python's runtime module (its location moved in cuda-python 12.8)."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.8
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def runtime_unavailable_reason() -> str | None:
    """Why engines cannot be built or run here (None when TensorRT 10 or 11, cuda-python and a GPU exist)."""
    try:
        import tensorrt as trt
    except ImportError:
        return f"TensorRT is not installed ({INSTALL_HINT})"
    if int(trt.__version__.split(".")[0]) not in SUPPORTED_MAJORS:
        return (f"TensorRT {trt.__version__} is installed; cityseg builds strongly typed engines with the "
                "TensorRT 10 and 11 API: pip install 'tensorrt-cu12>=10,<12'")
    try:
        cudart = import_cudart()
    except ImportError:
        return f"cuda-python is not installed ({INSTALL_HINT})"
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess:
        return f"no usable CUDA GPU (cudaGetDeviceCount: {err.name}); check the NVIDIA driver"
    if count == 0:
        return "no CUDA GPU is visible (cudaGetDeviceCount: 0 devices)"
    return None


def cuda_call(result):
    """Unwrap a cuda-python ``(err, value...)`` tuple, raising DeviceError on a CUDA error."""
    cudart = import_cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        _, text = cudart.cudaGetErrorString(err)
        raise DeviceError(f"CUDA error {err.name}: {text.decode() if isinstance(text, bytes) else text}")
    return values[0] if len(values) == 1 else (tuple(values) if values else None)


def current_platform(device: int = 0) -> Platform:
    """This machine's TensorRT version and GPU."""
    import tensorrt as trt

    props = cuda_call(import_cudart().cudaGetDeviceProperties(device))
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return Platform(trt.__version__, name.rstrip("\x00").strip(), f"{props.major}.{props.minor}")


def trt_logger():
    """A TensorRT logger that shows warnings and errors."""
    import tensorrt as trt

    return trt.Logger(trt.Logger.WARNING)


class DeviceBuffer:
    """``nbytes`` of GPU memory (cudaMalloc), freed by :meth:`free`."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        self.ptr = int(cuda_call(import_cudart().cudaMalloc(nbytes)))

    def free(self) -> None:
        if self.ptr:
            import_cudart().cudaFree(self.ptr)
            self.ptr = 0


class PinnedArray:
    """A numpy array in page-locked host memory (cudaMallocHost), for fast async copies."""

    def __init__(self, shape: tuple[int, ...], dtype):
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * self.dtype.itemsize
        self.ptr = int(cuda_call(import_cudart().cudaMallocHost(self.nbytes)))
        raw = (ctypes.c_byte * self.nbytes).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=self.dtype).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            self.array = None
            import_cudart().cudaFreeHost(self.ptr)
            self.ptr = 0


class EngineRunner:
    """One deserialized engine, one execution context, one CUDA stream, pinned buffers sized for
    the profile's maximum batch. ``infer`` takes any batch size (split at the profile maximum).
    An engine may have several outputs (an argmax head with its confidence): :meth:`infer_all`
    returns all of them, :meth:`infer` the first."""

    def __init__(self, serialized: bytes, *, name: str = "engine"):
        import tensorrt as trt

        cudart = import_cudart()
        self.name = name
        self.runtime = trt.Runtime(trt_logger())
        self.engine = self.runtime.deserialize_cuda_engine(serialized)
        if self.engine is None:
            raise BundleError(f"{name}: TensorRT {trt.__version__} cannot deserialize this engine (see its "
                              "messages above); rebuild it with `cityseg export --tensorrt --force`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or not outputs:
            raise BundleError(f"{name}: expected one input and at least one output, the engine has "
                              f"{inputs} -> {outputs}")
        self.input_name, self.output_names = inputs[0], outputs
        self.output_name = outputs[0]
        low, _, high = self.engine.get_tensor_profile_shape(self.input_name, 0)
        self.min_batch, self.max_batch = int(low[0]), int(high[0])
        self.frame_shape = tuple(int(d) for d in high[1:])
        self.input_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self.output_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        self.context.set_input_shape(self.input_name, tuple(high))
        self.stream = cuda_call(cudart.cudaStreamCreate())
        self.host_in = PinnedArray(tuple(high), self.input_dtype)
        self.device_in = DeviceBuffer(self.host_in.nbytes)
        self.context.set_tensor_address(self.input_name, self.device_in.ptr)
        self.host_out, self.device_out = {}, {}
        for out in outputs:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(out))
            self.host_out[out] = PinnedArray(shape, np.dtype(trt.nptype(self.engine.get_tensor_dtype(out))))
            self.device_out[out] = DeviceBuffer(self.host_out[out].nbytes)
            self.context.set_tensor_address(out, self.device_out[out].ptr)

    @classmethod
    def from_file(cls, path: Path) -> EngineRunner:
        """Deserialize the engine file at ``path``."""
        return cls(Path(path).read_bytes(), name=str(path))

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """float32 batch (the engine's frame shape) -> the engine's first output for N frames."""
        return self.infer_all(batch)[self.output_name]

    def infer_all(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """float32 batch -> {output name: array} for N frames."""
        if batch.shape[1:] != self.frame_shape:
            raise InputError(f"{self.name}: input frames of shape {batch.shape[1:]}, the engine takes "
                             f"{self.frame_shape}")
        if len(batch) > self.max_batch:
            parts = [self.infer_all(batch[i:i + self.max_batch]) for i in range(0, len(batch), self.max_batch)]
            return {k: np.concatenate([p[k] for p in parts]) for k in self.output_names}
        count = len(batch)
        if count < self.min_batch:  # pad up to the profile minimum, drop the padding afterwards
            pad = np.repeat(batch[-1:], self.min_batch - count, axis=0)
            return {k: v[:count] for k, v in self.infer_all(np.concatenate([batch, pad])).items()}
        cudart = import_cudart()
        self.host_in.array[:count] = batch
        self.context.set_input_shape(self.input_name, (count, *self.frame_shape))
        in_bytes = count * self.host_in.nbytes // self.max_batch
        cuda_call(cudart.cudaMemcpyAsync(self.device_in.ptr, self.host_in.ptr, in_bytes,
                                         cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
        if not self.context.execute_async_v3(int(self.stream)):
            raise DeviceError(f"{self.name}: TensorRT failed to run the engine (see its messages above)")
        shapes = {}
        for out in self.output_names:
            shapes[out] = tuple(int(d) for d in self.context.get_tensor_shape(out))
            out_bytes = count * self.host_out[out].nbytes // self.max_batch
            cuda_call(cudart.cudaMemcpyAsync(self.host_out[out].ptr, self.device_out[out].ptr, out_bytes,
                                             cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
        cuda_call(cudart.cudaStreamSynchronize(self.stream))
        return {out: self.host_out[out].array[:count].reshape(shapes[out]).copy() for out in self.output_names}

    def close(self) -> None:
        """Free the buffers and the stream."""
        buffers = [getattr(self, "host_in", None), getattr(self, "device_in", None)]
        buffers += list(getattr(self, "host_out", {}).values()) + list(getattr(self, "device_out", {}).values())
        for buf in buffers:
            if buf is not None:
                buf.free()
        if getattr(self, "stream", None) is not None:
            import_cudart().cudaStreamDestroy(self.stream)
            self.stream = None

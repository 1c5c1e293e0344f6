"""TensorRT 10 engines from a bundle's ONNX: build, name, sidecar, rebuild-or-refuse, run.

An engine only runs on the GPU model and TensorRT version it was built with, so:

* its file name says what it is: ``<onnx stem>.<precision>.sm<compute capability>.trt<version>.engine``
  (e.g. ``model_argmax.fp16.sm89.trt10.3.0.engine``), so engines for several targets can live
  in one bundle;
* a sidecar ``<engine>.json`` records the TensorRT version, GPU name, compute capability,
  precision, input shape, batch profile and the SHA-256 of the ONNX it was built from;
* before an engine is used, the sidecar is compared with this machine and the bundle's ONNX; a
  mismatch means "rebuild from the ONNX" (or a refusal naming the mismatch when rebuilding is off);
* writes are atomic and the old sidecar is removed before a new engine is written, so a
  half-written or mismatched engine is never taken for a good one.

The build uses the ONNX parser, one optimisation profile for the batch range, FP16, or INT8 with
an entropy calibrator over ``--calib-images`` (its cache kept beside the engine), a timing cache
file and a workspace limit. :class:`EngineRunner` runs an engine on one CUDA stream with pinned
host buffers (cuda-python); the TensorRT inference backend wraps it.

TensorRT and cuda-python are imported inside the functions that need them; everything about
names, sidecars, decisions and calibration batches is plain Python (and tested without a GPU).
"""

from __future__ import annotations

import ctypes
import datetime
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from cityseg.bundle import Artifact, Bundle, ModelCard
from cityseg.errors import BundleError, InputError
from cityseg.export import parity
from cityseg.export.errors import EngineMismatch, ExportError
from cityseg.export.onnx import onnx_artifact, onnxruntime_runner, sha256_file
from cityseg.fileio import read_image, write_bytes_atomic, write_json_atomic

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_WORKSPACE_MB = 2048
DEFAULT_CALIB_BATCH = 8
DEFAULT_CALIB_LIMIT = 512
SIDECAR_FORMAT = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")
REBUILD_ENV = "CITYSEG_TENSORRT_REBUILD"
"""Set to 0 to make the TensorRT backend refuse a mismatched engine instead of rebuilding it."""
INSTALL_HINT = ("pip install 'cityseg[tensorrt]' (TensorRT 10.x + cuda-python) on a machine with an NVIDIA GPU")


# ------------------------------------------------------------------------------------------
# Plain Python: what an engine is, its name, its sidecar, whether it can be used here.
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchProfile:
    """The batch sizes the engine accepts (``min``..``max``) and is tuned for (``opt``)."""

    min: int = 1
    opt: int = 1
    max: int = 4

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise InputError(f"batch profile {self.min},{self.opt},{self.max}: need 1 <= min <= opt <= max")

    @classmethod
    def parse(cls, text: str) -> "BatchProfile":
        """'MIN,OPT,MAX' or a single 'N' (min=opt=max=N)."""
        try:
            values = [int(v) for v in text.split(",")]
        except ValueError:
            raise InputError(f"--batch {text!r}: expected MIN,OPT,MAX (e.g. 1,1,4) or one number") from None
        if len(values) == 1:
            values *= 3
        if len(values) != 3:
            raise InputError(f"--batch {text!r}: expected three numbers MIN,OPT,MAX")
        return cls(*values)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Platform:
    """What an engine is tied to: the TensorRT version and the GPU."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    """'major.minor', e.g. '8.9'."""

    @property
    def sm(self) -> str:
        return "sm" + self.compute_capability.replace(".", "")

    def describe(self) -> str:
        return f"{self.gpu_name} ({self.sm}), TensorRT {self.tensorrt_version}"


@dataclass
class EngineSidecar:
    """The facts stored beside an engine file (``<engine>.json``)."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_name: str
    input_shape: list[int]
    """[H, W, 3]; the batch dimension is dynamic within ``profile``."""
    output_name: str
    output_kind: str
    profile: dict[str, int]
    onnx_file: str
    onnx_sha256: str
    workspace_mb: int
    calibration: dict | None = None
    built_at: str = ""
    format_version: int = SIDECAR_FORMAT

    @property
    def platform(self) -> Platform:
        return Platform(self.tensorrt_version, self.gpu_name, self.compute_capability)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def read(cls, path: Path) -> "EngineSidecar":
        """Load a sidecar; BundleError naming the file when it is missing or not a sidecar."""
        if not path.is_file():
            raise BundleError(f"{path}: the engine's sidecar is missing, so nothing says which GPU "
                              "and ONNX the engine was built for; rebuild it with `cityseg export --tensorrt`")
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
            raise BundleError(f"{path}: not a valid engine sidecar ({exc}); rebuild the engine with "
                              "`cityseg export --tensorrt --force`") from None


def engine_filename(onnx_file: str, precision: str, platform: Platform) -> str:
    """``model.onnx`` + fp16 + sm89/TensorRT 10.3.0 -> ``model.fp16.sm89.trt10.3.0.engine``."""
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return f"{Path(onnx_file).stem}.{precision}.{platform.sm}.trt{platform.tensorrt_version}.engine"


def engine_key(filename: str) -> str:
    """The card key of an engine file (its name without ``.engine``)."""
    return filename.removesuffix(".engine")


def sidecar_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def timing_cache_path(directory: Path, platform: Platform) -> Path:
    """Timing caches are per GPU and TensorRT version, shared by every engine in the bundle."""
    return directory / f"timing.{platform.sm}.trt{platform.tensorrt_version}.cache"


def calibration_cache_path(directory: Path, onnx_file: str, platform: Platform, onnx_sha256: str) -> Path:
    """INT8 calibration cache beside the engines, keyed by the ONNX it calibrated and the TensorRT
    version (the cache is portable across GPUs, not guaranteed across TensorRT versions)."""
    stem = Path(onnx_file).stem
    return directory / f"{stem}.int8.trt{platform.tensorrt_version}.onnx-{onnx_sha256[:12]}.calib"


def mismatches(sidecar: EngineSidecar, platform: Platform, *, onnx_sha256: str | None = None,
               precision: str | None = None, profile: BatchProfile | None = None) -> list[str]:
    """Why an engine described by ``sidecar`` cannot be used here (empty list: it can)."""
    reasons = []
    if sidecar.format_version > SIDECAR_FORMAT:
        reasons.append(f"its sidecar format {sidecar.format_version} is newer than this cityseg")
    if sidecar.tensorrt_version != platform.tensorrt_version:
        reasons.append(f"built with TensorRT {sidecar.tensorrt_version}, this machine has "
                       f"{platform.tensorrt_version}")
    if sidecar.compute_capability != platform.compute_capability:
        reasons.append(f"built for compute capability {sidecar.compute_capability} "
                       f"({sidecar.gpu_name}), this GPU is {platform.compute_capability} ({platform.gpu_name})")
    elif sidecar.gpu_name != platform.gpu_name:
        reasons.append(f"built on a {sidecar.gpu_name}, this GPU is a {platform.gpu_name} "
                       "(TensorRT tunes kernels per GPU model)")
    if onnx_sha256 is not None and sidecar.onnx_sha256 != onnx_sha256:
        reasons.append(f"built from another {sidecar.onnx_file} (sha256 {sidecar.onnx_sha256[:12]}..., "
                       f"the bundle's is {onnx_sha256[:12]}...)")
    if precision is not None and sidecar.precision != precision:
        reasons.append(f"built in {sidecar.precision}, {precision} was asked for")
    if profile is not None and sidecar.profile != profile.to_dict():
        reasons.append(f"built for batch profile {sidecar.profile}, {profile.to_dict()} was asked for")
    return reasons


def engine_decision(engine: Path, platform: Platform, *, onnx_sha256: str, precision: str,
                    profile: BatchProfile, rebuild: bool = True, force: bool = False) -> tuple[str, list[str]]:
    """('reuse', []) or ('build', reasons) for the engine at ``engine``.

    A missing engine is built. An existing engine that does not match this machine, the ONNX or
    the request is rebuilt, or refused with EngineMismatch when ``rebuild`` is False.
    """
    if force:
        return "build", ["--force"]
    if not engine.is_file():
        return "build", ["no engine yet"]
    try:
        sidecar = EngineSidecar.read(sidecar_path(engine))
        reasons = mismatches(sidecar, platform, onnx_sha256=onnx_sha256, precision=precision, profile=profile)
    except BundleError as exc:
        reasons = [str(exc)]
    if not reasons:
        return "reuse", []
    if not rebuild:
        raise EngineMismatch(f"{engine}: cannot be used here - " + "; ".join(reasons) + ". Rebuilding is "
                             "off: allow it (drop --no-rebuild), or run `cityseg export BUNDLE --tensorrt "
                             "--force` on this machine")
    return "build", reasons


def select_engine(bundle: Bundle, preferred: str, platform: Platform) -> tuple[str | None, dict[str, list[str]]]:
    """An engine artifact usable here: ``preferred`` if it matches, else a sibling with the same
    output kind and precision that does. Returns (key or None, {key: reasons it cannot be used})."""
    wanted = bundle.card.artifacts[preferred]
    candidates = [preferred] + [k for k, a in bundle.artifacts("tensorrt").items()
                                if k != preferred and a.output == wanted.output
                                and a.details.get("precision") == wanted.details.get("precision")]
    rejected = {}
    for key in candidates:
        engine = bundle.artifact_path(key)
        try:
            sidecar = EngineSidecar.read(sidecar_path(engine))
        except BundleError as exc:
            rejected[key] = [str(exc)]
            continue
        onnx_file = bundle.path / sidecar.onnx_file
        digest = sha256_file(onnx_file) if onnx_file.is_file() else None  # engine shipped alone: trust it
        reasons = mismatches(sidecar, platform, onnx_sha256=digest)
        if not reasons:
            return key, rejected
        rejected[key] = reasons
    return None, rejected


def rebuild_allowed_by_env() -> bool:
    """False when CITYSEG_TENSORRT_REBUILD is 0/false/no/off."""
    return os.environ.get(REBUILD_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def write_engine(engine: Path, serialized: bytes, sidecar: EngineSidecar) -> None:
    """Write engine then sidecar, both atomically, the old sidecar removed first (a crash between
    the two leaves an engine without sidecar, which is rebuilt, never one with a wrong sidecar)."""
    side = sidecar_path(engine)
    if side.exists():
        side.unlink()
    write_bytes_atomic(engine, serialized)
    write_json_atomic(side, sidecar.to_dict())


def calibration_files(directory: Path, limit: int | None = DEFAULT_CALIB_LIMIT) -> list[Path]:
    """Images under ``directory`` (recursively, sorted), at most ``limit`` spread evenly over them."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"--calib-images {directory}: no such directory; point it at a folder of "
                         "representative frames (e.g. leftImg8bit/train/aachen)")
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"--calib-images {directory}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    if limit is not None and len(files) > limit:
        picks = np.linspace(0, len(files) - 1, limit).round().astype(int)
        files = [files[i] for i in picks]
    return files


class CalibrationBatches:
    """Full float32 batches of calibration images, preprocessed exactly as the card says."""

    def __init__(self, files: list[Path], card: ModelCard, batch_size: int = DEFAULT_CALIB_BATCH):
        if batch_size < 1:
            raise InputError(f"calibration batch size must be positive, got {batch_size}")
        if len(files) < batch_size:
            raise InputError(f"INT8 calibration needs at least {batch_size} images (one batch), got "
                             f"{len(files)}; add images or lower --calib-batch")
        self.files = files
        self.card = card
        self.batch_size = batch_size

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.batch_size, self.card.input_height, self.card.input_width, 3)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * 4

    def __len__(self) -> int:
        return len(self.files) // self.batch_size

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            chunk = self.files[i * self.batch_size:(i + 1) * self.batch_size]
            frames = [read_image(p) for p in chunk]  # BGR
            yield np.ascontiguousarray(self.card.preprocess(frames, "BGR"), dtype=np.float32)


# ------------------------------------------------------------------------------------------
# TensorRT + cuda-python (imported lazily; these run only where a GPU and TensorRT exist).
# ------------------------------------------------------------------------------------------

def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.8
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def runtime_unavailable_reason() -> str | None:
    """Why engines cannot be built or run here (None when TensorRT 10, cuda-python and a GPU exist)."""
    try:
        import tensorrt as trt
    except ImportError:
        return f"TensorRT is not installed ({INSTALL_HINT})"
    if int(trt.__version__.split(".")[0]) != 10:
        return (f"TensorRT {trt.__version__} is installed; cityseg uses the TensorRT 10 API (TensorRT 11 "
                "removed the FP16/INT8 builder flags and the INT8 calibrator): pip install 'tensorrt-cu12>=10,<11'")
    try:
        cudart = _import_cudart()
    except ImportError:
        return f"cuda-python is not installed ({INSTALL_HINT})"
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess:
        return f"no usable CUDA GPU (cudaGetDeviceCount: {err.name}); check the NVIDIA driver"
    if count == 0:
        return "no CUDA GPU is visible (cudaGetDeviceCount: 0 devices)"
    return None


def require_runtime() -> None:
    """ExportError with the reason when TensorRT engines cannot be built here."""
    reason = runtime_unavailable_reason()
    if reason:
        raise ExportError(f"--tensorrt needs TensorRT 10 and an NVIDIA GPU: {reason}. Engines are "
                          "specific to a GPU and TensorRT version, so build them on the target machine; "
                          "the ONNX export works anywhere (`cityseg export BUNDLE --onnx`)")


def cuda_call(result):
    """Unwrap a cuda-python ``(err, value...)`` tuple, raising ExportError on a CUDA error."""
    cudart = _import_cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        _, text = cudart.cudaGetErrorString(err)
        raise ExportError(f"CUDA error {err.name}: {text.decode() if isinstance(text, bytes) else text}")
    return values[0] if len(values) == 1 else (tuple(values) if values else None)


def current_platform(device: int = 0) -> Platform:
    """This machine's TensorRT version and GPU."""
    import tensorrt as trt

    props = cuda_call(_import_cudart().cudaGetDeviceProperties(device))
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return Platform(trt.__version__, name.rstrip("\x00").strip(), f"{props.major}.{props.minor}")


def _logger():
    import tensorrt as trt

    return trt.Logger(trt.Logger.WARNING)


class DeviceBuffer:
    """``nbytes`` of GPU memory (cudaMalloc), freed by :meth:`free`."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        self.ptr = int(cuda_call(_import_cudart().cudaMalloc(nbytes)))

    def free(self) -> None:
        if self.ptr:
            _import_cudart().cudaFree(self.ptr)
            self.ptr = 0


class PinnedArray:
    """A numpy array in page-locked host memory (cudaMallocHost), for fast async copies."""

    def __init__(self, shape: tuple[int, ...], dtype):
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * self.dtype.itemsize
        self.ptr = int(cuda_call(_import_cudart().cudaMallocHost(self.nbytes)))
        raw = (ctypes.c_byte * self.nbytes).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=self.dtype).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            self.array = None
            _import_cudart().cudaFreeHost(self.ptr)
            self.ptr = 0


def make_calibrator(batches: CalibrationBatches, cache: Path, *, read_cache: bool = True):
    """An IInt8EntropyCalibrator2 feeding ``batches`` to the GPU, reading (unless ``read_cache`` is
    False: recalibrate) and writing ``cache``."""
    import tensorrt as trt

    cudart = _import_cudart()

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = iter(batches)
            self.device = DeviceBuffer(batches.nbytes)
            self.used = 0

        def get_batch_size(self) -> int:
            return batches.batch_size

        def get_batch(self, names):
            try:
                batch = next(self.batches)
            except StopIteration:
                return None
            cuda_call(cudart.cudaMemcpy(self.device.ptr, batch.ctypes.data, batch.nbytes,
                                        cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
            self.used += len(batch)
            return [self.device.ptr]

        def read_calibration_cache(self):
            if read_cache and cache.is_file():
                log.info("INT8: using calibration cache %s", cache)
                return cache.read_bytes()
            return None

        def write_calibration_cache(self, data) -> None:
            write_bytes_atomic(cache, bytes(data))

    return EntropyCalibrator()


def parser_errors(parser) -> str:
    """The ONNX parser's errors, one line each, naming the node and operator."""
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        name = err.node_name() if hasattr(err, "node_name") else ""
        op = err.node_operator() if hasattr(err, "node_operator") else ""
        where = f"node {err.node()}" + (f" {name!r}" if name else "") + (f" ({op})" if op else "")
        lines.append(f"  - {where}: {err.desc()}")
    return "\n".join(lines)


def build_serialized_engine(onnx_path: Path, card: ModelCard, *, precision: str, profile: BatchProfile,
                            workspace_mb: int = DEFAULT_WORKSPACE_MB, timing_cache: Path | None = None,
                            calibrator=None, calib_batch: int = DEFAULT_CALIB_BATCH) -> bytes:
    """Parse ``onnx_path`` and build an engine; returns the serialized engine (nothing written
    except the timing cache)."""
    import tensorrt as trt

    logger = _logger()
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise ExportError(f"{onnx_path}: the TensorRT {trt.__version__} ONNX parser rejected the model:\n"
                          f"{parser_errors(parser)}\nRe-export with `cityseg export --onnx --strict --force` "
                          "to see what TensorRT cannot parse")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if precision in ("fp16", "int8"):
        if not builder.platform_has_fast_fp16:
            log.warning("this GPU has no fast FP16; the %s engine may be slow", precision)
        config.set_flag(trt.BuilderFlag.FP16)
    image = network.get_input(0)
    height, width = card.input_height, card.input_width
    shapes = {k: (v, height, width, 3) for k, v in profile.to_dict().items()}
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(image.name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(opt_profile)
    if precision == "int8":
        if calibrator is None:
            raise ExportError("INT8 needs calibration images (--calib-images DIR) or a calibration cache")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        calib_profile = builder.create_optimization_profile()
        calib_shape = (calib_batch, height, width, 3)
        calib_profile.set_shape(image.name, calib_shape, calib_shape, calib_shape)
        config.set_calibration_profile(calib_profile)
    cache = None
    if timing_cache is not None:
        cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"{onnx_path}: TensorRT could not build a {precision} engine (see its messages "
                          "above); try a larger --workspace-mb or another precision")
    if cache is not None:
        write_bytes_atomic(timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized))


class EngineRunner:
    """One deserialized engine, one execution context, one CUDA stream, pinned buffers sized for
    the profile's maximum batch. ``infer`` takes any batch size (split at the profile maximum)."""

    def __init__(self, serialized: bytes, *, name: str = "engine"):
        import tensorrt as trt

        cudart = _import_cudart()
        self.name = name
        self.runtime = trt.Runtime(_logger())
        self.engine = self.runtime.deserialize_cuda_engine(serialized)
        if self.engine is None:
            raise BundleError(f"{name}: TensorRT {trt.__version__} cannot deserialize this engine (see its "
                              "messages above); rebuild it with `cityseg export --tensorrt --force`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise BundleError(f"{name}: expected one input and one output, the engine has {inputs} -> {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        low, _, high = self.engine.get_tensor_profile_shape(self.input_name, 0)
        self.min_batch, self.max_batch = int(low[0]), int(high[0])
        self.frame_shape = tuple(int(d) for d in high[1:])
        self.input_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self.output_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        self.context.set_input_shape(self.input_name, tuple(high))
        out_shape = tuple(int(d) for d in self.context.get_tensor_shape(self.output_name))
        self.stream = cuda_call(cudart.cudaStreamCreate())
        self.host_in = PinnedArray(tuple(high), self.input_dtype)
        self.host_out = PinnedArray(out_shape, self.output_dtype)
        self.device_in = DeviceBuffer(self.host_in.nbytes)
        self.device_out = DeviceBuffer(self.host_out.nbytes)
        self.context.set_tensor_address(self.input_name, self.device_in.ptr)
        self.context.set_tensor_address(self.output_name, self.device_out.ptr)

    @classmethod
    def from_file(cls, path: Path) -> "EngineRunner":
        return cls(Path(path).read_bytes(), name=str(path))

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """float32 NxHxWx3 -> the engine's output for N frames."""
        if batch.shape[1:] != self.frame_shape:
            raise InputError(f"{self.name}: input frames of shape {batch.shape[1:]}, the engine takes "
                             f"{self.frame_shape}")
        if len(batch) > self.max_batch:
            return np.concatenate([self.infer(batch[i:i + self.max_batch])
                                   for i in range(0, len(batch), self.max_batch)])
        count = len(batch)
        if count < self.min_batch:  # pad up to the profile minimum, drop the padding afterwards
            pad = np.repeat(batch[-1:], self.min_batch - count, axis=0)
            return self.infer(np.concatenate([batch, pad]))[:count]
        cudart = _import_cudart()
        self.host_in.array[:count] = batch
        self.context.set_input_shape(self.input_name, (count, *self.frame_shape))
        out_shape = tuple(int(d) for d in self.context.get_tensor_shape(self.output_name))
        in_bytes = count * self.host_in.nbytes // self.max_batch
        out_bytes = count * self.host_out.nbytes // self.max_batch
        cuda_call(cudart.cudaMemcpyAsync(self.device_in.ptr, self.host_in.ptr, in_bytes,
                                         cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
        if not self.context.execute_async_v3(int(self.stream)):
            raise ExportError(f"{self.name}: TensorRT failed to run the engine (see its messages above)")
        cuda_call(cudart.cudaMemcpyAsync(self.host_out.ptr, self.device_out.ptr, out_bytes,
                                         cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
        cuda_call(cudart.cudaStreamSynchronize(self.stream))
        return self.host_out.array[:count].reshape(out_shape).copy()

    def close(self) -> None:
        """Free the buffers and the stream."""
        for buf in (getattr(self, n, None) for n in ("host_in", "host_out", "device_in", "device_out")):
            if buf is not None:
                buf.free()
        if getattr(self, "stream", None) is not None:
            _import_cudart().cudaStreamDestroy(self.stream)
            self.stream = None


# ------------------------------------------------------------------------------------------
# The export step: ONNX artifact -> engine artifact in the bundle (with parity).
# ------------------------------------------------------------------------------------------

@dataclass
class EngineResult:
    """What export_tensorrt did."""

    key: str
    path: Path
    built: bool
    reasons: list[str] = field(default_factory=list)
    """Why it was (re)built, or empty when an existing engine was reused."""
    report: parity.ParityReport | None = None


def export_tensorrt(bundle: Bundle, *, precision: str = "fp16", argmax_head: bool = False,
                    calib_images: Path | None = None, calib_batch: int = DEFAULT_CALIB_BATCH,
                    calib_limit: int | None = DEFAULT_CALIB_LIMIT, profile: BatchProfile = BatchProfile(),
                    workspace_mb: int = DEFAULT_WORKSPACE_MB, force: bool = False, rebuild: bool = True,
                    frames: list[np.ndarray] | None = None) -> EngineResult:
    """Build (or reuse) a TensorRT engine from the bundle's ONNX, check its parity against ONNX
    Runtime, and record it in the card. Reuses a matching engine; rebuilds a mismatched one (or
    raises EngineMismatch when ``rebuild`` is False)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    require_runtime()
    onnx_key, _ = onnx_artifact(argmax_head)
    if onnx_key not in bundle.card.artifacts:
        raise ExportError(f"{bundle.path}: no {onnx_key} artifact to build from; run "
                          f"`cityseg export {bundle.path} --onnx{' --argmax-head' if argmax_head else ''}` first")
    onnx_path = bundle.artifact_path(onnx_key)
    platform = current_platform()
    engine = bundle.path / engine_filename(onnx_path.name, precision, platform)
    digest = sha256_file(onnx_path)
    decision, reasons = engine_decision(engine, platform, onnx_sha256=digest, precision=precision,
                                        profile=profile, rebuild=rebuild, force=force)
    key = engine_key(engine.name)
    if decision == "reuse":
        if key not in bundle.card.artifacts:
            sidecar = EngineSidecar.read(sidecar_path(engine))
            bundle.add_artifact(key, _engine_artifact(engine, bundle, onnx_key, sidecar))
        return EngineResult(key, engine, built=False)
    log.info("building %s (%s)", engine.name, "; ".join(reasons))
    cache = calibration_cache_path(bundle.path, onnx_path.name, platform, digest)
    calibrator, calibration = _calibration(bundle.card, cache, precision, calib_images, calib_batch,
                                           calib_limit, recalibrate=force and calib_images is not None)
    serialized = build_serialized_engine(onnx_path, bundle.card, precision=precision, profile=profile,
                                         workspace_mb=workspace_mb,
                                         timing_cache=timing_cache_path(bundle.path, platform),
                                         calibrator=calibrator, calib_batch=calib_batch)
    report = engine_parity(bundle, serialized, onnx_key, precision, engine, frames)
    parity.require_parity(report, engine)
    sidecar = EngineSidecar(
        tensorrt_version=platform.tensorrt_version, gpu_name=platform.gpu_name,
        compute_capability=platform.compute_capability, precision=precision,
        input_name=bundle.card.artifacts[onnx_key].details.get("input", {}).get("name", "image"),
        input_shape=[bundle.card.input_height, bundle.card.input_width, 3],
        output_name=bundle.card.artifacts[onnx_key].details.get("output", {}).get("name", ""),
        output_kind=bundle.card.artifacts[onnx_key].output, profile=profile.to_dict(),
        onnx_file=onnx_path.name, onnx_sha256=digest, workspace_mb=workspace_mb, calibration=calibration,
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    write_engine(engine, serialized, sidecar)
    artifact = _engine_artifact(engine, bundle, onnx_key, sidecar)
    artifact.details["parity"] = report.to_dict()
    bundle.add_artifact(key, artifact)
    return EngineResult(key, engine, built=True, reasons=reasons, report=report)


def _engine_artifact(engine: Path, bundle: Bundle, onnx_key: str, sidecar: EngineSidecar) -> Artifact:
    return Artifact(engine.name, "tensorrt", bundle.card.artifacts[onnx_key].output,
                    {**sidecar.to_dict(), "sidecar": sidecar_path(engine).name, "onnx_artifact": onnx_key})


def _calibration(card: ModelCard, cache: Path, precision: str, calib_images: Path | None,
                 calib_batch: int, calib_limit: int | None, *, recalibrate: bool):
    """(calibrator or None, calibration facts for the sidecar) for ``precision``. An existing cache
    for this ONNX is used unless ``recalibrate`` (--force with --calib-images)."""
    if precision != "int8":
        return None, None
    if calib_images is None and not cache.is_file():
        raise InputError("--precision int8 needs --calib-images DIR (representative frames, e.g. a few "
                         "hundred from leftImg8bit/train); no calibration cache exists yet for this ONNX")
    files = calibration_files(calib_images, calib_limit) if calib_images is not None else []
    batches = CalibrationBatches(files, card, calib_batch) if files else None
    if batches is None:  # cache only: TensorRT reads it and asks for no batches
        batches = _EmptyBatches(card, calib_batch)
    facts = {"images": len(files), "batch": calib_batch, "cache": cache.name,
             "source": str(calib_images) if calib_images else "cache"}
    return make_calibrator(batches, cache, read_cache=not recalibrate), facts


class _EmptyBatches(CalibrationBatches):
    """No images: the calibrator serves the cache only."""

    def __init__(self, card: ModelCard, batch_size: int):
        self.files, self.card, self.batch_size = [], card, batch_size


def engine_parity(bundle: Bundle, serialized: bytes, onnx_key: str, precision: str, engine: Path,
                  frames: list[np.ndarray] | None) -> parity.ParityReport:
    """Parity of a freshly built engine against its ONNX (ONNX Runtime, fp32). An argmax-head
    engine is compared with the scores model.onnx when the bundle has it, so near ties are known."""
    output_kind = bundle.card.artifacts[onnx_key].output
    reference_key = "onnx" if output_kind == "argmax" and "onnx" in bundle.card.artifacts else onnx_key
    reference_path = bundle.artifact_path(reference_key)
    frames, source = parity.parity_frames(bundle.card, frames)
    batch = bundle.card.preprocess(frames)
    runner = EngineRunner(serialized, name=engine.name)
    try:
        return parity.check_parity(onnxruntime_runner(reference_path), bundle.card.artifacts[reference_key].output,
                                   runner.infer, output_kind, batch, reference=f"onnxruntime:{reference_path.name}",
                                   candidate=f"tensorrt:{engine.name}", precision=precision, frame_source=source)
    finally:
        runner.close()


def resolve_engine(bundle: Bundle, preferred: str, *, rebuild: bool) -> str:
    """The key of an engine that runs here: ``preferred`` or a matching sibling; else rebuilt from
    the bundle's ONNX with the same settings (or EngineMismatch when ``rebuild`` is False)."""
    platform = current_platform()
    key, rejected = select_engine(bundle, preferred, platform)
    if key is not None:
        return key
    why = "; ".join(f"{k}: {', '.join(r)}" for k, r in rejected.items())
    details = bundle.card.artifacts[preferred].details
    onnx_key = details.get("onnx_artifact")
    if not rebuild or onnx_key not in bundle.card.artifacts:
        hint = (f"rebuilding is off ({REBUILD_ENV}=0)" if not rebuild
                else "the bundle has no ONNX to rebuild from")
        raise EngineMismatch(f"{bundle.path}: no TensorRT engine in the bundle runs on {platform.describe()} "
                             f"- {why}; {hint}. Run `cityseg export {bundle.path} --tensorrt --precision "
                             f"{details.get('precision', 'fp16')}` on this machine")
    log.warning("%s: rebuilding the TensorRT engine for %s from %s (%s); this takes a while",
                bundle.path, platform.describe(), onnx_key, why)
    profile = BatchProfile(**details.get("profile", {}))
    result = export_tensorrt(bundle, precision=details.get("precision", "fp16"),
                             argmax_head=onnx_key == "onnx_argmax", profile=profile,
                             workspace_mb=details.get("workspace_mb", DEFAULT_WORKSPACE_MB),
                             calib_batch=(details.get("calibration") or {}).get("batch", DEFAULT_CALIB_BATCH))
    return result.key

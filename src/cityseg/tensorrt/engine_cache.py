"""TensorRT engine files in a bundle: their names, sidecars, and whether one can be used here.

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

Plain Python (no TensorRT, no GPU): the converter (:mod:`cityseg.export.tensorrt_build`) and the
TensorRT inference backend share these rules; :mod:`cityseg.tensorrt.runtime` runs the engines.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cityseg.bundle import Bundle
from cityseg.bundle.precision import TENSORRT_PRECISIONS, check_precision
from cityseg.errors import BundleError, EngineMismatch, InputError
from cityseg.fileio import sha256_file, write_bytes_atomic, write_json_atomic

log = logging.getLogger(__name__)

SIDECAR_FORMAT = 1
REBUILD_ENV = "CITYSEG_TENSORRT_REBUILD"
"""Set to 0 to make the TensorRT backend refuse a mismatched engine instead of rebuilding it."""


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
    def parse(cls, text: str) -> BatchProfile:
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

    @classmethod
    def up_to(cls, max_batch: int) -> BatchProfile:
        """Any batch of 1..``max_batch`` frames, tuned for ``max_batch`` (``--max-batch N``: every
        camera of an N-camera node in one engine call)."""
        if max_batch < 1:
            raise InputError(f"--max-batch {max_batch}: need at least 1")
        return cls(1, max_batch, max_batch)

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
        """'sm89' for compute capability 8.9 (as in engine file names)."""
        return "sm" + self.compute_capability.replace(".", "")

    def describe(self) -> str:
        """'<GPU> (smXY), TensorRT <version>' for messages."""
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
    """The int8 ONNX's calibration record (frames, method, set hash), copied from its card entry."""
    onnx_artifact: str = ""
    """Card key of the ONNX the engine was built from ('onnx', 'onnx_int8', ...); its precision is ``precision``."""
    built_at: str = ""
    format_version: int = SIDECAR_FORMAT

    @property
    def platform(self) -> Platform:
        return Platform(self.tensorrt_version, self.gpu_name, self.compute_capability)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def read(cls, path: Path) -> EngineSidecar:
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
    check_precision(precision, TENSORRT_PRECISIONS)
    return f"{Path(onnx_file).stem}.{precision}.{platform.sm}.trt{platform.tensorrt_version}.engine"


def engine_key(filename: str) -> str:
    """The card key of an engine file (its name without ``.engine``)."""
    return filename.removesuffix(".engine")


def sidecar_path(engine: Path) -> Path:
    """``<engine>.json``: where an engine's sidecar lives."""
    return engine.with_name(engine.name + ".json")


def timing_cache_path(directory: Path, platform: Platform) -> Path:
    """Timing caches are per GPU and TensorRT version, shared by every engine in the bundle."""
    return directory / f"timing.{platform.sm}.trt{platform.tensorrt_version}.cache"


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
    output kind, confidence output and precision that does. Returns (key or None, {key: reasons it cannot be used})."""
    wanted = bundle.card.artifacts[preferred]
    candidates = [preferred] + [k for k, a in bundle.artifacts("tensorrt").items()
                                if k != preferred and a.output == wanted.output
                                and a.confidence == wanted.confidence
                                and a.io == wanted.io and a.camera == wanted.camera
                                and a.precision == wanted.precision]
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



def resolve_engine(bundle: Bundle, preferred: str, platform: Platform, *, rebuild: bool,
                   build: Callable[[Bundle, str], str]) -> str:
    """The key of an engine that runs on ``platform``: ``preferred`` or a matching sibling; else
    ``build(bundle, preferred)`` rebuilds it from the bundle's ONNX with the same settings (the
    TensorRT backend passes the converter's :func:`~cityseg.export.tensorrt_build.rebuild_engine`), or
    EngineMismatch when ``rebuild`` is False or there is no ONNX to rebuild from."""
    key, rejected = select_engine(bundle, preferred, platform)
    if key is not None:
        return key
    why = "; ".join(f"{k}: {', '.join(r)}" for k, r in rejected.items())
    details = bundle.card.artifacts[preferred].details
    if not rebuild or details.get("onnx_artifact") not in bundle.card.artifacts:
        hint = (f"rebuilding is off ({REBUILD_ENV}=0)" if not rebuild
                else "the bundle has no ONNX to rebuild from")
        raise EngineMismatch(f"{bundle.path}: no TensorRT engine in the bundle runs on {platform.describe()} "
                             f"- {why}; {hint}. Run `cityseg export {bundle.path} --tensorrt --precision "
                             f"{details.get('precision', 'fp16')}` on this machine")
    log.warning("%s: rebuilding the TensorRT engine for %s from %s (%s); this takes a while",
                bundle.path, platform.describe(), details["onnx_artifact"], why)
    return build(bundle, preferred)

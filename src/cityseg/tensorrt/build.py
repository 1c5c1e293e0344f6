"""TensorRT 10 engines from a bundle's ONNX: build (FP32/FP16/INT8), check, record in the card.

The build uses the ONNX parser, one optimisation profile for the batch range, FP16, or INT8 with
an entropy calibrator over ``--calib-images`` (:mod:`cityseg.tensorrt.calibration`, its cache kept
beside the engine), a timing cache file and a workspace limit. A fresh engine is checked for
parity against ONNX Runtime before it is written with its sidecar.

Engine names, sidecars and the rebuild-or-refuse rules live in :mod:`cityseg.tensorrt.engine_cache`; the
CUDA runtime and :class:`~cityseg.tensorrt.runtime.EngineRunner` in :mod:`cityseg.tensorrt.runtime`
(the inference backend uses those two without importing this module).
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cityseg.bundle import Artifact, Bundle, ModelCard
from cityseg.errors import InputError
from cityseg.export import parity
from cityseg.export.errors import ExportError
from cityseg.export.onnx import onnx_artifact, onnxruntime_runner
from cityseg.fileio import sha256_file, write_bytes_atomic
from cityseg.tensorrt.calibration import DEFAULT_CALIB_BATCH, DEFAULT_CALIB_LIMIT, calibrator_for
from cityseg.tensorrt.engine_cache import (
    PRECISIONS,
    BatchProfile,
    EngineSidecar,
    calibration_cache_path,
    engine_decision,
    engine_filename,
    engine_key,
    sidecar_path,
    timing_cache_path,
    write_engine,
)
from cityseg.tensorrt.runtime import EngineRunner, current_platform, runtime_unavailable_reason, trt_logger

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE_MB = 2048


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
                    onnx_key: str | None = None, calib_images: Path | None = None,
                    calib_batch: int = DEFAULT_CALIB_BATCH,
                    calib_limit: int | None = DEFAULT_CALIB_LIMIT, profile: BatchProfile = BatchProfile(),
                    workspace_mb: int = DEFAULT_WORKSPACE_MB, force: bool = False, rebuild: bool = True,
                    frames: list[np.ndarray] | None = None) -> EngineResult:
    """Build (or reuse) a TensorRT engine from the bundle's ONNX, check its parity against ONNX
    Runtime, and record it in the card. Reuses a matching engine; rebuilds a mismatched one (or
    raises EngineMismatch when ``rebuild`` is False). ``onnx_key``: build from that ONNX artifact
    (e.g. a fused-I/O one) instead of the one ``argmax_head`` names."""
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    require_runtime()
    onnx_key = onnx_key or onnx_artifact(argmax_head)[0]
    if onnx_key not in bundle.card.artifacts:
        raise ExportError(f"{bundle.path}: no {onnx_key} artifact to build from; run "
                          f"`cityseg export {bundle.path} --onnx{' --argmax-head' if argmax_head else ''}` first")
    onnx_path = bundle.artifact_path(onnx_key)
    source = bundle.card.artifacts[onnx_key]
    if source.fused and precision == "int8":
        raise ExportError(f"{onnx_path}: INT8 calibration feeds normalised float batches, a fused-I/O graph "
                          "takes uint8 camera frames; build it with --precision fp16 (or int8 from model.onnx)")
    profile = fixed_batch_profile(source, profile)
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
    calibrator, calibration = calibrator_for(bundle.card, cache, precision, calib_images, calib_batch,
                                             calib_limit, recalibrate=force and calib_images is not None)
    serialized = build_serialized_engine(onnx_path, bundle.card, precision=precision, profile=profile,
                                         workspace_mb=workspace_mb, frame_shape=source.frame_shape(bundle.card),
                                         timing_cache=timing_cache_path(bundle.path, platform),
                                         calibrator=calibrator, calib_batch=calib_batch)
    report = engine_parity(bundle, serialized, onnx_key, precision, engine, frames)
    parity.require_parity(report, engine)
    sidecar = EngineSidecar(
        tensorrt_version=platform.tensorrt_version, gpu_name=platform.gpu_name,
        compute_capability=platform.compute_capability, precision=precision,
        input_name=bundle.card.artifacts[onnx_key].details.get("input", {}).get("name", "image"),
        input_shape=list(source.frame_shape(bundle.card)),
        output_name=bundle.card.artifacts[onnx_key].details.get("output", {}).get("name", ""),
        output_kind=bundle.card.artifacts[onnx_key].output, profile=profile.to_dict(),
        onnx_file=onnx_path.name, onnx_sha256=digest, workspace_mb=workspace_mb, calibration=calibration,
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    write_engine(engine, serialized, sidecar)
    artifact = _engine_artifact(engine, bundle, onnx_key, sidecar)
    artifact.details["parity"] = report.to_dict()
    bundle.add_artifact(key, artifact)
    return EngineResult(key, engine, built=True, reasons=reasons, report=report)


def rebuild_engine(bundle: Bundle, preferred: str) -> str:
    """Rebuild engine artifact ``preferred`` for this machine from its ONNX, with the settings its
    card entry records (precision, batch profile, workspace, calibration batch); returns the new key.
    The TensorRT backend calls this (through :func:`cityseg.tensorrt.engine_cache.resolve_engine`)."""
    details = bundle.card.artifacts[preferred].details
    result = export_tensorrt(bundle, precision=details.get("precision", "fp16"),
                             onnx_key=details.get("onnx_artifact") or "onnx",
                             profile=BatchProfile(**details.get("profile", {})),
                             workspace_mb=details.get("workspace_mb", DEFAULT_WORKSPACE_MB),
                             calib_batch=(details.get("calibration") or {}).get("batch", DEFAULT_CALIB_BATCH))
    return result.key


def require_runtime() -> None:
    """ExportError with the reason when TensorRT engines cannot be built here."""
    reason = runtime_unavailable_reason()
    if reason:
        raise ExportError(f"--tensorrt needs TensorRT 10 and an NVIDIA GPU: {reason}. Engines are "
                          "specific to a GPU and TensorRT version, so build them on the target machine; "
                          "the ONNX export works anywhere (`cityseg export BUNDLE --onnx`)")


def _engine_artifact(engine: Path, bundle: Bundle, onnx_key: str, sidecar: EngineSidecar) -> Artifact:
    source = bundle.card.artifacts[onnx_key]
    return Artifact(engine.name, "tensorrt", source.output,
                    {**sidecar.to_dict(), "sidecar": sidecar_path(engine).name, "onnx_artifact": onnx_key},
                    output_layout=source.output_layout, confidence=source.confidence, io=source.io,
                    camera=source.camera)


def engine_parity(bundle: Bundle, serialized: bytes, onnx_key: str, precision: str, engine: Path,
                  frames: list[np.ndarray] | None) -> parity.ParityReport:
    """Parity of a freshly built engine against its ONNX (ONNX Runtime, fp32). An argmax-head
    engine is compared with the scores model.onnx when the bundle has it, so near ties are known."""
    card = bundle.card
    candidate = card.artifacts[onnx_key]
    if candidate.fused:
        return fused_engine_parity(bundle, serialized, onnx_key, precision, engine, frames)
    reference_key = "onnx" if candidate.output == "argmax" and "onnx" in card.artifacts else onnx_key
    reference = card.artifacts[reference_key]
    reference_path = bundle.artifact_path(reference_key)
    frames, source = parity.parity_frames(card, frames)
    batch = card.preprocess(frames)
    runner = EngineRunner(serialized, name=engine.name)
    try:
        run_reference, reference_kind = parity.canonical_runner(onnxruntime_runner(reference_path), reference, card)
        run_candidate, candidate_kind = parity.canonical_runner(runner.infer, candidate, card)
        return parity.check_parity(run_reference, reference_kind, run_candidate, candidate_kind, batch,
                                   reference=f"onnxruntime:{reference_path.name}",
                                   candidate=f"tensorrt:{engine.name}", precision=precision, frame_source=source)
    finally:
        runner.close()


def fused_engine_parity(bundle: Bundle, serialized: bytes, onnx_key: str, precision: str, engine: Path,
                        frames: list[np.ndarray] | None) -> parity.ParityReport:
    """Parity of an engine built from a fused-I/O ONNX: uint8 camera frames into the engine vs the
    unfused path (CPU preprocessing, the fused graph's source ONNX in ONNX Runtime, argmax, upsampling)."""
    from cityseg.export.fused_io import camera_frames

    card = bundle.card
    candidate = card.artifacts[onnx_key]
    reference_key = candidate.details.get("source_artifact", "onnx")
    camera = candidate.camera
    frames, source = camera_frames(bundle, camera, frames)
    runner = EngineRunner(serialized, name=engine.name)

    def run_engine(batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch[..., ::-1] if camera.channel_order == "BGR" else batch)
        return runner.infer(batch)

    try:
        return parity.check_camera_parity(
            onnxruntime_runner(bundle.artifact_path(reference_key)), card.artifacts[reference_key], card,
            run_engine, frames, reference=f"onnxruntime:{card.artifacts[reference_key].path}+cpu-io",
            candidate=f"tensorrt:{engine.name}", precision=precision, frame_source=source)
    finally:
        runner.close()


def build_serialized_engine(onnx_path: Path, card: ModelCard, *, precision: str, profile: BatchProfile,
                            workspace_mb: int = DEFAULT_WORKSPACE_MB, timing_cache: Path | None = None,
                            calibrator=None, calib_batch: int = DEFAULT_CALIB_BATCH,
                            frame_shape: tuple[int, ...] | None = None) -> bytes:
    """Parse ``onnx_path`` and build an engine; returns the serialized engine (nothing written
    except the timing cache). ``frame_shape``: one frame of the input (default the card's network
    input; a fused-I/O ONNX takes uint8 HxWx3 camera frames, which TensorRT 10 accepts as a UINT8
    network input followed by the graph's Cast)."""
    import tensorrt as trt

    logger = trt_logger()
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
    shapes = profile_shapes(card, profile, frame_shape)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(image.name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(opt_profile)
    if precision == "int8":
        if calibrator is None:
            raise ExportError("INT8 needs calibration images (--calib-images DIR) or a calibration cache")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        calib_profile = builder.create_optimization_profile()
        calib_shape = (calib_batch, *card.input_shape)
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


def fixed_batch_profile(artifact: Artifact, profile: BatchProfile) -> BatchProfile:
    """``profile``, or N,N,N for an ONNX whose batch is fixed at N (many imported models take 1)."""
    batch = (artifact.details.get("input", {}).get("shape") or [None])[0]
    if isinstance(batch, int) and batch > 0 and profile != BatchProfile(batch, batch, batch):
        log.info("the ONNX takes batches of exactly %d; building the engine for batch %d", batch, batch)
        return BatchProfile(batch, batch, batch)
    return profile


def profile_shapes(card: ModelCard, profile: BatchProfile,
                   frame_shape: tuple[int, ...] | None = None) -> dict[str, tuple[int, ...]]:
    """{'min'|'opt'|'max': input shape} of the optimisation profile, in the card's layout (a model
    imported with dynamic height/width gets the card's fixed input size), or of ``frame_shape`` frames."""
    frame = tuple(frame_shape or card.input_shape)
    return {k: (v, *frame) for k, v in profile.to_dict().items()}


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

"""TensorRT 10 and 11 engines from a bundle's ONNX: build strongly typed, check, record in the card.

Precision lives in the ONNX (:mod:`cityseg.export.precision`): an fp32 ``model.onnx``, an fp16
``model_fp16.onnx`` or a Q/DQ ``model_int8.onnx``. The network is created with
``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` - no builder precision flags, no calibrator - which
is the one code path TensorRT 10.x and 11.x share (11 removed the others). The build uses the ONNX
parser, one optimisation profile for the batch range, a timing cache file and a workspace limit. A
fresh engine is checked for parity against ONNX Runtime before it is written with its sidecar, which
records the ONNX artifact and precision it was built from.

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
from cityseg.bundle.precision import TENSORRT_PRECISIONS, check_precision
from cityseg.export import parity
from cityseg.export.calibration import FrameSet, generated_frames
from cityseg.export.errors import ExportError
from cityseg.export.fused_io import camera_frames
from cityseg.export.onnx import onnx_artifact, onnxruntime_runner
from cityseg.export.precision import export_precision
from cityseg.fileio import sha256_file, write_bytes_atomic
from cityseg.tensorrt.engine_cache import (
    BatchProfile,
    EngineSidecar,
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
                    onnx_key: str | None = None, profile: BatchProfile = BatchProfile(),
                    workspace_mb: int = DEFAULT_WORKSPACE_MB, force: bool = False, rebuild: bool = True,
                    frames: list[np.ndarray] | None = None) -> EngineResult:
    """Build (or reuse) a TensorRT engine from the bundle's ONNX, check its parity against ONNX
    Runtime, and record it in the card. Reuses a matching engine; rebuilds a mismatched one (or
    raises EngineMismatch when ``rebuild`` is False). ``onnx_key``: build from that ONNX artifact
    (e.g. a fused-I/O one) instead of the ``precision`` variant ``argmax_head`` names; its precision
    must be ``precision`` (the engine is strongly typed: it computes in the ONNX's types)."""
    check_precision(precision, TENSORRT_PRECISIONS)
    require_runtime()
    onnx_key = onnx_key or precision_onnx_key(precision, argmax_head)
    if precision == "fp16" and onnx_key not in bundle.card.artifacts and "onnx" in bundle.card.artifacts:
        write_fp16_onnx(bundle, frames)
    if onnx_key not in bundle.card.artifacts:
        raise ExportError(f"{bundle.path}: no {onnx_key} artifact to build from; run `cityseg export "
                          f"{bundle.path}{' --argmax-head' if argmax_head else ''} --precision {precision}` first")
    onnx_path = bundle.verified_artifact_path(onnx_key)
    source = bundle.card.artifacts[onnx_key]
    check_source_precision(source, onnx_path, precision)
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
    serialized = build_serialized_engine(onnx_path, bundle.card, precision=precision, profile=profile,
                                         workspace_mb=workspace_mb, frame_shape=source.frame_shape(bundle.card),
                                         timing_cache=timing_cache_path(bundle.path, platform))
    report = engine_parity(bundle, serialized, onnx_key, precision, engine, frames)
    parity.require_parity(report, engine)
    sidecar = EngineSidecar(
        tensorrt_version=platform.tensorrt_version, gpu_name=platform.gpu_name,
        compute_capability=platform.compute_capability, precision=precision,
        input_name=bundle.card.artifacts[onnx_key].details.get("input", {}).get("name", "image"),
        input_shape=list(source.frame_shape(bundle.card)),
        output_name=bundle.card.artifacts[onnx_key].details.get("output", {}).get("name", ""),
        output_kind=bundle.card.artifacts[onnx_key].output, profile=profile.to_dict(),
        onnx_file=onnx_path.name, onnx_sha256=digest, workspace_mb=workspace_mb,
        calibration=source.details.get("calibration"), onnx_artifact=onnx_key,
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    write_engine(engine, serialized, sidecar)
    artifact = _engine_artifact(engine, bundle, onnx_key, sidecar)
    artifact.details["parity"] = report.to_dict()
    bundle.add_artifact(key, artifact)
    return EngineResult(key, engine, built=True, reasons=reasons, report=report)


def rebuild_engine(bundle: Bundle, preferred: str) -> str:
    """Rebuild engine artifact ``preferred`` for this machine from its ONNX, with the settings its
    card entry records (precision, source ONNX, batch profile, workspace); returns the new key.
    The TensorRT backend calls this (through :func:`cityseg.tensorrt.engine_cache.resolve_engine`)."""
    artifact = bundle.card.artifacts[preferred]
    details = artifact.details
    result = export_tensorrt(bundle, precision=artifact.precision,
                             onnx_key=details.get("onnx_artifact") or "onnx",
                             profile=BatchProfile(**details.get("profile", {})),
                             workspace_mb=details.get("workspace_mb", DEFAULT_WORKSPACE_MB))
    return result.key


def require_runtime() -> None:
    """ExportError with the reason when TensorRT engines cannot be built here."""
    reason = runtime_unavailable_reason()
    if reason:
        raise ExportError(f"--tensorrt needs TensorRT 10 or 11 and an NVIDIA GPU: {reason}. Engines are "
                          "specific to a GPU and TensorRT version, so build them on the target machine; "
                          "the ONNX export works anywhere (`cityseg export BUNDLE --onnx`)")


def _engine_artifact(engine: Path, bundle: Bundle, onnx_key: str, sidecar: EngineSidecar) -> Artifact:
    source = bundle.card.artifacts[onnx_key]
    return Artifact(engine.name, "tensorrt", source.output,
                    {**sidecar.to_dict(), "sidecar": sidecar_path(engine).name, "onnx_artifact": onnx_key},
                    output_layout=source.output_layout, confidence=source.confidence, io=source.io,
                    camera=source.camera, precision=sidecar.precision)


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
    reference_path = bundle.verified_artifact_path(reference_key)
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


def write_fp16_onnx(bundle: Bundle, frames: list[np.ndarray] | None) -> None:
    """model_fp16.onnx (and its argmax twin) from model.onnx, gated on ``frames`` or generated scenes."""
    evaluation = FrameSet(frames, "given") if frames else generated_frames(bundle.card, 8)
    for report in export_precision(bundle, "fp16", evaluation=evaluation).reports:
        log.info("%s", report.summary())


def precision_onnx_key(precision: str, argmax_head: bool = False) -> str:
    """The card key of the ONNX a ``precision`` engine is built from: 'onnx', 'onnx_int8', 'onnx_argmax_fp16'..."""
    base = onnx_artifact(argmax_head)[0]
    return base if precision == "fp32" else f"{base}_{precision}"


def check_source_precision(source: Artifact, onnx_path: Path, precision: str) -> None:
    """ExportError unless the ONNX carries ``precision`` (and, for int8, TensorRT's symmetric Q/DQ)."""
    if source.precision != precision:
        raise ExportError(f"{onnx_path} is a {source.precision} ONNX; a strongly typed engine computes in its "
                          f"types, so a {precision} engine needs the {precision} ONNX - run `cityseg export "
                          f"BUNDLE --precision {precision} --tensorrt`")
    if precision == "int8" and source.details.get("activations") != "int8-symmetric":
        raise ExportError(f"{onnx_path}: its activations are {source.details.get('activations', 'unknown')} "
                          "(the CPU encoding); TensorRT takes symmetric int8 Q/DQ - re-export with "
                          "`cityseg export BUNDLE --precision int8 --tensorrt --force` and calibration frames")


def build_serialized_engine(onnx_path: Path, card: ModelCard, *, precision: str, profile: BatchProfile,
                            workspace_mb: int = DEFAULT_WORKSPACE_MB, timing_cache: Path | None = None,
                            frame_shape: tuple[int, ...] | None = None) -> bytes:
    """Parse ``onnx_path`` into a strongly typed network and build an engine; returns the serialized
    engine (nothing written except the timing cache). ``precision`` only names the build in messages:
    the ONNX's types decide. ``frame_shape``: one frame of the input (default the card's network
    input; a fused-I/O ONNX takes uint8 HxWx3 camera frames)."""
    import tensorrt as trt

    logger = trt_logger()
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise ExportError(f"{onnx_path}: the TensorRT {trt.__version__} ONNX parser rejected the model:\n"
                          f"{parser_errors(parser)}\nRe-export with `cityseg export --onnx --strict --force` "
                          "to see what TensorRT cannot parse")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    image = network.get_input(0)
    shapes = profile_shapes(card, profile, frame_shape)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(image.name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(opt_profile)
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

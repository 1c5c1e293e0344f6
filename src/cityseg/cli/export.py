"""`cityseg export`: add model.onnx (and a TensorRT engine) to a bundle, each checked for parity."""

from __future__ import annotations

import argparse
from pathlib import Path

PRECISIONS = ("fp32", "fp16", "int8")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="export a bundle to ONNX / TensorRT with parity checks",
        description="Adds model.onnx (or model_argmax.onnx) to the bundle, converted with tf2onnx and "
                    "checked against the Keras model on street frames (argmax agreement >= 99.9%%), "
                    "and with --tensorrt a TensorRT engine for this GPU, checked against the ONNX. "
                    "Without --onnx/--tensorrt, --onnx is implied.")
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help="model bundle directory")
    p.add_argument("--onnx", action="store_true", help="export model.onnx (tf2onnx)")
    p.add_argument("--tensorrt", action="store_true",
                   help="build a TensorRT engine for this GPU (exports the ONNX first when missing)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16", help="TensorRT precision (default fp16)")
    p.add_argument("--calib-images", type=Path, metavar="DIR",
                   help="INT8: folder of representative frames for the entropy calibrator")
    p.add_argument("--calib-batch", type=int, default=8, metavar="N", help="INT8 calibration batch size")
    p.add_argument("--calib-limit", type=int, default=512, metavar="N",
                   help="INT8: use at most N calibration images, spread over the folder")
    p.add_argument("--argmax-head", action="store_true",
                   help="export the variant that outputs the uint8 class map (argmax on the device)")
    p.add_argument("--confidence", action="store_true",
                   help="with --argmax-head: add a second uint8 output, the top-class probability x 255, "
                        "so the argmax head keeps the per-pixel confidence")
    p.add_argument("--fused-io", action="store_true",
                   help="also write model_fused_<W>x<H>.onnx: the camera's uint8 frame in, resize and "
                        "normalisation inside the graph, the uint8 mask (with --confidence also the "
                        "confidence) at camera resolution out; wraps the bundle's ONNX (exported first if "
                        "missing) and is checked against the unfused path. With --tensorrt the engine is "
                        "built from it")
    p.add_argument("--camera-size", metavar="WxH",
                   help="with --fused-io: the camera frame size the graph takes, e.g. 2048x1024")
    p.add_argument("--camera-order", choices=("RGB", "BGR"), default="RGB", type=str.upper,
                   help="with --fused-io: channel order of the camera frames the graph takes (default RGB)")
    p.add_argument("--force", action="store_true",
                   help="replace existing artifacts (only once the new one passes parity)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--strict", action="store_true",
                   help="refuse an ONNX that TensorRT 10 is known not to parse (default: warn)")
    p.add_argument("--parity-images", type=Path, metavar="DIR",
                   help="check parity on these images (default: generated street scenes)")
    p.add_argument("--batch", metavar="MIN,OPT,MAX",
                   help="TensorRT batch-size profile (default 1,1,4)")
    p.add_argument("--max-batch", type=int, metavar="N",
                   help="TensorRT: batches of 1..N frames, tuned for N (profile 1,N,N); N = the cameras of a "
                        "multi-camera segmentation_node, so each batch is one engine call")
    p.add_argument("--workspace-mb", type=int, default=2048, help="TensorRT builder workspace limit (MiB)")
    p.add_argument("--no-rebuild", action="store_true",
                   help="refuse (instead of rebuilding) an existing engine built for another GPU, "
                        "TensorRT version or ONNX")
    p.set_defaults(run=run)


def read_frames(directory: Path, limit: int = 16) -> list:
    """Up to ``limit`` images of a folder as RGB frames."""
    import cv2

    from cityseg.errors import InputError
    from cityseg.fileio import read_image
    from cityseg.tensorrt.calibration import calibration_files

    if not directory.is_dir():
        raise InputError(f"--parity-images {directory}: no such directory")
    return [cv2.cvtColor(read_image(p), cv2.COLOR_BGR2RGB) for p in calibration_files(directory, limit)]


def camera_input(args: argparse.Namespace):
    """The CameraInput of --fused-io (None without it); InputError for a missing or stray --camera-size."""
    from cityseg.bundle import CameraInput
    from cityseg.errors import InputError
    from cityseg.export.fused_io import parse_camera_size

    if not args.fused_io:
        if args.camera_size:
            raise InputError("--camera-size is used only by --fused-io; add it or drop --camera-size")
        return None
    if not args.camera_size:
        raise InputError("--fused-io needs the camera's frame size: --camera-size WIDTHxHEIGHT (e.g. 2048x1024)")
    return CameraInput(*parse_camera_size(args.camera_size), args.camera_order)


def batch_profile(args: argparse.Namespace):
    """The engine's BatchProfile from --batch or --max-batch (not both; default 1,1,4)."""
    from cityseg.errors import InputError
    from cityseg.tensorrt.engine_cache import BatchProfile

    if args.max_batch is not None:
        if args.batch is not None:
            raise InputError(f"--batch {args.batch} and --max-batch {args.max_batch} both set the batch profile; "
                             "give one (--max-batch N is --batch 1,N,N)")
        return BatchProfile.up_to(args.max_batch)
    return BatchProfile.parse(args.batch or "1,1,4")


def run(args: argparse.Namespace) -> int:
    from cityseg.bundle import Bundle
    from cityseg.errors import InputError
    from cityseg.export.onnx import export_onnx, onnx_artifact
    from cityseg.tensorrt import build as trt_export

    camera = camera_input(args)
    want_onnx = args.onnx or args.argmax_head if camera else args.onnx or not args.tensorrt
    profile = batch_profile(args)
    if args.tensorrt:
        trt_export.require_runtime()  # one clear message before any work
    if args.calib_images is not None and not (args.tensorrt and args.precision == "int8"):
        raise InputError("--calib-images is used only by --tensorrt --precision int8; drop it or add those")
    if args.calib_images is not None and not args.calib_images.is_dir():
        raise InputError(f"--calib-images {args.calib_images}: no such directory")
    bundle = Bundle.load(args.bundle)
    frames = read_frames(args.parity_images) if args.parity_images else None
    onnx_key, _ = onnx_artifact(args.argmax_head)
    unfused = [k for k, a in bundle.artifacts("onnx").items() if not a.fused]
    if want_onnx or (onnx_key not in bundle.card.artifacts and not (camera and unfused)):
        if bundle.card.imported and not bundle.artifacts("keras"):
            raise InputError(f"{bundle.path} holds an imported ONNX, there is no Keras model to export "
                             "from; build its TensorRT engine with `cityseg export BUNDLE --tensorrt` "
                             "(without --onnx/--argmax-head)")
        report = export_onnx(bundle, argmax_head=args.argmax_head, opset=args.opset, force=args.force,
                             frames=frames, strict=args.strict,
                             confidence=args.confidence and (args.argmax_head or not camera))
        print(f"wrote {bundle.artifact_path(onnx_key)}")
        print(report.summary())
    if camera:
        from cityseg.export.fused_io import export_fused

        onnx_key, report = export_fused(bundle, camera, confidence=args.confidence, force=args.force,
                                        frames=frames, strict=args.strict,
                                        source=onnx_key if want_onnx or onnx_key in unfused else None)
        print(f"wrote {bundle.artifact_path(onnx_key)}")
        print(report.summary())
    if args.tensorrt:
        result = trt_export.export_tensorrt(
            bundle, precision=args.precision, argmax_head=args.argmax_head, onnx_key=onnx_key if camera else None,
            calib_images=args.calib_images,
            calib_batch=args.calib_batch, calib_limit=args.calib_limit, profile=profile,
            workspace_mb=args.workspace_mb, force=args.force, rebuild=not args.no_rebuild, frames=frames)
        if result.built:
            print(f"built {result.path} ({'; '.join(result.reasons)})")
            print(result.report.summary())
        else:
            print(f"{result.path} is up to date for this GPU and ONNX (pass --force to rebuild)")
    print(f"bundle {bundle.path}: {', '.join(bundle.card.artifacts)}")
    return 0

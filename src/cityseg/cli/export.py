"""`cityseg export`: add model.onnx (and a TensorRT engine) to a bundle, each checked for parity."""

from __future__ import annotations

import argparse
from pathlib import Path

from cityseg.bundle import Bundle, CameraInput
from cityseg.bundle.precision import PRECISIONS
from cityseg.data.layouts import LAYOUTS
from cityseg.errors import InputError
from cityseg.export import calibration
from cityseg.export import tensorrt_build as trt_export
from cityseg.export.calibration import image_files
from cityseg.export.fused_io import export_fused, parse_camera_size
from cityseg.export.onnx import export_onnx, onnx_artifact
from cityseg.export.precision import export_precision as write_variant
from cityseg.export.precision import precision_artifact
from cityseg.fileio import read_image
from cityseg.tensorrt.engine_cache import BatchProfile

CALIB_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_CALIB_LIMIT = 64
GATE_FRAMES = 8
"""Generated street scenes the gate uses without --eval-data."""


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
    p.add_argument("--precision", choices=PRECISIONS,
                   help="the model file's precision: int8 writes model_int8.onnx (static Q/DQ, calibrated) and "
                        "fp16 model_fp16.onnx (fp32 I/O), each with its argmax-head twin; bf16 records the fp32 "
                        "ONNX run by OpenVINO in bf16. Each must pass the accuracy gate. With --tensorrt: the "
                        "engine is built strongly typed from that ONNX (default fp16)")
    p.add_argument("--calib-images", type=Path, metavar="DIR",
                   help="int8: folder of representative frames of the target camera")
    p.add_argument("--calib-data", type=Path, metavar="ROOT",
                   help="int8: calibrate on a split of a dataset in the Cityscapes layout (with --calib-split)")
    p.add_argument("--calib-split", default="train", metavar="NAME", help="split of --calib-data (default train)")
    p.add_argument("--calib-method", choices=CALIB_METHODS, default="minmax",
                   help="int8 activation ranges: minmax (default), entropy or percentile")
    p.add_argument("--calib-limit", type=int, default=DEFAULT_CALIB_LIMIT, metavar="N",
                   help=f"int8: use at most N calibration frames, spread over the set (default {DEFAULT_CALIB_LIMIT})")
    p.add_argument("--eval-data", type=Path, metavar="ROOT",
                   help="accuracy gate on a labelled split (laid out as --eval-layout says): mIoU drop <= 1 "
                        "point, no class drops > 3; without it the fp32 model's masks on generated scenes are "
                        "the reference")
    p.add_argument("--eval-split", default="val", metavar="NAME", help="split of --eval-data (default val)")
    p.add_argument("--eval-layout", choices=LAYOUTS, default="cityscapes",
                   help="how --eval-data is laid out (default cityscapes; docs/DATA.md)")
    p.add_argument("--eval-label-map", metavar="MAP",
                   help="score the gate on another dataset's labels through a cross-dataset map: "
                        "cityscapes-to-camvid (built in) or a label-map YAML (docs/DATA.md)")
    p.add_argument("--eval-limit", type=int, default=100, metavar="N", help="gate on at most N frames (default 100)")
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

    if not directory.is_dir():
        raise InputError(f"--parity-images {directory}: no such directory")
    return [cv2.cvtColor(read_image(p), cv2.COLOR_BGR2RGB) for p in image_files(directory, limit, "--parity-images")]


def check_precision_args(args: argparse.Namespace) -> None:
    """InputError for calibration / gate options that do not fit --precision (before any work)."""
    calib = args.calib_images is not None or args.calib_data is not None
    if calib and args.precision != "int8":
        raise InputError("--calib-images / --calib-data are used only by --precision int8; drop them or add it")
    if args.calib_images is not None and args.calib_data is not None:
        raise InputError("--calib-images and --calib-data both give calibration frames; give one")
    if args.precision == "int8" and not calib:
        raise InputError("--precision int8 needs calibration frames: --calib-images DIR, or --calib-data ROOT "
                         "[--calib-split train] (a few dozen frames of the target camera)")
    if args.eval_data is not None and args.precision in (None, "fp32"):
        raise InputError("--eval-data is the accuracy gate of --precision int8/fp16/bf16; drop it or add one")
    if args.eval_data is None and (args.eval_label_map is not None or args.eval_layout != "cityscapes"):
        raise InputError("--eval-layout and --eval-label-map describe --eval-data ROOT; add it or drop them")
    if args.precision == "bf16" and args.tensorrt:
        raise InputError("--precision bf16 is OpenVINO's CPU precision; TensorRT builds fp32, fp16 or int8")
    if args.calib_limit < 1 or args.eval_limit < 1:
        raise InputError("--calib-limit and --eval-limit must be at least 1")


def precision_frames(args: argparse.Namespace, card):
    """(calibration FrameSet or None, evaluation FrameSet) of the options, checked."""
    calib = None
    if args.calib_images is not None:
        calib = calibration.folder_frames(args.calib_images, args.calib_limit)
    elif args.calib_data is not None:
        calib = calibration.dataset_frames(args.calib_data, args.calib_split, args.calib_limit)
    if args.eval_data is not None:
        from cityseg.label_maps import load_label_map

        label_map = load_label_map(args.eval_label_map) if args.eval_label_map is not None else None
        evaluation = calibration.dataset_frames(args.eval_data, args.eval_split, args.eval_limit, minimum=1,
                                                option="--eval-data", with_labels=True,
                                                layout=args.eval_layout, label_map=label_map)
    else:
        evaluation = calibration.generated_frames(card, GATE_FRAMES)
    return calib, evaluation


def export_precision(args: argparse.Namespace, bundle) -> None:
    """Write (or record) the --precision variant, gated; print the figures."""
    calib, evaluation = precision_frames(args, bundle.card)
    result = write_variant(bundle, args.precision, calibration=calib, evaluation=evaluation,
                           method=args.calib_method, force=args.force, for_tensorrt=args.tensorrt)
    for key, report in zip(result.keys, result.reports):
        print(f"wrote {bundle.artifact_path(key)}" if args.precision != "bf16" else f"recorded {key}")
        print(report.summary())
    print("latency per frame (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in result.latency_ms.items()))


def camera_input(args: argparse.Namespace):
    """The CameraInput of --fused-io (None without it); InputError for a missing or stray --camera-size."""
    if not args.fused_io:
        if args.camera_size:
            raise InputError("--camera-size is used only by --fused-io; add it or drop --camera-size")
        return None
    if not args.camera_size:
        raise InputError("--fused-io needs the camera's frame size: --camera-size WIDTHxHEIGHT (e.g. 2048x1024)")
    return CameraInput(*parse_camera_size(args.camera_size), args.camera_order)


def batch_profile(args: argparse.Namespace):
    """The engine's BatchProfile from --batch or --max-batch (not both; default 1,1,4)."""
    if args.max_batch is not None:
        if args.batch is not None:
            raise InputError(f"--batch {args.batch} and --max-batch {args.max_batch} both set the batch profile; "
                             "give one (--max-batch N is --batch 1,N,N)")
        return BatchProfile.up_to(args.max_batch)
    return BatchProfile.parse(args.batch or "1,1,4")


def run(args: argparse.Namespace) -> int:
    camera = camera_input(args)
    precision = args.precision or ("fp16" if args.tensorrt else "fp32")
    want_onnx = args.onnx or args.argmax_head if camera else args.onnx or not (args.tensorrt or precision != "fp32")
    profile = batch_profile(args)
    if args.tensorrt:
        trt_export.require_runtime()  # one clear message before any work
    check_precision_args(args)
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
        onnx_key, report = export_fused(bundle, camera, confidence=args.confidence, force=args.force,
                                        frames=frames, strict=args.strict,
                                        source=onnx_key if want_onnx or onnx_key in unfused else None)
        print(f"wrote {bundle.artifact_path(onnx_key)}")
        print(report.summary())
    if precision != "fp32":
        if camera:
            raise InputError("--fused-io takes the fp32 ONNX; reduced precision of a fused graph is not "
                             "supported - drop --precision (or --fused-io)")
        variant, _ = precision_artifact(precision, onnx_key)
        if variant not in bundle.card.artifacts or not args.tensorrt or args.force:
            export_precision(args, bundle)
        onnx_key = variant if precision != "bf16" else onnx_key
    if args.tensorrt:
        result = trt_export.export_tensorrt(
            bundle, precision=precision, onnx_key=onnx_key, profile=profile,
            workspace_mb=args.workspace_mb, force=args.force, rebuild=not args.no_rebuild, frames=frames)
        if result.built:
            print(f"built {result.path} ({'; '.join(result.reasons)})")
            print(result.report.summary())
        else:
            print(f"{result.path} is up to date for this GPU and ONNX (pass --force to rebuild)")
    print(f"bundle {bundle.path}: {', '.join(bundle.card.artifacts)}")
    return 0

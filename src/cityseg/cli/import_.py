"""`cityseg import`: a bundle for an ONNX model cityseg did not train (mmsegmentation, PaddleSeg, PyTorch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cityseg.acquisition.importer import ImportOptions, import_onnx
from cityseg.cli import parse_dimensions, positive_float
from cityseg.errors import InputError
from cityseg.labels import load_label_set


def _triple(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} is not three numbers R,G,B, e.g. 123.675,116.28,103.53")
    return values


def _size(text: str) -> tuple[int, int]:
    return parse_dimensions(text, "HEIGHTxWIDTH")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "import", help="bundle an ONNX model trained elsewhere (your classes, your preprocessing)",
        description="Writes BUNDLE (model.json + model.onnx) for an ONNX segmentation model cityseg did "
                    "not train. Layout, input size and output kind are read from the graph when it says "
                    "them; the preprocessing (channel order, scale, mean, std, resize) must be given. "
                    "Normalised pixel = (pixel * scale - mean) / std, pixel 0-255 after the channel order. "
                    "The model is run once on a street frame and refused, naming the problem, when its "
                    "output cannot work. See docs/MODELS.md.")
    p.add_argument("model", type=Path, metavar="MODEL", help="the ONNX file, or a TFLite file (converted with tf2onnx)")
    p.add_argument("--out", required=True, type=Path, metavar="BUNDLE", help="bundle directory to write")
    p.add_argument("--labels", required=True, metavar="LABELS",
                   help="cityscapes (19 trainIds), cityscapes-labelid (34 labelIds), or a label-set YAML file")
    p.add_argument("--layout", choices=("auto", "nchw", "nhwc"), default="auto",
                   help="input layout (default: from the input shape)")
    p.add_argument("--input-size", type=_size, metavar="HxW",
                   help="network input HEIGHTxWIDTH; required when the model's height/width are dynamic")
    p.add_argument("--channel-order", choices=("rgb", "bgr"), type=str.lower,
                   help="channel order the model expects (rgb or bgr, any case)")
    p.add_argument("--scale", type=float, metavar="S",
                   help="pixel multiplier before mean/std, e.g. 0.00392156862745098 (1/255) for torchvision "
                        "or PaddleSeg; default 1 when --mean is in the 0-255 domain, else required")
    p.add_argument("--mean", type=_triple, metavar="R,G,B", help="per-channel mean, red green blue")
    p.add_argument("--std", type=_triple, metavar="R,G,B", help="per-channel std, red green blue")
    p.add_argument("--resize", choices=("area", "linear", "nearest"),
                   help="how frames are resized to the input size (mmsegmentation/PaddleSeg: linear)")
    p.add_argument("--output", choices=("auto", "logits", "probabilities", "sigmoid", "argmax"), default="auto",
                   help="what the first output is (default: from its dtype and the operator before it)")
    p.add_argument("--fit", choices=("stretch", "letterbox", "tiles"), default="stretch",
                   help="frames of another aspect than the input: stretch them (default), letterbox them "
                        "(pad with black, the mask cut back to the frame), or cover them with input-sized "
                        "tiles and stitch the masks (models trained on crops; see --tile-scale)")
    p.add_argument("--tile-scale", type=positive_float, default=None, metavar="S",
                   help="with --fit tiles: resize frames by S before cutting them into tiles (default 1: the "
                        "camera's pixels; e.g. 0.5 for a model trained on crops of half-resolution frames)")
    p.add_argument("--name", help="model name on the card (default: the file's stem)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    space = load_label_set(args.labels)
    scale = args.scale
    if scale is None and args.mean is not None and args.std is not None and max(args.mean) > 1.0:
        scale = 1.0  # mean/std in the 0-255 domain (mmsegmentation, PaddleSeg): no rescale before them
    if args.tile_scale is not None and args.fit != "tiles":
        raise InputError(f"--tile-scale {args.tile_scale:g} only applies to --fit tiles (the fit is {args.fit})")
    options = ImportOptions(layout=args.layout, input_size=args.input_size, channel_order=args.channel_order,
                            scale=scale, mean=args.mean, std=args.std, resize=args.resize, output=args.output,
                            fit=args.fit, tile_scale=1.0 if args.tile_scale is None else args.tile_scale)
    bundle = import_onnx(args.model, args.out, space, options, name=args.name, force=args.force)
    card = bundle.card
    artifact = card.artifacts["onnx"]
    trial = artifact.details["trial"]
    fit = "" if card.fit == "stretch" else f", fit {card.fit}"
    fit += f" (tile scale {card.tile_scale:g})" if card.fit == "tiles" else ""
    print(tensorrt_line(bundle))
    print(f"wrote {bundle.path}: {card.name}, {card.input_layout} {card.input_height}x{card.input_width} "
          f"{card.channel_order}{fit}, {artifact.output} output ({artifact.output_layout}, stride "
          f"{trial['output_stride']:g}), {card.num_classes} classes ({card.space.name})")
    return 0


def tensorrt_line(bundle) -> str:
    """One line on what TensorRT 10 would reject in the bundle's ONNX, and where the full list is."""
    from cityseg.export.tensorrt_compat import Finding, summarize

    details = bundle.card.artifacts["onnx"].details
    findings = details.get("tensorrt_check") or []
    if details.get("role") == "float-twin":
        original = bundle.card.artifacts[details["source_artifact"]]
        agreement = details.get("agreement_with_original", {}).get("pixel_agreement", 0)
        return (f"TensorRT 10: {summarize([]) if not findings else f'{len(findings)} problem(s)'} in the float "
                f"twin {bundle.card.artifacts['onnx'].path} (TensorRT builds from it; {agreement:.2%} pixel "
                f"agreement with the original); the publisher's quantised {original.path} runs on CPUs")
    if str(details.get("float_twin", "")).startswith("refused"):
        return (f"TensorRT 10: no float twin ({details['float_twin']}); ONNX Runtime runs the original "
                f"{bundle.card.artifacts['onnx'].path}, TensorRT cannot")
    if not findings:
        return "TensorRT 10: " + summarize([])
    problems = [Finding(where="", problem=f.split(": ", 1)[-1]) for f in findings]
    return (f"{summarize(problems)}; ONNX Runtime runs it. The full list: artifacts.onnx.details.tensorrt_check "
            f"in {bundle.path / 'model.json'}")

"""`cityseg evaluate`: official Cityscapes mIoU of label PNGs, or of a model bundle on a split."""

from __future__ import annotations

import argparse
from pathlib import Path

from cityseg.data.layouts import LAYOUTS
from cityseg.errors import CitysegError
from cityseg.evaluation.run import evaluate_bundle, evaluate_directories, format_table
from cityseg.fileio import write_json_atomic
from cityseg.inference.backends import BACKEND_CHOICES
from cityseg.labels import load_label_set


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="official Cityscapes mIoU of predictions or of a model",
        description="Scores exactly like cityscapesScripts' evalPixelLevelSemanticLabeling "
                    "(19 classes, labelIds at full resolution). Either --predictions DIR "
                    "--ground-truth DIR (files *_labelIds.png matched to *_gtFine_labelIds.png by "
                    "<city>_<seq>_<frame>), or --model BUNDLE --data-root DIR [--split val]. "
                    "A label set of one's own (--labels YAML, or a bundle carrying one) is scored "
                    "per class of the set, the ground truth mapped through its label_map.")
    files = p.add_argument_group("score label PNGs")
    files.add_argument("--predictions", type=Path, metavar="DIR",
                       help="folder with <city>_<seq>_<frame>*_labelIds.png predictions (searched recursively; "
                            "*_trainIds.png with --labels cityscapes, *_classIds.png with a --labels YAML)")
    files.add_argument("--ground-truth", type=Path, metavar="DIR",
                       help="folder with *_gtFine_labelIds.png files, e.g. ROOT/gtFine/val")
    files.add_argument("--labels", metavar="SET",
                       help="label set of the predictions: a YAML file (classes with id/name/color, "
                            "label_map: ground-truth labelId -> class id), or cityscapes (trainIds); "
                            "default: Cityscapes labelIds")
    model = p.add_argument_group("run a model first")
    model.add_argument("--model", type=Path, metavar="BUNDLE",
                       help="model bundle: a directory, or a name looked up in ./models, "
                            "$CITYSEG_MODELS, the installed share dir")
    model.add_argument("--data-root", type=Path, metavar="DIR",
                       help="Cityscapes root holding leftImg8bit/ and gtFine/")
    model.add_argument("--split", default="val",
                       help="train, val, test, or the study's study_train / study_dev / study_test "
                            "(default val)")
    model.add_argument("--layout", choices=LAYOUTS,
                       help="how --data-root is laid out (default: the layout the bundle was trained "
                            "on, else cityscapes; docs/DATA.md)")
    model.add_argument("--label-map", metavar="MAP",
                       help="score a model of another label set through a cross-dataset map: "
                            "cityscapes-to-camvid (built in) or a label-map YAML (docs/DATA.md)")
    model.add_argument("--backend", default="auto", choices=BACKEND_CHOICES)
    model.add_argument("--artifact", default="auto",
                       help="the bundle's model file to score, by its card key (e.g. onnx_quantized, "
                            "onnx_int8: the keys of artifacts in its model.json); default: what --backend picks")
    p.add_argument("--json", type=Path, metavar="OUT",
                   help="also write {miou, class_iou, category_iou, pixel_accuracy, ...} as JSON")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.set_defaults(run=run)


def _check_mode(args: argparse.Namespace) -> str:
    files = args.predictions is not None or args.ground_truth is not None
    model = args.model is not None or args.data_root is not None
    if files == model:
        raise CitysegError("give either --predictions DIR --ground-truth DIR, or --model BUNDLE "
                           "--data-root DIR (not both)")
    if (args.layout is not None or args.label_map is not None or args.artifact != "auto") and not model:
        raise CitysegError("--layout, --label-map and --artifact go with --model BUNDLE --data-root DIR")
    if args.labels is not None and not files:
        raise CitysegError("--labels goes with --predictions/--ground-truth; a model bundle's card "
                           "names its own label set")
    if files and (args.predictions is None or args.ground_truth is None):
        raise CitysegError("--predictions and --ground-truth go together; give both directories")
    if model and (args.model is None or args.data_root is None):
        raise CitysegError("--model and --data-root go together; give the bundle and the Cityscapes root")
    return "files" if files else "model"


def run(args: argparse.Namespace) -> int:
    mode = _check_mode(args)
    if args.json is not None and args.json.exists() and not args.force:
        raise CitysegError(f"{args.json} already exists; pass --force to overwrite it or choose another --json")
    if mode == "files":
        space = load_label_set(args.labels) if args.labels is not None else None
        result = evaluate_directories(args.predictions, args.ground_truth, progress=True, space=space)
    else:
        from cityseg.label_maps import load_label_map

        label_map = load_label_map(args.label_map) if args.label_map is not None else None
        result = evaluate_bundle(args.model, args.data_root, args.split, args.backend, progress=True,
                                 layout=args.layout, label_map=label_map, artifact=args.artifact)
    print(format_table(result))
    if args.json is not None:
        write_json_atomic(args.json, result.to_json())
        print(f"wrote {args.json}")
    return 0

"""`cityseg segment`: label, colour and overlay PNGs for street images."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from cityseg.bundle import Bundle
from cityseg.errors import CitysegError, InputError
from cityseg.fileio import read_image, require_file, write_png
from cityseg.inference import Segmenter
from cityseg.inference.backends import BACKEND_CHOICES
from cityseg.labels import AUTO_ID_SPACE, ID_SPACES, mask_id_space

_CITYSCAPES_SUFFIX = re.compile(r"_leftImg8bit$")


def add_parser(sub) -> None:
    p = sub.add_parser("segment", help="segment images with a model bundle",
                       description="Writes <stem>_labelIds.png (or _trainIds.png; _classIds.png for a "
                                   "model with its own label set) at the input resolution, "
                                   "<stem>_color.png, <stem>_overlay.png and, unless the model only "
                                   "outputs class ids, <stem>_confidence.png (top-class probability "
                                   "x 255) per image.")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files (PNG, JPEG...)")
    p.add_argument("--model", required=True, type=Path,
                   help="model bundle: a directory, or a name looked up in ./models, "
                        "$CITYSEG_MODELS, the installed share dir")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--backend", default="auto", choices=BACKEND_CHOICES)
    p.add_argument("--id-space", choices=ID_SPACES, default=None,
                   help="id space of the written masks for Cityscapes models (default: labelid, as "
                        "Cityscapes' *_labelIds.png); models with their own label set write their ids")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the colour mask (0-1)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.set_defaults(run=run)


def output_stem(image: Path) -> str:
    """`aachen_000000_000019_leftImg8bit.png` -> `aachen_000000_000019`; other names keep their stem."""
    return _CITYSCAPES_SUFFIX.sub("", image.stem)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if not 0.0 <= args.alpha <= 1.0:
        raise CitysegError(f"--alpha must be within [0, 1], got {args.alpha}")
    for image in args.images:  # fail before loading the model on a bad path
        require_file(image, "image")
    bundle = Bundle.load(args.model)
    id_space = mask_id_space(args.id_space or AUTO_ID_SPACE, bundle.card.space, where=str(bundle.path),
                             option="--id-space")
    suffix = {"labelid": "labelIds", "trainid": "trainIds", None: "classIds"}[id_space]
    kinds = (suffix, "color", "overlay", "confidence")
    targets = {image: [args.out / f"{output_stem(image)}_{kind}.png" for kind in kinds]
               for image in args.images}
    stems: dict[str, Path] = {}
    for image in args.images:
        other = stems.setdefault(output_stem(image), image)
        if other != image:
            raise CitysegError(f"{other} and {image} would both write {output_stem(image)}_*.png; "
                               "segment them into different --out directories")
    existing = [str(p) for paths in targets.values() for p in paths if p.exists()]
    if existing and not args.force:
        raise CitysegError(f"{len(existing)} output file(s) already exist (e.g. {existing[0]}); "
                           "pass --force to overwrite or choose another --out")
    segmenter = Segmenter(bundle, backend=args.backend, id_space=id_space, need_confidence=True)
    print(f"model {segmenter.bundle.card.name} on {segmenter.backend.describe()}")
    if not segmenter.has_confidence:
        print(f"no _confidence.png: {segmenter.confidence_unavailable_reason}")
    failed = []
    for image in tqdm(args.images, unit="img", disable=len(args.images) < 2):
        try:
            frame = read_image(image)  # BGR
            result = segmenter.segment(frame, channel_order="BGR")
        except InputError as exc:  # one unreadable image must not stop the others
            failed.append(str(exc))
            continue
        mask_path, color_path, overlay_path, confidence_path = targets[image]
        outputs = [(mask_path, result.mask), (color_path, result.color("BGR")),
                   (overlay_path, result.overlay(frame, args.alpha, "BGR"))]
        if result.has_confidence:
            outputs.append((confidence_path, result.confidence))
        _write_all_or_none(outputs, write_png)
    done = len(args.images) - len(failed)
    print(f"wrote {(4 if segmenter.has_confidence else 3) * done} files to {args.out}")
    if failed:
        raise InputError(f"{len(failed)} of {len(args.images)} image(s) could not be segmented: "
                         + "; ".join(failed))
    return 0


def _write_all_or_none(outputs: list, write_png) -> None:
    """Write every (path, image) of one input image; on a failure (a full disk) remove the ones
    just written, so no image is left with half its outputs."""
    written = []
    try:
        for path, image in outputs:
            write_png(path, image)
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise

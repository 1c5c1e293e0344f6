"""`cityseg bench`: per-stage latency table against the study's approach."""

from __future__ import annotations

import argparse
from pathlib import Path

from cityseg.benchmarking.harness import run_bench
from cityseg.benchmarking.report import format_table, machine_description, result_line, update_doc
from cityseg.bundle.precision import PRECISIONS
from cityseg.cli import parse_dimensions, positive_int
from cityseg.cli.export import CALIB_METHODS
from cityseg.errors import CitysegError
from cityseg.fileio import check_writable_location, write_bytes_atomic
from cityseg.inference.backends import BACKENDS


def parse_size(text: str) -> tuple[int, int]:
    """'256x512' -> (256, 512): network input HEIGHTxWIDTH, as model cards and tables write it."""
    return parse_dimensions(text, "HEIGHTxWIDTH")


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="per-stage latency table at 2048x1024 vs the study's approach",
                       description="Times decode, convert, preprocess, inference per backend, "
                                   "postprocess, colour, overlay and the whole frame at 2048x1024, "
                                   "with the study's approach (Keras predict + per-label colouring "
                                   "loop) measured in the same run as the baseline. The last line, "
                                   "RESULT, reports the first model (the default model unless "
                                   "--model/--models say otherwise) at its largest size on its "
                                   "fastest backend.")
    p.add_argument("--model", type=Path, action="append", default=[],
                   help="bundle to time, a path or a name in ./models etc. (repeatable); default: every "
                        "registered model, random weights")
    p.add_argument("--models", nargs="*", default=None,
                   help="registered model names to time (none after --models: no registered model)")
    p.add_argument("--imported", action="store_true",
                   help="also time an imported model: a generated ONNX shaped like PIDNet/DDRNet exports "
                        "(NCHW, batch 1, logits at 1/8) bundled by `cityseg import`, at each --sizes")
    p.add_argument("--sizes", nargs="+", type=parse_size, default=[(256, 512), (512, 1024)], metavar="HxW",
                   help="network input sizes HEIGHTxWIDTH for registered models (default 256x512 512x1024)")
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    p.add_argument("--precisions", nargs="+", default=["fp32"], choices=PRECISIONS,
                   help="also time these precision variants of each model (made and gated like `cityseg export "
                        "--precision`, calibrated on generated scenes; rows say the gate's verdict)")
    p.add_argument("--calib-method", choices=CALIB_METHODS, default="minmax",
                   help="how the int8 rows are calibrated (as `cityseg export --calib-method`; default minmax)")
    p.add_argument("--repeats", type=positive_int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-baseline", action="store_true", help="skip the study-approach baseline")
    p.add_argument("--out", type=Path, help="also write the table (markdown) to this new file")
    p.add_argument("--force", action="store_true", help="let --out replace an existing file")
    p.add_argument("--update-doc", type=Path, help="replace the table between the bench markers in this doc")
    p.set_defaults(run=run)


def _registered_models() -> list[str]:
    """Every registered model, the default first (building them needs TensorFlow)."""
    try:
        # lazy: cityseg.models imports Keras (TensorFlow), needed only where a Keras model is built
        from cityseg.models import DEFAULT_MODEL, model_names
    except ImportError as exc:
        raise CitysegError(f"timing the registered models needs TensorFlow ({exc}); install the "
                           "`train` extra, or time a bundle with --model BUNDLE") from None
    return [DEFAULT_MODEL] + [m for m in model_names() if m != DEFAULT_MODEL]


def run(args: argparse.Namespace) -> int:
    if args.out and args.out.exists() and not args.force:
        raise CitysegError(f"{args.out}: already exists; pass --force to replace it or choose another --out")
    if args.out:
        check_writable_location(args.out, "--out")  # before minutes of benchmarking

    models = args.models
    if models is None and not args.model:
        models = _registered_models()
    models = models or []
    rows, baselines = run_bench(args.model, models, args.sizes, args.backends,
                                args.repeats, args.warmup, baseline=not args.no_baseline,
                                imported=args.imported, precisions=tuple(args.precisions),
                                calib_method=args.calib_method)
    if not rows:
        raise CitysegError("no backend could run any of the models here (why, per backend, above: export the "
                           "bundle's ONNX, or install the `onnx` or `train` extra)")
    table = format_table(rows, baselines)
    header = (f"Measured on {machine_description()}; camera frame 2048x1024; medians of "
              f"{args.repeats} runs after {args.warmup} warm-up runs"
              + (f"; int8 calibrated with {args.calib_method}." if "int8" in args.precisions else "."))
    print()
    print(header)
    print(table)
    if args.out:
        write_bytes_atomic(args.out, (header + "\n\n" + table + "\n").encode())
    if args.update_doc:
        update_doc(args.update_doc, table, header)
    print(result_line(rows, baselines))
    return 0

"""The model table of docs/MODELS.md: parameters, GFLOPs, on-disk size (and CPU latency) per model.

Every registered model is built at 512x1024 with 19 classes (the Cityscapes benchmark setting)
and its default parameters. Columns: parameters; GFLOPs = 2 x multiply-accumulates per image and
GMACs (cityseg.models.profile: Conv/Separable/Depthwise/Transposed conv and Dense layers);
size of the saved .keras file. ``--latency HxW`` adds the median ONNX Runtime CPU time of one
image at that size (exported by cityseg.export.onnx, opset 17), labelled with this machine's CPU.
The study's own setting (U-Net, 128x128, 34 labelIds) is printed as a separate line.

    python benchmarks/models_table.py                 # print the table
    python benchmarks/models_table.py --write         # and replace it in docs/MODELS.md
    python benchmarks/models_table.py --latency 256x512 --write

The last line is machine-readable: RESULT <name>_params=... <name>_gflops=... for each model.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cityseg.benchmarking.fixtures import random_model  # noqa: E402
from cityseg.benchmarking.report import machine_description  # noqa: E402
from cityseg.benchmarking.timing import median_ms  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "MODELS.md"
BEGIN, END = "<!-- models-table:begin -->", "<!-- models-table:end -->"


def onnx_cpu_ms(model, card, repeats: int) -> float:
    """Median ONNX Runtime CPU milliseconds for one image (after one warm-up run) of the model as
    our exporter writes it (cityseg.export.onnx: tf2onnx plus its graph fixes)."""
    import numpy as np
    import onnxruntime as ort

    from cityseg.export.onnx import DEFAULT_OPSET, INPUT_NAME, convert

    proto = convert(model, card, argmax_head=False, opset=DEFAULT_OPSET)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(size=(1, card.input_height, card.input_width, 3)).astype(np.float32)
    return median_ms(lambda: session.run(None, {INPUT_NAME: x}), repeats, warmup=1)


def measure(name: str, latency: tuple[int, int] | None, repeats: int) -> dict:
    from cityseg.models import build_model
    from cityseg.models.profile import count_params, gflops, gmacs, saved_size_bytes

    model = build_model(name, (512, 1024, 3), 19)
    row = {"name": name, "params": count_params(model), "gflops": gflops(model, 512, 1024),
           "gmacs": gmacs(model, 512, 1024), "size_mb": saved_size_bytes(model) / 1e6}
    if latency:
        small, card = random_model(name, *latency)
        row["cpu_ms"] = onnx_cpu_ms(small, card, repeats)
    return row


def table(rows: list[dict], latency: tuple[int, int] | None) -> str:
    from cityseg.models import DEFAULT_MODEL

    head = "| model | parameters | GFLOPs @512x1024 | GMACs | .keras size |"
    rule = "|---|---:|---:|---:|---:|"
    if latency:
        head += f" ONNX Runtime CPU @{latency[0]}x{latency[1]} |"
        rule += "---:|"
    lines = [head, rule]
    for r in rows:
        name = f"`{r['name']}`" + (" (default)" if r["name"] == DEFAULT_MODEL else "")
        line = (f"| {name} | {r['params'] / 1e6:.2f} M | {r['gflops']:.1f} | {r['gmacs']:.1f} | "
                f"{r['size_mb']:.1f} MB |")
        if latency:
            line += f" {r['cpu_ms']:.0f} ms |"
        lines.append(line)
    return "\n".join(lines)


def study_line() -> str:
    from cityseg.models import build_model
    from cityseg.models.profile import count_params, gflops

    model = build_model("unet", (128, 128, 3), 34)
    return (f"The study's own setting, `unet` at 128x128 with 34 labelIds: "
            f"{count_params(model) / 1e6:.2f} M parameters, {gflops(model, 128, 128):.1f} GFLOPs per image.")


def write_doc(text: str) -> None:
    from cityseg.fileio import write_bytes_atomic

    doc = DOC.read_text()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{DOC}: markers {BEGIN} / {END} not found; add them where the table goes")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    write_bytes_atomic(DOC, pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", doc).encode())
    print(f"wrote the table into {DOC}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", metavar="HxW", help="also time ONNX Runtime CPU inference at this size")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model (--latency)")
    parser.add_argument("--write", action="store_true", help=f"replace the table in {DOC}")
    args = parser.parse_args()
    latency = tuple(int(v) for v in args.latency.split("x")) if args.latency else None

    from cityseg.models import model_names

    rows = [measure(name, latency, args.repeats) for name in model_names()]
    text = table(rows, latency) + "\n\n" + study_line()
    if latency:
        text += (f"\n\nCPU latency: median of {args.repeats} runs, batch 1, float32, "
                 f"a shared {machine_description()}.")
    print(text)
    if args.write:
        write_doc(text)
    print("RESULT " + " ".join(f"{r['name']}_params={r['params']} {r['name']}_gflops={r['gflops']:.2f}"
                               for r in rows))


if __name__ == "__main__":
    main()

"""Per-frame latency of Keras vs ONNX Runtime (and TensorRT where present), every registered model.

For each model of ``cityseg.models.model_names()`` (random weights: latency does not depend on
them) and each size (default 256x512 and 512x1024): build the Keras model, convert it with the
project's exporter (``cityseg.export.onnx.convert``: tf2onnx, opset 17, dynamic batch), and time
batch-1 inference of the same float32 frame with

* Keras: ``model(x, training=False)`` inside a ``tf.function`` (what the TensorFlow backend runs);
* ONNX Runtime: CUDA provider when present, else CPU, all graph optimisations on; once with the
  default session (as the ONNX Runtime backend opens it) and once with intra-op thread spinning
  off (busy-waiting threads lose on a CPU shared with other processes);
* TensorRT: an FP16 engine built from the same ONNX, where TensorRT 10 and a GPU exist.

Medians over ``--repeats`` runs after ``--warmup`` runs (a run stops early once ``--budget``
seconds are spent, keeping at least 3 timed runs). The last line is machine-readable:
RESULT <model>_<H>x<W>_<backend>_ms=<median> ... <model>_<H>x<W>_<backend>_speedup=<keras/backend> ...
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from cityseg.benchmarking.fixtures import random_model
from cityseg.benchmarking.report import machine_description
from cityseg.benchmarking.timing import median_ms

DEFAULT_SIZES = ("256x512", "512x1024")


def parse_size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def keras_runner(model):
    import tensorflow as tf

    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda frame: call(tf.constant(frame)).numpy()


def onnxruntime_runner(path: Path, spinning: bool = True):
    import onnxruntime as ort

    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:  # idle intra-op threads sleep instead of busy-waiting (kinder to a shared CPU)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    name = session.get_inputs()[0].name
    return (lambda frame: session.run(None, {name: frame})[0]), session.get_providers()[0]


def tensorrt_runner(onnx_path: Path, card, cache_dir: Path):
    from cityseg.export.tensorrt_build import build_serialized_engine
    from cityseg.tensorrt.engine_cache import BatchProfile, timing_cache_path
    from cityseg.tensorrt.runtime import EngineRunner, current_platform

    platform_ = current_platform()
    engine = build_serialized_engine(onnx_path, card, precision="fp16", profile=BatchProfile(1, 1, 1),
                                     timing_cache=timing_cache_path(cache_dir, platform_))
    runner = EngineRunner(engine, name=f"{onnx_path.stem}.fp16")
    return runner.infer, platform_.describe()


def export(model, card, directory: Path) -> Path:
    import onnx

    from cityseg.export.onnx import convert

    path = directory / f"{card.name}.onnx"
    onnx.save(convert(model, card, argmax_head=False, opset=17), str(path))
    return path


def measure(name: str, height: int, width: int, args, workdir: Path, use_trt: bool) -> dict:
    model, card = random_model(name, height, width, name=f"{name}_{height}x{width}")
    frame = np.random.default_rng(0).random((1, height, width, 3), dtype=np.float32)

    def timed(run) -> float:
        return median_ms(lambda: run(frame), args.repeats, args.warmup, budget_s=args.budget)

    row = {"model": name, "size": f"{height}x{width}", "params": int(model.count_params())}
    row["keras_ms"] = timed(keras_runner(model))
    t0 = time.perf_counter()
    onnx_path = export(model, card, workdir)
    row["export_s"] = time.perf_counter() - t0
    run, row["onnxruntime_provider"] = onnxruntime_runner(onnx_path)
    row["onnxruntime_ms"] = timed(run)
    run, _ = onnxruntime_runner(onnx_path, spinning=False)
    row["onnxruntime_nospin_ms"] = timed(run)
    if use_trt:
        run, row["tensorrt_device"] = tensorrt_runner(onnx_path, card, workdir)
        row["tensorrt_ms"] = timed(run)
    for backend in ("onnxruntime", "onnxruntime_nospin", "tensorrt"):
        if f"{backend}_ms" in row:
            row[f"{backend}_speedup"] = row["keras_ms"] / row[f"{backend}_ms"]
    return row






def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from cityseg.models import model_names
    from cityseg.tensorrt.runtime import runtime_unavailable_reason

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=None, help=f"subset of {', '.join(model_names())}")
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="HxW sizes (default 256x512 512x1024)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--budget", type=float, default=5.0, help="seconds per measurement before stopping early")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    models = args.models or model_names()
    unknown = sorted(set(models) - set(model_names()))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; registered: {', '.join(model_names())}")
    trt_reason = runtime_unavailable_reason()
    print(f"machine: {machine_description()}")
    print(f"TensorRT: {'yes' if trt_reason is None else 'no (' + trt_reason + ')'}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="cityseg-latency-") as tmp:
        for name in models:
            for size in args.sizes:
                height, width = parse_size(size)
                row = measure(name, height, width, args, Path(tmp), trt_reason is None)
                rows.append(row)
                trt = (f", tensorrt {row['tensorrt_ms']:.1f} ms (x{row['tensorrt_speedup']:.2f})"
                       if "tensorrt_ms" in row else "")
                print(f"{name:18s} {row['size']:>9s}  keras {row['keras_ms']:8.1f} ms  onnxruntime "
                      f"{row['onnxruntime_ms']:8.1f} ms (x{row['onnxruntime_speedup']:.2f}, "
                      f"{row['onnxruntime_provider']}), no spinning {row['onnxruntime_nospin_ms']:8.1f} ms "
                      f"(x{row['onnxruntime_nospin_speedup']:.2f}){trt}  [export {row['export_s']:.1f} s]", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_description(), "rows": rows}, indent=2) + "\n")
    fields = []
    for row in rows:
        prefix = f"{row['model']}_{row['size']}"
        for key in ("keras_ms", "onnxruntime_ms", "onnxruntime_speedup", "onnxruntime_nospin_ms",
                    "onnxruntime_nospin_speedup", "tensorrt_ms", "tensorrt_speedup"):
            if key in row:
                fields.append(f"{prefix}_{key}={row[key]:.2f}")
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    main()

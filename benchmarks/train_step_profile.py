"""Where a training step's CPU time goes: TensorFlow's profiler over a few steps of one variant
of benchmarks/train_throughput.py, op time summed by the layer kind that owns the op (batch norm,
separable conv, dropout, loss, ...), forward and gradient apart.

    python benchmarks/train_step_profile.py --config training_configs/camvid.yaml \
        --data-root DIR/CamVid --variant crop_kbn

Op time is summed over TensorFlow's compute threads (it can exceed wall time on 2 cores); the
shares are what to read. Results: docs/PERFORMANCE.md (training throughput).
"""

from __future__ import annotations

import argparse
import collections
import glob
import re
import tempfile

from train_throughput import VARIANTS, build, fixed_batch, images_per_s

LAYER_KIND = re.compile(r"_(bn|sepconv|conv|dropout|resize|concat|relu|pool|dw|project|expand|add)"
                        r"\d*(_\d+)?$")


def op_kind(op_name: str) -> str:
    """'grad bn', 'fwd loss', ... for a profiled op name like 'unet_lite_1/dec1_a_bn_1/moments/Mean'."""
    direction = "grad" if "gradient_tape" in op_name else "fwd"
    for part in op_name.split(":")[0].split("/"):
        if part.startswith("compile_loss"):
            return f"{direction} loss"
        if part.startswith("adam") or part.startswith("sgd"):
            return "optimizer"
        match = LAYER_KIND.search(part)
        if match:
            return f"{direction} {match.group(1)}"
    return f"{direction} other (head, metrics)"


def op_times(logdir: str) -> collections.Counter:
    """Picoseconds per op name on TensorFlow's compute threads, from the profile in ``logdir``."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1], "rb") as handle:
        space.ParseFromString(handle.read())
    times: collections.Counter = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name not in ("ExecutorState::Process", "ParallelFor"):  # containers of ops
                    times[name] += event.duration_ps
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--variant", default="crop", choices=VARIANTS)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()

    import tensorflow as tf

    from cityseg.training.config import load_train_config

    cfg = load_train_config(args.config, data__root=args.data_root)
    model, dataset = build(cfg, args.variant)
    fixed = fixed_batch(dataset)  # the model step alone
    images_per_s(model, fixed, 2, cfg.data.batch_size)  # trace
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        rate = images_per_s(model, fixed, args.steps, cfg.data.batch_size)
        tf.profiler.experimental.stop()
        times = op_times(logdir)
    total = sum(times.values())
    kinds: collections.Counter = collections.Counter()
    op_types: collections.Counter = collections.Counter()
    for name, picoseconds in times.items():
        kinds[op_kind(name)] += picoseconds
        op_types[name.split(":")[-1]] += picoseconds
    print(f"{args.variant}: {rate:.2f} img/s while profiled, {total / 1e12:.2f} s of op time "
          f"over {args.steps} steps")
    for title, counter in (("by layer kind", kinds), ("by op type (top 12)", op_types)):
        print(f"-- {title}")
        for key, picoseconds in counter.most_common(12 if "top" in title else None):
            print(f"  {100 * picoseconds / total:5.1f} %  {picoseconds / 1e12:6.2f} s  {key}")


if __name__ == "__main__":
    main()

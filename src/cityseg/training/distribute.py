"""tf.distribute for a training run: the strategy, the chief, and what workers must agree on.

``distribute: mirrored`` trains on every local GPU (or logical CPU device) of one process;
``distribute: multi_worker`` trains one process per machine of a ``TF_CONFIG`` cluster. In both,
``data.batch_size`` is the *global* batch, split evenly across the replicas, and BatchNormalization
uses the statistics of the global batch (synchronised), so N replicas train like one device with
the same global batch.

In a cluster only the chief (task ``chief``, else ``worker`` 0) writes the run directory; the
other workers write to a temporary directory that is deleted at the end (as TensorFlow
recommends). Before training, the workers exchange a hash of their config, their starting epoch
and whether they could start, so a mismatch stops every worker with one message instead of a hang.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from cityseg.training.run_state import TrainingError
from cityseg.training.version_fence import check_versions

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 300
"""Seconds a multi-worker run waits for every worker of TF_CONFIG to start (`--join-timeout`)."""

TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:23456", "host2:23456"]}, '
                     '"task": {"type": "worker", "index": 0}}\'')


WORKER_LOCAL_KEYS = ("data.root", "data.cache_dir")
"""Config keys that may differ between the workers of one run (paths on each machine)."""


class ClusterError(TrainingError):
    """The workers of a multi-worker run cannot train together (TF_CONFIG, configs, joining)."""


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a TF_CONFIG cluster."""

    task_type: str
    task_id: int
    cluster: dict[str, list[str]]

    @property
    def num_workers(self) -> int:
        return sum(len(self.cluster.get(job, [])) for job in ("chief", "worker"))

    @property
    def is_chief(self) -> bool:
        return self.task_type == "chief" or (self.task_type == "worker" and self.task_id == 0
                                             and "chief" not in self.cluster)

    def describe(self) -> str:
        return f"{self.task_type} {self.task_id} of {self.num_workers} worker(s)"


def read_tf_config(environ: dict[str, str] | None = None) -> ClusterTask:
    """Parse and check ``TF_CONFIG``; a ClusterError says what is wrong and how to fix it."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not text:
        raise ClusterError("distribute: multi_worker needs the TF_CONFIG environment variable on "
                           f"every worker, e.g. {TF_CONFIG_EXAMPLE} (index 1 on the second "
                           "worker); for one machine use distribute: mirrored")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClusterError(f"TF_CONFIG is not valid JSON ({exc}); expected e.g. "
                           f"{TF_CONFIG_EXAMPLE}") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ClusterError(f"TF_CONFIG needs a 'cluster' and a 'task' mapping, e.g. {TF_CONFIG_EXAMPLE}")
    jobs = {job: list(cluster.get(job) or []) for job in ("chief", "worker")}
    if not any(jobs.values()):
        raise ClusterError("TF_CONFIG cluster lists no 'worker' (or 'chief') addresses; list "
                           "host:port of every worker")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in jobs or not jobs[task_type]:
        raise ClusterError(f"TF_CONFIG task type {task_type!r} is not a job of the cluster "
                           f"({', '.join(j for j, a in jobs.items() if a)}); set task.type to one")
    if not isinstance(index, int) or not 0 <= index < len(jobs[task_type]):
        raise ClusterError(f"TF_CONFIG task index {index!r} is out of range: the cluster has "
                           f"{len(jobs[task_type])} {task_type} address(es), so use 0.."
                           f"{len(jobs[task_type]) - 1} (a different index on every worker)")
    return ClusterTask(task_type, index, {j: a for j, a in jobs.items() if a})


def make_strategy(kind: str):
    """The tf.distribute strategy of ``distribute`` (the default strategy for 'none').

    ``multi_worker`` checks TF_CONFIG first; call it inside :func:`join_watchdog` (a worker
    that never starts makes TensorFlow wait forever) and before any other TensorFlow op.
    """
    import tensorflow as tf

    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind != "multi_worker":
        return tf.distribute.get_strategy()
    task = read_tf_config()
    log.info("multi-worker: %s (%s)", task.describe(), ", ".join(_addresses(task)))
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except Exception as exc:  # gRPC/coordination errors surface as several types
        raise ClusterError(f"cannot start MultiWorkerMirroredStrategy as {task.describe()} ({exc}); "
                           "check TF_CONFIG and run `cityseg train` in a fresh process") from None


def _addresses(task: ClusterTask) -> list[str]:
    return [address for job in ("chief", "worker") for address in task.cluster.get(job, [])]


_WATCHDOG = """
import os, signal, sys, time
parent, seconds, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    time.sleep(0.2)
    if os.getppid() != parent:
        sys.exit(0)
sys.stderr.write(message + "\\n")
sys.stderr.flush()
os.kill(parent, signal.SIGKILL)
"""


@contextlib.contextmanager
def join_watchdog(kind: str, seconds: float):
    """Stop this process with one clear message if the cluster has not formed within ``seconds``.

    TensorFlow waits without limit for every TF_CONFIG worker, in the strategy's start and in the
    first collective, holding the GIL and ignoring SIGTERM; so a separate watchdog process prints
    the message and kills this one on expiry. Leaving the block (joined, or failed) stops it.
    """
    if kind != "multi_worker":
        yield
        return
    import subprocess

    task = read_tf_config()
    message = (f"cityseg train: error: not every worker of TF_CONFIG joined within {seconds:.0f}s "
               f"(this is {task.describe()}; cluster {', '.join(_addresses(task))}); start "
               "`cityseg train` with the same config on each of them, check the addresses and "
               "ports, or raise --join-timeout")
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(seconds),
                                 message])
    try:
        yield
    finally:
        watchdog.kill()
        watchdog.wait()


def is_chief(strategy) -> bool:
    """True on the worker that writes checkpoints, plots and the bundle (always, for one worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not task_type:
        return True
    cluster = {job: list(addresses) for job, addresses in resolver.cluster_spec().as_dict().items()}
    return ClusterTask(task_type, int(resolver.task_id), cluster).is_chief


def num_workers(strategy) -> int:
    """Processes taking part in the run (1 unless multi-worker)."""
    return int(getattr(strategy.extended, "_num_workers", 1) or 1)


def config_digest(mapping: dict[str, Any]) -> int:
    """A 48-bit hash of a config mapping (exact in float64, for the workers' exchange)."""
    text = json.dumps(mapping, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "big")


def gather_from_workers(strategy, values) -> np.ndarray:
    """float64[workers, n]: every worker's ``values`` (one collective all-gather), worker order."""
    import tensorflow as tf

    local = np.asarray(values, dtype=np.float64).reshape(1, -1)
    per_replica = strategy.run(lambda: tf.constant(local))
    rows = np.asarray(strategy.gather(per_replica, axis=0))  # one row per replica, worker-major
    return rows[::max(1, len(rows) // num_workers(strategy))]


def agree(strategy, *, digest: int, epochs_done: int, error: Exception | None) -> None:
    """Stop every worker with one clear message unless all can start and train the same run.

    Exchanges (config digest, starting epoch, ready flag) between the workers; re-raises this
    worker's own ``error`` after the exchange so the others learn it stopped instead of hanging.
    """
    if num_workers(strategy) == 1:
        if error is not None:
            raise error
        return
    rows = gather_from_workers(strategy, [digest, epochs_done, 0.0 if error else 1.0])
    if error is not None:
        raise error
    failed = [i for i, row in enumerate(rows) if row[2] != 1.0]
    if failed:
        raise ClusterError(f"worker(s) {failed} could not start the run (see their log); fix "
                           "that and start every worker again")
    digests = [int(row[0]) for row in rows]
    if len(set(digests)) > 1:
        groups = {d: [i for i, x in enumerate(digests) if x == d] for d in dict.fromkeys(digests)}
        raise ClusterError("the workers were started with different configs (config hashes: "
                           + "; ".join(f"workers {v}: {k:012x}" for k, v in groups.items())
                           + "); start every worker with the same --config and overrides")
    epochs = sorted({int(row[1]) for row in rows})
    if len(epochs) > 1:
        raise ClusterError(f"the workers would resume from different epochs {epochs}; every worker "
                           "must read the same run directory (a shared filesystem) for --resume")


def broadcast_from_chief(strategy, values, chief_index: int = 0) -> np.ndarray:
    """The chief's float64 ``values`` on every worker (values on other workers are ignored)."""
    if num_workers(strategy) == 1:
        return np.asarray(values, dtype=np.float64)
    return gather_from_workers(strategy, values)[chief_index]


def adapt_to_strategy(model, dataset, strategy) -> None:
    """Work around two Keras 3 (<= 3.15, see :mod:`cityseg.training.version_fence`) gaps with several
    replicas; a no-op with one.

    1. ``fit`` builds metric/loss/optimizer state from a first batch that it *reduces across
       replicas*, which fails under MultiWorkerMirroredStrategy ("Attempt to convert a value
       (PerReplica...) to a Tensor"): the state is built here from the dataset's element spec
       instead, and that step is skipped for this model.
    2. Under MultiWorkerMirroredStrategy Keras averages each step's logs with
       ``reduce("MEAN", value, axis=0)``, which rejects the scalar logs: the steps return them as
       1-element vectors, whose axis-0 mean over all replicas is the scalar Keras expects.
    Epoch-end metrics are recomputed by Keras from the metric variables (summed over all replicas).
    """
    if strategy.num_replicas_in_sync == 1 and num_workers(strategy) == 1:
        return
    check_versions("training with several replicas (cityseg.training.distribute.adapt_to_strategy)")
    with strategy.scope():
        model._symbolic_build(data_batch=dataset.element_spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    if num_workers(strategy) > 1:
        model.train_step = _scalars_as_vectors(model.train_step)
        model.test_step = _scalars_as_vectors(model.test_step)


def _scalars_as_vectors(step):
    import tensorflow as tf

    def vector_step(data):
        return tf.nest.map_structure(lambda v: tf.reshape(v, [1]) if v.shape.rank == 0 else v,
                                     step(data))

    return vector_step

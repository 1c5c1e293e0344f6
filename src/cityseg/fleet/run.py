"""Running a fleet on Ray: start or join Ray, one actor per worker, bags handed out as workers
free up (``ray.wait``), a dead worker's bag retried once on another worker, one progress bar
over every frame, ``OUT/fleet.json`` at the end."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

from cityseg.bundle import Bundle
from cityseg.errors import CitysegError
from cityseg.fileio import write_json_atomic
from cityseg.fleet.actors import BagWorker, ProgressBoard
from cityseg.fleet.plan import (
    BagTask,
    ReplayOptions,
    bag_name,
    clear_stale_staging,
    count_frames,
    decide,
    input_identity,
    model_identity,
)
from cityseg.fleet.summary import SUMMARY_FILE, build_summary, failed_result, skipped_result

INSTALL_HINT = ("cityseg fleet needs Ray, which is not installed here: pip install 'cityseg[fleet]' "
                "(or pip install 'ray>=2.9'); `cityseg bag` replays one bag without it")
LOOPBACK_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's switch (read when ray is imported) that makes a local instance use the loopback address.
On Linux Ray otherwise takes the host's network address and listens on every interface; a local
fleet run sets it to 0, so a laptop run never listens on the network (measured with `ss -ltnp`:
GCS, raylet and workers on 127.0.0.1). A cluster joined with --address keeps its own settings."""
MAX_ATTEMPTS = 2
"""A bag whose worker died is retried once, on another worker when there is one."""
MAX_RESTARTS = 3
"""Ray restarts a dead worker this many times; then its slot is retired."""
POLL_S = 0.25


@dataclass
class FleetConfig:
    """How to run: where, on how many workers of what size."""

    out_dir: Path
    workers: int | None = None
    """None: as many as the cluster's CPUs (GPUs) allow, at most one per bag."""
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    address: str | None = None
    """Ray cluster to join; None: RAY_ADDRESS, else a new local Ray sized to this machine."""
    force: bool = False
    progress: bool = True


def import_ray(address: str | None = None):
    """The ray module, or a CitysegError saying how to install it; without an ``address`` (or
    RAY_ADDRESS) Ray is told to keep a local instance on the loopback interface."""
    if not (address or os.environ.get("RAY_ADDRESS")):
        os.environ.setdefault(LOOPBACK_VARIABLE, "0")
    try:
        import ray
    except ImportError:
        raise CitysegError(INSTALL_HINT) from None
    return ray


def run_fleet(bags: list[Path], options: ReplayOptions, config: FleetConfig) -> dict:
    """Segment ``bags`` into ``config.out_dir``; write and return the fleet.json summary."""
    started = time.perf_counter()
    ray = import_ray()
    model = model_identity(Bundle.load(options.model))
    options = replace(options, model=model["path"])
    out_dir = Path(config.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks, results = plan_tasks(bags, out_dir, model["id"], options, config.force)
    to_run = [t for t in tasks if t.index not in results]
    workers, address, segment_s = 0, None, 0.0
    if to_run:
        with ray_session(ray, config.address) as address:
            workers = worker_count(ray, config, len(to_run))
            fleet = _Fleet(ray, options, model["id"], config, workers)
            results.update(fleet.run(to_run, str(out_dir)))
            segment_s = fleet.segment_s
    summary = build_summary(tasks, results, model, options, workers, time.perf_counter() - started, address,
                            segment_s)
    write_json_atomic(out_dir / SUMMARY_FILE, summary)
    return summary


def plan_tasks(bags: list[Path], out_dir: Path, model_id: str, options: ReplayOptions,
               force: bool) -> tuple[list[BagTask], dict[int, dict]]:
    """A task per bag, and the results already known: complete outputs (skipped), conflicts (failed)."""
    tasks, results = [], {}
    for index, bag in enumerate(bags):
        task = BagTask(index, str(bag), bag_name(bag), str(out_dir / bag_name(bag)), input_identity(bag))
        tasks.append(task)
        action, detail = decide(task, model_id, options.params_id(), force)
        if action == "skip":
            results[index] = skipped_result(task, detail)
        elif action == "conflict":
            results[index] = failed_result(task, detail)
        else:
            clear_stale_staging(out_dir, task.name)
            task.frames = count_frames(bag, options.image_topic)
    return tasks, results


@contextlib.contextmanager
def ray_session(ray, address: str | None):
    """Join ``address`` (or RAY_ADDRESS), or start a local Ray; yields the address (None: local).
    A Ray this process already started is used as it is. Ray's own driver messages go to stderr."""
    with contextlib.redirect_stdout(sys.stderr):
        if ray.is_initialized():
            yield None
            return
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address:
            check_reachable(address)
        try:
            if address:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            else:
                ray.init(address="local", include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError...
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise CitysegError(f"cannot start or join {where}: {exc}; check --address / RAY_ADDRESS "
                               "(`ray status` on the head node shows it)") from None
        try:
            yield address
        finally:
            ray.shutdown()


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """CitysegError if nothing listens at a ``host:port`` / ``ray://host:port`` address (Ray itself
    would retry for minutes); other forms (``auto``) are left to Ray."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise CitysegError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it "
                           "with `ray start --head` on the head machine, or check --address / RAY_ADDRESS") from None


def worker_count(ray, config: FleetConfig, bags: int) -> int:
    """Workers to start: --workers, or as many as the cluster's resources fit (at most one per bag)."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    fit = int(cpus // config.cpus_per_worker) if config.cpus_per_worker > 0 else bags
    if config.gpus_per_worker > 0:
        fit = min(fit, int(gpus // config.gpus_per_worker))
    needs = f"a worker needs {config.cpus_per_worker:g} CPU(s) and {config.gpus_per_worker:g} GPU(s)"
    if fit < 1:
        raise CitysegError(f"the Ray cluster has {cpus:g} CPU(s) and {gpus:g} GPU(s) and {needs}; lower "
                           "--cpus-per-worker / --gpus-per-worker or add nodes")
    if config.workers is None:
        return min(fit, bags)
    if config.workers > fit:
        raise CitysegError(f"--workers {config.workers} does not fit: the Ray cluster has {cpus:g} CPU(s) "
                           f"and {gpus:g} GPU(s) and {needs}; ask for at most {fit}")
    return max(1, min(config.workers, bags))


class _Fleet:
    """The workers of one run and the hand-out of bags to them."""

    def __init__(self, ray, options: ReplayOptions, model_id: str, config: FleetConfig, count: int):
        self.ray, self.config = ray, config
        board_name = f"cityseg-fleet-progress-{uuid.uuid4().hex}"
        self.board = ray.remote(ProgressBoard).options(num_cpus=0, name=board_name).remote()
        actor = ray.remote(BagWorker).options(num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker,
                                              max_restarts=MAX_RESTARTS, max_task_retries=0)
        self.workers = [actor.remote(options, model_id, config.force, board_name)
                        for _ in range(count)]
        self.deaths = [0] * count
        self.idle = list(range(count))
        self.pending: dict = {}
        self.queue: deque[BagTask] = deque()
        self.results: dict[int, dict] = {}
        self.segment_s = 0.0
        """Seconds from every worker ready (model loaded) to the last bag finished."""

    def run(self, tasks: list[BagTask], out_dir: str) -> dict[int, dict]:
        """Segment every task; the results by bag index."""
        from tqdm import tqdm

        self.out_dir = Path(out_dir)
        self._setup([t.input for t in tasks], out_dir)
        started = time.perf_counter()
        self.queue.extend(tasks)
        expected = {t.index: t.frames or 0 for t in tasks}
        with tqdm(total=sum(expected.values()), unit="frame", desc="fleet", disable=not self.config.progress,
                  dynamic_ncols=True) as bar:
            while self.queue or self.pending:
                self._assign()
                if not self.pending:
                    self._give_up()
                    break
                ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    self._finish(ref, expected)
                self._show(bar, expected)
        self.segment_s = time.perf_counter() - started
        return self.results

    def _setup(self, bags: list[str], out_dir: str) -> None:
        """Load the model on every worker and check each can read the bags and write OUT."""
        try:
            infos = self.ray.get([w.setup.remote(bags, out_dir) for w in self.workers])
        except self.ray.exceptions.RayActorError as exc:
            raise CitysegError(f"a Ray worker died while loading the model: {_first_line(exc)}") from None
        errors = [info["error"] for info in infos if info["error"]]
        if errors:
            raise CitysegError(errors[0])

    def _assign(self) -> None:
        for slot in list(self.idle):
            task = self._take(slot)
            if task is not None:
                self.idle.remove(slot)
                self.pending[self.workers[slot].segment.remote(task)] = (slot, task)

    def _take(self, slot: int) -> BagTask | None:
        """The first queued task for ``slot``: a retry avoids the worker it died on, if others live."""
        alive = sum(d <= MAX_RESTARTS for d in self.deaths)
        for i, task in enumerate(self.queue):
            if task.avoid != slot or alive == 1:
                del self.queue[i]
                return task
        return None

    def _finish(self, ref, expected: dict[int, int]) -> None:
        slot, task = self.pending.pop(ref)
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as exc:
            self._died(slot, task, exc)
            if task.index in self.results:
                expected[task.index] = 0
            return
        self.results[task.index] = result
        expected[task.index] = result["frames_in"]
        self.idle.append(slot)

    def _died(self, slot: int, task: BagTask, exc: Exception) -> None:
        """The worker's process died: retry its bag once elsewhere, then report it failed."""
        self.deaths[slot] += 1
        if self.deaths[slot] <= MAX_RESTARTS:
            self.idle.append(slot)  # Ray restarts the actor; calls wait for it
        if task.attempt >= MAX_ATTEMPTS:
            clear_stale_staging(self.out_dir, task.name)  # what the dead worker was writing
            self.results[task.index] = failed_result(
                task, f"the Ray worker segmenting it died on each of {task.attempt} attempts (killed, out of "
                      f"memory or crashed; see the Ray logs): {_first_line(exc)}")
            return
        task.attempt += 1
        task.avoid = slot
        self.queue.appendleft(task)

    def _give_up(self) -> None:
        for task in self.queue:
            self.results[task.index] = failed_result(task, "every Ray worker died too often; not segmented")
        self.queue.clear()

    def _show(self, bar, expected: dict[int, int]) -> None:
        """Frames of finished bags plus what in-flight workers reported."""
        if bar.disable:
            return
        board = self.ray.get(self.board.snapshot.remote())
        running = sum(board.get((t.index, t.attempt), 0) for _, t in self.pending.values())
        finished = sum(self.results[i]["frames_in"] for i in self.results)
        bar.total = max(sum(expected.values()), finished + running)
        bar.n = finished + running
        bar.refresh()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""The fleet's Ray actors: :class:`BagWorker` (segments bag after bag) and :class:`ProgressBoard`.

Plain classes: :mod:`cityseg.fleet.run` makes them remote with the resources asked for, so this
module imports no Ray. A worker loads the model once (on the first call, so an actor Ray
restarts after its process died loads it again) and replays each bag with
:func:`cityseg.ros.bag.replay.replay_bag` - the one function ``cityseg bag`` uses - into a staging
directory beside the output, writes the completion marker into it and renames it into place.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from cityseg.errors import CitysegError, InputError
from cityseg.fileio import write_json_atomic
from cityseg.fleet.plan import MARKER, STAGING_SUFFIX, BagTask, ReplayOptions, clear_stale_staging, make_marker
from cityseg.ros.bag.replay import load_processor, replay_bag

log = logging.getLogger(__name__)

SHARED_STORAGE = ("cityseg fleet needs the bags and --out on storage every Ray node mounts at the same "
                  "path (shared storage, see docs/FLEET.md)")
REPORT_EVERY_S = 0.25
"""How often a worker tells the progress board how far it is in a bag."""


class ProgressBoard:
    """Frames segmented so far per (bag index, attempt), reported by workers, read by the driver."""

    def __init__(self):
        self.frames: dict[tuple[int, int], int] = {}

    def report(self, index: int, attempt: int, frames: int) -> None:
        self.frames[(index, attempt)] = frames

    def snapshot(self) -> dict[tuple[int, int], int]:
        return dict(self.frames)


class BagWorker:
    """Loads the model once and segments the bags it is given, one at a time."""

    def __init__(self, options: ReplayOptions, model_id: str, force: bool, board: str | None = None):
        self.options, self.model_id, self.force = options, model_id, force
        self.params_id = options.params_id()
        self.board_name = board
        self._processor = self._board = None

    @property
    def board(self):
        """The ProgressBoard actor, looked up by name (a handle argument would pin the actor's
        constructor arguments in the object store across restarts)."""
        if self._board is None and self.board_name:
            import ray

            self._board = ray.get_actor(self.board_name)
        return self._board

    def processor(self):
        """The FrameProcessor, loaded on first use."""
        if self._processor is None:
            self._processor = load_processor(self.options.model, self.options.config, self.options.backend)
        return self._processor

    def setup(self, bags: list[str], out_dir: str) -> dict:
        """Load the model and check this worker can read every bag and write ``out_dir``."""
        info = {"host": socket.gethostname(), "pid": os.getpid(), "error": None}
        try:
            check_access(bags, out_dir)
            self.processor()
        except CitysegError as exc:
            info["error"] = str(exc)
        return info

    def segment(self, task: BagTask) -> dict:
        """Segment one bag into its output; a result dict, never an exception for a bad bag."""
        started = time.perf_counter()
        result = {"index": task.index, "status": "failed", "frames": 0, "frames_in": 0, "failed_frames": 0,
                  "seconds": 0.0, "error": None, "worker": f"{socket.gethostname()}:{os.getpid()}",
                  "image_topic": None}
        reporter = _Reporter(self.board, task)
        try:
            summary = self._write(task, reporter)
            result.update(status="done", frames=summary["frames_out"], frames_in=summary["frames_in"],
                          failed_frames=len(summary["failed"]), image_topic=summary["image_topic"])
        except CitysegError as exc:
            result["error"] = str(exc)
        except Exception as exc:  # one bag's unexpected failure must not stop the others
            log.exception("%s: replay failed", task.input)
            result["error"] = f"internal error: {type(exc).__name__}: {exc}"
        reporter.flush()
        result["seconds"] = round(time.perf_counter() - started, 3)
        return result

    def _write(self, task: BagTask, reporter: _Reporter) -> dict:
        """Replay into a staging directory, add the marker, rename it to the output."""
        if not os.access(task.input, os.R_OK):
            raise InputError(f"worker on {socket.gethostname()} cannot read bag {task.input}; {SHARED_STORAGE}")
        output = Path(task.output)
        clear_stale_staging(output.parent, task.name)
        staging = Path(tempfile.mkdtemp(prefix=f".{task.name}.", suffix=STAGING_SUFFIX, dir=output.parent))
        try:
            staged = staging / task.name
            opts = self.options
            summary = replay_bag(Path(task.input), staged, self.processor(), image_topic=opts.image_topic,
                                 camera_info_topic=opts.camera_info_topic, copy_input=opts.copy_input,
                                 progress=False, storage=opts.storage, on_frame=reporter.frame,
                                 fusion=opts.fusion).to_json()
            write_json_atomic(staged / MARKER, make_marker(task, self.model_id, self.params_id, summary))
            commit(staged, output, staging, self.force)
            return summary
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class _Reporter:
    """Counts a bag's frames and tells the progress board every REPORT_EVERY_S."""

    def __init__(self, board, task: BagTask):
        self.board, self.task = board, task
        self.frames, self.last = 0, 0.0
        self.flush()

    def frame(self) -> None:
        self.frames += 1
        if time.monotonic() - self.last >= REPORT_EVERY_S:
            self.flush()

    def flush(self) -> None:
        self.last = time.monotonic()
        if self.board is not None:
            self.board.report.remote(self.task.index, self.task.attempt, self.frames)


def commit(staged: Path, output: Path, staging: Path, force: bool) -> None:
    """Rename the complete ``staged`` bag to ``output``; an existing one is replaced only if ``force``."""
    if output.exists() or output.is_symlink():
        if not force:
            raise CitysegError(f"{output} appeared while this bag was being segmented (another run on the "
                               "same --out?); it was kept; pass --force to replace it")
        os.replace(output, staging / f"{output.name}.replaced")
    os.replace(staged, output)


def check_access(bags: list[str], out_dir: str) -> None:
    """CitysegError naming the first bag this process cannot read, or ``out_dir`` if it cannot write it."""
    host = socket.gethostname()
    for bag in bags:
        if not os.path.exists(bag) or not os.access(bag, os.R_OK):
            why = "no such file or directory" if not os.path.exists(bag) else "permission denied"
            raise InputError(f"worker on {host} cannot read bag {bag} ({why}); {SHARED_STORAGE}")
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".fleet-probe-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CitysegError(f"worker on {host} cannot write --out {out_dir} ({exc.strerror}); "
                           f"{SHARED_STORAGE}") from None

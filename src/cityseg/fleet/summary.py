"""``OUT/fleet.json``: per bag status (done / skipped / failed), frames, seconds, error; totals;
the model's id and the parameters used. And the few lines the terminal shows."""

from __future__ import annotations

from cityseg import __version__
from cityseg.fleet.plan import BagTask, ReplayOptions

STATUSES = ("done", "skipped", "failed")
SUMMARY_FILE = "fleet.json"


def skipped_result(task: BagTask, marker: dict) -> dict:
    """The result of a bag whose complete output is already there."""
    return {"index": task.index, "status": "skipped", "frames": marker.get("frames_out", 0),
            "frames_in": marker.get("frames_in", 0), "failed_frames": marker.get("failed_frames", 0),
            "seconds": 0.0, "error": None, "worker": None, "image_topic": marker.get("image_topic")}


def failed_result(task: BagTask, error: str, seconds: float = 0.0, worker: str | None = None) -> dict:
    """The result of a bag that was not segmented."""
    return {"index": task.index, "status": "failed", "frames": 0, "frames_in": 0, "failed_frames": 0,
            "seconds": round(seconds, 3), "error": error, "worker": worker, "image_topic": None}


def build_summary(tasks: list[BagTask], results: dict[int, dict], model: dict, options: ReplayOptions,
                  workers: int, wall_s: float, ray_address: str | None, segment_s: float = 0.0) -> dict:
    """The fleet.json document; ``segment_s``: the time from every worker ready to the last bag done."""
    bags = []
    for task in tasks:
        result = results[task.index]
        bags.append({"name": task.name, "input": task.input, "output": task.output,
                     "status": result["status"], "frames": result["frames"], "frames_in": result["frames_in"],
                     "failed_frames": result["failed_frames"], "seconds": result["seconds"],
                     "attempts": task.attempt if result["status"] != "skipped" else 0,
                     "worker": result["worker"], "image_topic": result["image_topic"], "error": result["error"]})
    done = [b for b in bags if b["status"] == "done"]
    frames = sum(b["frames"] for b in done)
    totals = {"bags": len(bags), **{s: sum(b["status"] == s for b in bags) for s in STATUSES},
              "frames": frames, "frames_skipped": sum(b["frames"] for b in bags if b["status"] == "skipped"),
              "seconds": round(wall_s, 3), "frames_per_second": _rate(frames, wall_s),
              "segment_seconds": round(segment_s, 3), "segment_frames_per_second": _rate(frames, segment_s)}
    return {"cityseg_version": __version__, "model": model, "params": options.params(),
            "params_id": options.params_id(), "workers": workers, "ray_address": ray_address,
            "totals": totals, "bags": bags}


def _rate(frames: int, seconds: float) -> float:
    return round(frames / seconds, 2) if seconds > 0 else 0.0


def format_summary(summary: dict) -> str:
    """A line per bag that was not done, then the totals."""
    lines = []
    for bag in summary["bags"]:
        if bag["status"] == "failed":
            lines.append(f"failed  {bag['input']}: {bag['error'].splitlines()[0]}")
        elif bag["status"] == "done" and bag["failed_frames"]:
            lines.append(f"done    {bag['input']}: {bag['failed_frames']} frame(s) could not be read "
                         f"(see {SUMMARY_FILE})")
    t = summary["totals"]
    lines.append(f"{t['bags']} bags: {t['done']} done, {t['skipped']} skipped (complete already), "
                 f"{t['failed']} failed; {t['frames']} frames in {t['seconds']:.1f} s, "
                 f"{t['segment_frames_per_second']:.1f} frames/s once {summary['workers']} worker(s) were up; "
                 f"model {summary['model']['id']}")
    return "\n".join(lines)

"""The benchmark's results and how they are reported: rows, the markdown table, the RESULT line,
the machine description for captions, and the doc patcher that refreshes a table in a doc."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cityseg.fileio import write_bytes_atomic


@dataclass
class BenchRow:
    model: str
    size: str
    backend: str
    stages: dict[str, float] = field(default_factory=dict)
    params: int | None = None
    gflops: float | None = None
    file_mb: float | None = None
    precision: str = "fp32"
    gate: str = ""
    """The accuracy gate of a reduced-precision row ('ok 99.2%' / 'FAILED ...': pixel agreement with fp32)."""

    @property
    def frame_ms(self) -> float:
        return self.stages["frame"]


def format_table(rows: list[BenchRow], baselines: dict[tuple[str, str], float]) -> str:
    """Markdown table: one row per model x size x backend, ratios against the study baseline."""
    stage_names = ["decode", "convert", "preprocess", "infer", "postprocess", "colour", "overlay", "frame"]
    precisions = any(r.precision != "fp32" for r in rows)
    head = (["model", "size", "backend"] + (["precision", "gate"] if precisions else [])
            + [f"{s} ms" for s in stage_names] + ["overhead", "study ms", "speedup", "params", "GFLOPs", "MB"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        base = baselines.get((row.model, row.size))
        overhead = row.frame_ms / row.stages["infer"] - 1
        cells = [row.model, row.size, row.backend] + ([row.precision, row.gate or "–"] if precisions else [])
        cells += [f"{row.stages[s]:.1f}" if s in row.stages else "–" for s in stage_names]
        cells += [f"{overhead:+.0%}", f"{base:.0f}" if base else "–",
                  f"{base / row.frame_ms:.1f}×" if base else "–",
                  f"{row.params / 1e6:.2f}M" if row.params else "–",
                  f"{row.gflops:.1f}" if row.gflops else "–",
                  f"{row.file_mb:.1f}" if row.file_mb else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline_row(rows: list[BenchRow], model: str | None = None) -> BenchRow:
    """The row the RESULT line reports: ``model`` (default: the first row's model) at its largest
    benchmarked size, on its fastest backend - the deployment the table is about."""
    model = model or rows[0].model
    candidates = [r for r in rows if r.model == model] or rows
    pixels = lambda r: int(np.prod([int(v) for v in r.size.split("x")]))  # noqa: E731
    largest = max(pixels(r) for r in candidates)
    return min((r for r in candidates if pixels(r) == largest), key=lambda r: r.frame_ms)


def result_line(rows: list[BenchRow], baselines: dict, model: str | None = None) -> str:
    """`RESULT frame_ms=... infer_ms=... overhead=... baseline_ms=... speedup=...` (headline row)."""
    best = headline_row(rows, model)
    base = baselines.get((best.model, best.size), float("nan"))
    overhead = best.frame_ms / best.stages["infer"] - 1
    return (f"RESULT frame_ms={best.frame_ms:.2f} infer_ms={best.stages['infer']:.2f} "
            f"overhead={overhead:.3f} baseline_ms={base:.2f} speedup={base / best.frame_ms:.2f}")


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (platform.processor() is often empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """'<CPU model>, N cores usable, Linux, Python 3.x' for the figures' captions."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu_name()}, {cores} CPU cores usable, {platform.system()}, Python {platform.python_version()}"


def update_doc(doc: Path, table: str, header: str, marker: str = "bench") -> None:
    """Replace the text between ``<!-- {marker}:start -->`` and ``<!-- {marker}:end -->`` in ``doc``."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = doc.read_text() if doc.exists() else ""
    if start not in text or end not in text:
        text += f"\n{start}\n{end}\n"
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    write_bytes_atomic(doc, f"{before}{start}\n{header}\n\n{table}\n{end}{after}".encode())

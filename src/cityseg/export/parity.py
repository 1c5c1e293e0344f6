"""Parity: does an exported model reproduce its source on real frames?

Both models see the same float32 batch, built from the frames with the bundle's own preprocessing
(``ModelCard.preprocess``, which is also what the Segmenter runs). The verdict is the
per-pixel argmax agreement, which must reach the precision's threshold; the max and mean absolute
differences of the scores are reported beside it when both models output scores.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cityseg.bundle import ModelCard
from cityseg.bundle import raw_output as model_outputs
from cityseg.bundle.precision import RULES
from cityseg.errors import InputError
from cityseg.export.errors import ParityError
from cityseg.preprocess import upsample_nearest

log = logging.getLogger(__name__)

PARITY_THRESHOLDS = {name: rule.parity_threshold for name, rule in RULES.items()}
"""Minimum argmax agreement per precision. INT8 is quantised on purpose, so 99% is asked of it."""
TIE_MARGINS = {name: rule.tie_margin for name, rule in RULES.items()}
"""Top-2 score margin under which the reference has no preferred class (see ParityAccumulator)."""
DEFAULT_FRAME_COUNT = 8
PARITY_PIXELS = 1 << 21
"""Generated frames stop at this many network-output pixels (4 frames at 512x1024)."""
MAX_TIE_CREDIT = 0.01
"""At most this share of pixels may be excused as near-tie flips: raw agreement must reach
threshold - MAX_TIE_CREDIT whatever the tie count."""

CHUNK_PIXELS = 4 * 256 * 512
"""Network-input pixels per model call during parity: 4 frames at 256x512, 1 at 512x1024, so
even the study's 34M-parameter U-Net stays within a few GB of activations."""


def chunk_frames(height: int, width: int) -> int:
    """Frames per model call for an input of ``height`` x ``width``."""
    return max(1, CHUNK_PIXELS // (height * width))


@dataclass
class ParityReport:
    """The figures of one parity check (stored in the artifact's card details)."""

    reference: str
    """What ran as the source, e.g. 'keras:model.keras'."""
    candidate: str
    """What ran as the export, e.g. 'onnxruntime:model.onnx'."""
    precision: str
    frames: int
    frame_source: str
    """'given' (caller's frames), 'synth' (cityseg.synthetic.dataset street scenes) or 'structured'."""
    pixels: int
    argmax_agreement: float
    """The verdict figure: share of pixels with the same class, near-tie flips not counted against."""
    raw_agreement: float
    """Share of pixels with the same class, all pixels."""
    near_tie_flips: int
    """Pixels whose class flipped where the reference's top-2 scores are within ``tie_margin``."""
    tie_margin: float
    worst_frame_agreement: float
    """Raw agreement of the worst frame."""
    max_abs_diff: float | None
    """Max |reference - candidate| over all scores; None when the candidate outputs class ids."""
    mean_abs_diff: float | None
    threshold: float

    @property
    def passed(self) -> bool:
        """Agreement reaches the threshold, and near-tie credit covers at most MAX_TIE_CREDIT of
        the pixels (a flat, near-uniform output cannot pass on tie credit alone)."""
        return (self.argmax_agreement >= self.threshold
                and self.raw_agreement >= self.threshold - MAX_TIE_CREDIT)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "passed": self.passed}

    def __str__(self) -> str:
        return self.summary()

    def summary(self) -> str:
        """One line with the figures, e.g. for the CLI."""
        diff = ("max |diff| n/a (class-id output)" if self.max_abs_diff is None
                else f"max |diff| {self.max_abs_diff:.3g}, mean {self.mean_abs_diff:.3g}")
        verdict = "ok" if self.passed else "FAILED"
        return (f"parity {self.reference} vs {self.candidate} ({self.precision}) on {self.frames} "
                f"{self.frame_source} frames, {self.pixels} px: argmax agreement "
                f"{self.argmax_agreement:.4%} (required >= {self.threshold:.1%}; raw {self.raw_agreement:.4%}, "
                f"required >= {self.threshold - MAX_TIE_CREDIT:.1%}, "
                f"{self.near_tie_flips} near-tie flips, worst frame {self.worst_frame_agreement:.4%}), "
                f"{diff} - {verdict}")


def default_frame_count(card: ModelCard) -> int:
    """8 frames, fewer for large inputs (at least 2, and at least ~2 Mpx of network output)."""
    return int(np.clip(PARITY_PIXELS // (card.input_height * card.input_width), 2, DEFAULT_FRAME_COUNT))


def parity_frames(card: ModelCard, frames: Sequence[np.ndarray] | None = None,
                  count: int | None = None, seed: int = 0,
                  size: tuple[int, int] | None = None) -> tuple[list[np.ndarray], str]:
    """The RGB frames to check on and where they came from ('given', 'synth' or 'structured').

    Without ``frames``, ``count`` (default :func:`default_frame_count`) street scenes from
    :mod:`cityseg.synthetic.dataset` at ``size`` (height, width; default twice the network size, so
    the resize is exercised), or structured street-like images where synth is not installed.
    """
    count = default_frame_count(card) if count is None else count
    if frames is not None:
        frames = list(frames)
        if not frames:
            raise InputError("parity needs at least one frame; pass none to use generated street scenes")
        return frames, "given"
    height, width = size or (min(2 * card.input_height, 1024), min(2 * card.input_width, 2048))
    rng = np.random.default_rng(seed)
    try:
        from cityseg.synthetic.dataset import render_scene
    except ImportError:
        log.info("cityseg.synthetic.dataset is not available; checking parity on structured frames")
        return [structured_frame(rng, height, width) for _ in range(count)], "structured"
    return [render_scene(rng, height, width, t=float(i))[0] for i in range(count)], "synth"


def structured_frame(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A street-like RGB frame: sky gradient, road, blocks of colour, sensor noise."""
    frame = np.empty((height, width, 3), np.uint8)
    horizon = int(rng.integers(height // 3, height // 2 + 1))
    sky = np.linspace(200, 120, horizon)[:, None, None] * np.array([0.55, 0.7, 1.0])
    frame[:horizon] = sky.astype(np.uint8)
    frame[horizon:] = (90, 85, 95)
    for _ in range(12):
        y0 = int(rng.integers(0, height - 8))
        x0 = int(rng.integers(0, width - 8))
        h = int(rng.integers(8, max(9, height // 3)))
        w = int(rng.integers(8, max(9, width // 4)))
        frame[y0:y0 + h, x0:x0 + w] = rng.integers(0, 256, 3, dtype=np.uint8)
    noise = rng.normal(0, 6, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


def class_ids(output: np.ndarray, kind: str) -> np.ndarray:
    """NxHxWxC scores or NxHxW class ids -> NxHxW int class ids."""
    if kind == "argmax":
        return output.astype(np.int64)
    return np.argmax(output, axis=-1)


def top2_margin(scores: np.ndarray) -> np.ndarray:
    """Best minus second-best score per pixel (NxHxW)."""
    top = np.partition(scores, -2, axis=-1)
    return top[..., -1] - top[..., -2]


class ParityAccumulator:
    """Streams chunk pairs (reference, candidate outputs) into the figures of a ParityReport.

    A pixel where the reference's two best scores are within ``tie_margin`` of each other is a
    near tie: the source model itself has no preferred class there, so a flip within the export's
    numerical error is not a disagreement. Such flips are counted and reported, and the verdict uses
    the agreement on the other pixels; the raw agreement is reported beside it.
    """

    def __init__(self, reference_kind: str, candidate_kind: str, tie_margin: float):
        self.reference_kind, self.candidate_kind, self.tie_margin = reference_kind, candidate_kind, tie_margin
        self.frame_agreement: list[float] = []
        self.pixels = self.same = self.tie_flips = 0
        self.max_diff = 0.0
        self.sum_diff = 0.0
        self.values = 0
        self.scores = reference_kind != "argmax" and candidate_kind != "argmax"

    def update(self, reference: np.ndarray, candidate: np.ndarray, *, reference_name: str = "reference",
               candidate_name: str = "candidate") -> None:
        """Add one chunk of outputs (same frames, same order)."""
        ties = top2_margin(reference) <= self.tie_margin if self.reference_kind != "argmax" else None
        self.update_classes(class_ids(reference, self.reference_kind), class_ids(candidate, self.candidate_kind),
                            ties, reference_name=reference_name, candidate_name=candidate_name)
        if self.scores:
            diff = np.abs(reference.astype(np.float32) - candidate.astype(np.float32))
            self.max_diff = max(self.max_diff, float(diff.max()))
            self.sum_diff += float(diff.sum(dtype=np.float64))
            self.values += diff.size

    def update_classes(self, ref_ids: np.ndarray, cand_ids: np.ndarray, ties: np.ndarray | None = None, *,
                       reference_name: str = "reference", candidate_name: str = "candidate") -> None:
        """Add one chunk of class maps (NxHxW); ``ties``: where the reference has no preferred class."""
        if ref_ids.shape != cand_ids.shape:
            raise ParityError(f"{candidate_name}: output shape {cand_ids.shape} does not match "
                              f"{reference_name}'s {ref_ids.shape}; the export is broken - "
                              "re-export with --force", report=None)
        same = ref_ids == cand_ids
        if ties is not None:
            self.tie_flips += int((~same & ties).sum())
        self.frame_agreement += same.reshape(len(same), -1).mean(axis=1).tolist()
        self.pixels += same.size
        self.same += int(same.sum())

    def report(self, *, reference: str, candidate: str, precision: str, frame_source: str,
               threshold: float | None = None) -> ParityReport:
        """The figures so far as a ParityReport."""
        return ParityReport(
            reference=reference, candidate=candidate, precision=precision,
            frames=len(self.frame_agreement), frame_source=frame_source, pixels=self.pixels,
            argmax_agreement=(self.same + self.tie_flips) / self.pixels,
            raw_agreement=self.same / self.pixels, near_tie_flips=self.tie_flips,
            tie_margin=self.tie_margin, worst_frame_agreement=min(self.frame_agreement),
            max_abs_diff=self.max_diff if self.scores else None,
            mean_abs_diff=self.sum_diff / self.values if self.scores else None,
            threshold=PARITY_THRESHOLDS[precision] if threshold is None else threshold)


def check_parity(run_reference: Callable[[np.ndarray], np.ndarray], reference_kind: str,
                 run_candidate: Callable[[np.ndarray], np.ndarray], candidate_kind: str,
                 batch: np.ndarray, *, reference: str, candidate: str, precision: str,
                 frame_source: str, threshold: float | None = None, chunk: int | None = None) -> ParityReport:
    """Run both models over ``batch`` chunk by chunk and compare (memory stays one chunk deep)."""
    chunk = chunk or chunk_frames(batch.shape[1], batch.shape[2])
    acc = ParityAccumulator(reference_kind, candidate_kind, TIE_MARGINS[precision])
    for start in range(0, len(batch), chunk):
        part = batch[start:start + chunk]
        acc.update(np.asarray(run_reference(part)), np.asarray(run_candidate(part)),
                   reference_name=reference, candidate_name=candidate)
    return acc.report(reference=reference, candidate=candidate, precision=precision,
                      frame_source=frame_source, threshold=threshold)


def canonical_runner(run: Callable[[np.ndarray], np.ndarray], artifact, card: ModelCard):
    """(batch -> canonical output, its kind) for an artifact of any layout, kind and stride
    (:func:`cityseg.bundle.raw_output.standardize`); our own NHWC full-size outputs pass through unchanged."""
    size = (card.input_height, card.input_width)

    def canonical(batch: np.ndarray) -> np.ndarray:
        return model_outputs.standardize(run(batch), artifact.output, artifact.output_layout, size)[0]

    kind = "argmax" if artifact.output == "argmax" else ("probabilities" if artifact.output == "sigmoid"
                                                         else artifact.output)
    return canonical, kind


def require_parity(report: ParityReport, target: Path) -> None:
    """Raise ParityError with the figures unless ``report`` passed."""
    if report.passed:
        return
    raise ParityError(
        f"{target}: refused - the exported model does not reproduce its source. {report.summary()}. "
        "Nothing was written. Check that the source model loads with the project's custom layers, "
        "that the opset supports its ops, or use a higher precision; re-run `cityseg export` after "
        "fixing it", report)


def check_camera_parity(run_reference: Callable[[np.ndarray], np.ndarray], reference_artifact, card: ModelCard,
                        run_candidate: Callable[[np.ndarray], np.ndarray], frames: Sequence[np.ndarray], *,
                        reference: str, candidate: str, precision: str, frame_source: str) -> ParityReport:
    """Parity of a fused-I/O model (uint8 camera frames -> NxHxW class ids at camera resolution) with
    the unfused path: the card's CPU preprocessing, ``run_reference`` (the source artifact), argmax,
    nearest upsampling (INTER_NEAREST_EXACT) to the frame size. Near ties are the reference's, upsampled."""
    canonical_run, kind = canonical_runner(run_reference, reference_artifact, card)
    height, width = frames[0].shape[:2]
    acc = ParityAccumulator(kind, "argmax", TIE_MARGINS[precision])
    step = chunk_frames(height, width)
    for start in range(0, len(frames), step):
        part = frames[start:start + step]
        scores_out = canonical_run(card.preprocess(part))
        ref_ids = np.stack([upsample_nearest(c, height, width) for c in class_ids(scores_out, kind).astype(np.uint8)])
        ties = None
        if kind != "argmax":
            low = (top2_margin(scores_out) <= acc.tie_margin).astype(np.uint8)
            ties = np.stack([upsample_nearest(t, height, width) for t in low]).astype(bool)
        cand_ids = np.asarray(run_candidate(np.stack(part)))
        acc.update_classes(ref_ids, cand_ids.astype(np.uint8), ties, reference_name=reference, candidate_name=candidate)
    return acc.report(reference=reference, candidate=candidate, precision=precision, frame_source=frame_source)

"""The small interface every inference backend implements."""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

from cityseg.bundle import Artifact, Bundle


class Backend(abc.ABC):
    """Runs one artifact of a bundle: float32 batch in (the card's layout), raw model output out;
    a fused-I/O artifact takes uint8 NxHxWx3 camera frames and returns uint8 class maps at camera size.

    Output is the artifact's own: scores ('probabilities'/'logits'/'sigmoid') or class indices
    ('argmax'), in its ``output_layout`` and at its stride; :mod:`cityseg.bundle.raw_output` reads it.
    """

    name: ClassVar[str]
    format: ClassVar[str]

    def __init__(self, bundle: Bundle, artifact_key: str):
        self.bundle = bundle
        self.artifact_key = artifact_key
        self.artifact: Artifact = bundle.card.artifacts[artifact_key]
        self.path = bundle.verified_artifact_path(artifact_key)

    @property
    def output_kind(self) -> str:
        return self.artifact.output

    @classmethod
    @abc.abstractmethod
    def unavailable_reason(cls) -> str | None:
        """Why this backend cannot run on this machine (None when it can)."""

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a float32 batch (NxHxWx3, or Nx3xHxW for an NCHW card): its main output."""

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(main output, the uint8 confidence output or None) for a batch."""
        return self.infer(batch), None

    @property
    def max_batch(self) -> int | None:
        """The most frames one model call takes (larger batches are split into calls of at most
        this many); None: no limit (a dynamic batch dimension)."""
        return None

    def describe(self) -> str:
        """One line naming the backend, the file and the device it runs on."""
        return f"{self.name} ({self.path.name})"

    def close(self) -> None:  # noqa: B027  (optional hook: a backend without device resources keeps this no-op)
        """Release device resources (optional)."""

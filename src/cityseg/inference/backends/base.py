"""The small interface every inference backend implements."""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

from cityseg.bundle import Artifact, Bundle


class Backend(abc.ABC):
    """Runs one artifact of a bundle: float32 NHWC batch in, raw model output out.

    Output is NxHxWxC scores for 'probabilities'/'logits' artifacts and NxHxW class indices
    for 'argmax' artifacts (see :attr:`output_kind`).
    """

    name: ClassVar[str]
    format: ClassVar[str]

    def __init__(self, bundle: Bundle, artifact_key: str):
        self.bundle = bundle
        self.artifact_key = artifact_key
        self.artifact: Artifact = bundle.card.artifacts[artifact_key]
        self.path = bundle.artifact_path(artifact_key)

    @property
    def output_kind(self) -> str:
        return self.artifact.output

    @classmethod
    @abc.abstractmethod
    def unavailable_reason(cls) -> str | None:
        """Why this backend cannot run on this machine (None when it can)."""

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a float32 NxHxWx3 batch."""

    def describe(self) -> str:
        """One line naming the backend, the file and the device it runs on."""
        return f"{self.name} ({self.path.name})"

    def close(self) -> None:
        """Release device resources (optional)."""

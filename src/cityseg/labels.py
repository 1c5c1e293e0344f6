"""The Cityscapes label set, as vectorised lookup tables for both class spaces.

Built on ``cityscapesscripts.helpers.labels`` (the official table is never retyped here).
Two class spaces are supported:

* ``trainid`` - the 19 evaluation classes of the benchmark; everything else is ``IGNORE`` (255).
* ``labelid`` - all 34 labelIds (0-33), what the original study trained on.

Every mapping is a 256-entry numpy LUT, so converting a whole mask is one indexing operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

IGNORE = 255
"""Value of pixels that are not scored (trainId space) and of out-of-range ids."""

LABELS = tuple(label for label in _CS_LABELS if label.id >= 0)
"""Cityscapes labels with a real labelId (0-33), in labelId order; 'license plate' (-1) is dropped."""

CATEGORIES = tuple(dict.fromkeys(label.category for label in LABELS))
"""Category names in categoryId order: void, flat, construction, object, nature, sky, human, vehicle."""

ID_SPACES = ("trainid", "labelid")


@dataclass(frozen=True, eq=False)
class ClassSpace:
    """One class space: what the network's class index means, and LUTs to and from labelIds."""

    name: str
    names: tuple[str, ...]
    """Class name for each network class index 0..N-1."""
    ignore_index: int | None
    """Label value excluded from the loss (255 for trainIds, None for labelIds)."""
    to_label_id: np.ndarray
    """uint8[256]: class index -> Cityscapes labelId (ignore -> 0 'unlabeled')."""
    from_label_id: np.ndarray
    """uint8[256]: Cityscapes labelId -> class index (unmapped -> IGNORE)."""
    palette: np.ndarray
    """uint8[256, 3] RGB colour for every class value (ignore and unknown -> black)."""

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def colors(self) -> np.ndarray:
        """uint8[N, 3] RGB colour of each class index."""
        return self.palette[: self.num_classes]


def _lut(pairs: dict[int, int], default: int) -> np.ndarray:
    lut = np.full(256, default, dtype=np.uint8)
    for key, value in pairs.items():
        lut[key] = value
    return lut


def _palette(colors: dict[int, tuple[int, int, int]]) -> np.ndarray:
    palette = np.zeros((256, 3), dtype=np.uint8)
    for key, color in colors.items():
        palette[key] = color
    return palette


def _build_trainid_space() -> ClassSpace:
    train_labels = sorted((l for l in LABELS if 0 <= l.trainId < IGNORE), key=lambda l: l.trainId)
    return ClassSpace(
        name="trainid",
        names=tuple(l.name for l in train_labels),
        ignore_index=IGNORE,
        to_label_id=_lut({l.trainId: l.id for l in train_labels}, default=0),
        from_label_id=_lut({l.id: l.trainId for l in train_labels}, default=IGNORE),
        palette=_palette({l.trainId: l.color for l in train_labels}),
    )


def _build_labelid_space() -> ClassSpace:
    return ClassSpace(
        name="labelid",
        names=tuple(l.name for l in LABELS),
        ignore_index=None,
        to_label_id=_lut({l.id: l.id for l in LABELS}, default=0),
        from_label_id=_lut({l.id: l.id for l in LABELS}, default=IGNORE),
        palette=_palette({l.id: l.color for l in LABELS}),
    )


@lru_cache(maxsize=None)
def class_space(name: str) -> ClassSpace:
    """Return the class space called ``name`` ('trainid' or 'labelid')."""
    key = name.lower().replace("_", "").replace("-", "")
    if key == "trainid":
        return _build_trainid_space()
    if key == "labelid":
        return _build_labelid_space()
    raise ValueError(f"unknown class space {name!r}; use one of {', '.join(ID_SPACES)}")


def conversion_lut(source: ClassSpace, target: ClassSpace) -> np.ndarray:
    """uint8[256] LUT that maps class values of ``source`` to ``target`` (ignore stays ignore)."""
    if source.name == target.name:
        return np.arange(256, dtype=np.uint8)
    lut = target.from_label_id[source.to_label_id]
    if source.ignore_index is not None:
        lut[source.ignore_index] = target.ignore_index if target.ignore_index is not None else 0
    return lut


def convert_ids(mask: np.ndarray, source: ClassSpace, target: ClassSpace) -> np.ndarray:
    """Map a uint8 class mask from ``source`` to ``target`` space."""
    return conversion_lut(source, target)[mask]


def label_id_categories() -> np.ndarray:
    """uint8[256]: labelId -> categoryId (unknown -> IGNORE)."""
    return _lut({l.id: l.categoryId for l in LABELS}, default=IGNORE)

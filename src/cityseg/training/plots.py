"""Training figures: the metric history and prediction previews (matplotlib, Agg canvas).

Figures are drawn on an off-screen Agg canvas (no global backend switch, no display needed) and
written atomically, so a viewer refreshing the PNG never sees a half-written file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cityseg.fileio import atomic_path

HISTORY_PANELS = (("loss", "loss"), ("pixel_accuracy", "pixel accuracy"), ("dice", "mean Dice"),
                  ("miou", "mIoU"))
"""(log key, panel title) of each history panel; train is ``key``, validation ``val_<key>``."""


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path, dpi: int) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    return Path(path)


def history_columns(records: Sequence[Mapping[str, float]]) -> dict[str, list[float]]:
    """Per-epoch records (one mapping of log values per epoch) as key -> list (NaN where absent)."""
    keys = dict.fromkeys(k for record in records for k in record)
    return {k: [float(record.get(k, np.nan)) for record in records] for k in keys}


def plot_history(records: Sequence[Mapping[str, float]], path: str | Path, title: str = "") -> Path:
    """Draw loss / pixel accuracy / Dice / mIoU per epoch, train vs validation, to a PNG."""
    from matplotlib.ticker import MaxNLocator

    columns = history_columns(records)
    epochs = np.arange(1, len(records) + 1)
    figure = _new_figure(12, 3.2)
    axes = figure.subplots(1, len(HISTORY_PANELS))
    for ax, (key, label) in zip(axes, HISTORY_PANELS):
        for name, style in ((key, "-o"), (f"val_{key}", "-s")):
            if name in columns:
                ax.plot(epochs, columns[name], style, markersize=3,
                        label="val" if name.startswith("val_") else "train")
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
        if len(epochs):
            ax.set_xlim(0.5, len(epochs) + 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        figure.suptitle(title)
    return _save(figure, Path(path), dpi=90)


def plot_predictions(images: np.ndarray, truth: np.ndarray, predictions: np.ndarray,
                     palette: np.ndarray, path: str | Path, title: str = "") -> Path:
    """One row per sample: image | ground-truth colours | predicted colours, to a PNG.

    ``images``: uint8 NxHxWx3 RGB; ``truth`` / ``predictions``: uint8 NxHxW class indices;
    ``palette``: uint8[256, 3] RGB colour of every class value (ignore -> black).
    """
    count = len(images)
    height, width = images.shape[1:3]
    panel_w = 4.0
    figure = _new_figure(3 * panel_w, max(count, 1) * panel_w * height / width + 0.6)
    axes = np.atleast_2d(figure.subplots(count, 3, squeeze=False))
    columns = ("image", "ground truth", "prediction")
    for row in range(count):
        shown = (images[row], palette[truth[row]], palette[predictions[row]])
        for col, picture in enumerate(shown):
            ax = axes[row, col]
            ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col])
    if title:
        figure.suptitle(title)
    return _save(figure, Path(path), dpi=80)

"""The original study's approach, measured in the same run as the baseline: Keras ``predict``
followed by a boolean-mask colouring loop over every label."""

from __future__ import annotations

import cv2
import numpy as np

from cityseg.benchmarking.timing import median_ms
from cityseg.preprocess import normalize, resize_image


def study_postprocess(scores: np.ndarray, frame: np.ndarray, palette: np.ndarray, alpha: float):
    """The original study's postprocess: argmax, then colour with a loop over every label."""
    classes = np.argmax(scores, axis=-1).astype(np.uint8)
    height, width = frame.shape[:2]
    mask = cv2.resize(classes, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    color = np.zeros((height, width, 3), np.uint8)
    for label_id in range(scores.shape[-1]):
        color[mask == label_id] = palette[label_id]
    blended = frame.astype(np.float32) * (1 - alpha) + color.astype(np.float32) * alpha
    return mask, color, np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def bench_study_baseline(bundle, model, frame: np.ndarray, repeats: int, warmup: int,
                         alpha: float = 0.5) -> float:
    """End-to-end ms of the study's approach: preprocess, Keras predict, per-label colouring loop."""
    card = bundle.card

    def study_frame():
        small = resize_image(frame, card.input_height, card.input_width, card.resize)
        scores = model.predict(normalize(small[None], card.normalization), verbose=0)[0]
        return study_postprocess(scores, frame, card.space.palette, alpha)

    return median_ms(study_frame, repeats, warmup)

"""What a model's raw output means: any layout, kind and stride -> class scores at the input size.

Our Keras models output NHWC probabilities at the input size; imported models may output NCHW
logits at 1/4 or 1/8 of it, one sigmoid channel, or class ids (NxHxW or Nx1xHxW, often int64).
:func:`standardize` turns every one of them into one of two canonical forms:

* ``NxHxWxC`` float scores (kind 'probabilities' or 'logits', C >= 2) at the network input size:
  scores below it are upsampled bilinearly (half-pixel centres, i.e. PyTorch's
  ``align_corners=False``, what mmsegmentation does) before any argmax; a 1-channel sigmoid output
  becomes the two probabilities (1 - p, p), a 1-channel logit the logits (0, x);
* ``NxHxW`` uint8 class ids (kind 'argmax'), upsampled nearest when below the input size.

Both the Segmenter and the converter's parity check read outputs through this module.
"""

from __future__ import annotations

import cv2
import numpy as np

SCORE_KINDS = ("probabilities", "logits", "sigmoid")
OUTPUT_KINDS = SCORE_KINDS + ("argmax",)


class OutputError(ValueError):
    """A model output that cannot mean what its card says (rank, class axis, size)."""


def _class_axis(layout: str) -> int:
    return 1 if layout == "NCHW" else -1


def _resize_each(batch: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """cv2.resize every frame of an NxHxW[xC] batch to ``size`` (height, width), straight into
    the output array (no stacking copy: 19 channels at 512x1024 are 40 MB)."""
    height, width = size
    out = np.empty((len(batch), height, width, *batch.shape[3:]), batch.dtype)
    for frame, target in zip(batch, out):
        cv2.resize(np.ascontiguousarray(frame), (width, height), dst=target, interpolation=interpolation)
    return out


def standardize(output: np.ndarray, kind: str, layout: str, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """A batch of raw model output -> (canonical output, canonical kind); see the module docstring."""
    if kind not in OUTPUT_KINDS:
        raise OutputError(f"unknown output kind {kind!r}; use one of {', '.join(OUTPUT_KINDS)}")
    output = np.asarray(output)
    if kind == "argmax":
        return _standardize_ids(output, layout, size), "argmax"
    if output.ndim != 4:
        raise OutputError(f"scores of shape {list(output.shape)}: expected rank 4 "
                          f"({'NxCxHxW' if layout == 'NCHW' else 'NxHxWxC'})")
    if layout == "NCHW":
        output = np.moveaxis(output, 1, -1)
    _check_size(output.shape[1:3], size, "scores")
    if output.shape[-1] == 1:
        output, kind = binary_scores(output, kind)
    elif kind == "sigmoid":
        raise OutputError(f"a sigmoid output has one channel, this one has {output.shape[-1]}; "
                          "use --output probabilities or logits")
    if output.dtype != np.float32:
        output = output.astype(np.float32)
    if tuple(output.shape[1:3]) != tuple(size):
        output = _resize_each(output, size, cv2.INTER_LINEAR)
    return output, kind


def binary_scores(output: np.ndarray, kind: str) -> tuple[np.ndarray, str]:
    """NxHxWx1 -> NxHxWx2: sigmoid probability p -> (1 - p, p); a logit x -> logits (0, x)."""
    single = output.astype(np.float32, copy=False)
    if kind == "logits":
        return np.concatenate([np.zeros_like(single), single], axis=-1), "logits"
    return np.concatenate([1.0 - single, single], axis=-1), "probabilities"


def _check_size(got, size: tuple[int, int], what: str) -> None:
    if got[0] > size[0] or got[1] > size[1] or min(got) <= 0:
        raise OutputError(f"{what} of {got[0]}x{got[1]} do not fit the {size[0]}x{size[1]} input "
                          "(the layout or the class axis is wrong)")


def _standardize_ids(output: np.ndarray, layout: str, size: tuple[int, int]) -> np.ndarray:
    if output.ndim == 4:
        axis = _class_axis(layout)
        if output.shape[axis] != 1:
            raise OutputError(f"class ids of shape {list(output.shape)}: expected NxHxW or a single "
                              "channel (Nx1xHxW)")
        output = output.squeeze(axis)
    if output.ndim != 3:
        raise OutputError(f"class ids of shape {list(output.shape)}: expected rank 3 (NxHxW)")
    _check_size(output.shape[1:], size, "class ids")
    if not np.issubdtype(output.dtype, np.integer):
        raise OutputError(f"class ids of type {output.dtype}: an argmax output holds integers")
    ids = output.astype(np.uint8, copy=False)
    if tuple(ids.shape[1:]) != tuple(size):
        ids = _resize_each(ids, size, cv2.INTER_NEAREST_EXACT)
    return ids


def standardize_confidence(output: np.ndarray, layout: str, size: tuple[int, int]) -> np.ndarray:
    """A uint8 confidence output (NxHxW or single-channel) -> NxHxW uint8 at ``size``."""
    return _standardize_ids(output, layout, size)


def top_probability(scores: np.ndarray, kind: str) -> np.ndarray:
    """HxWxC canonical scores -> uint8 HxW top-class probability x 255 (softmax of logits)."""
    if kind == "probabilities":
        top = scores.max(axis=-1)
    elif kind == "logits":
        shifted = scores - scores.max(axis=-1, keepdims=True)
        top = 1.0 / np.exp(shifted).sum(axis=-1)  # softmax of the top class: exp(0) / sum
    else:
        raise OutputError(f"no confidence in {kind!r} output")
    return np.clip(np.rint(top * 255.0), 0, 255).astype(np.uint8)

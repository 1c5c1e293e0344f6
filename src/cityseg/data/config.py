"""The data part of the training config: where the frames are, how they are split and turned into
network input (``data:``), and the training-time augmentation (``augment:``).

Read through :func:`cityseg.training.config.load_train_config`; the schema lives here, beside the
pipeline that reads it, so the data layer needs nothing from training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass
class DataConfig:
    """Where the data is, how it is split, and how frames become network input."""

    root: str | None = None
    """Dataset root (for Cityscapes the folder holding leftImg8bit/ and gtFine/); `--data-root`
    overrides it."""
    layout: Literal["cityscapes", "camvid", "paired"] = "cityscapes"
    """How the root is laid out (docs/DATA.md): cityscapes (leftImg8bit/ + gtFine/ by
    city_seq_frame key), camvid (SegNet's train.txt / val.txt / test.txt list files of
    "image annotation" pairs), paired (<paired_dirs[0]>/<split>/** and <paired_dirs[1]>/<split>/**
    matched by file stem)."""
    paired_dirs: tuple[str, str] = ("images", "labels")
    """paired layout only: the image and label folders under the root (each holding one folder
    per split)."""
    split: Literal["official", "study"] = "official"
    """official: train / val (and test where the layout has one); study (cityscapes layout only):
    train+val pooled, sorted, split 60/15/25 (train/dev/test)."""
    split_seed: int | None = None
    """study split only: None keeps the study's sorted order; an int shuffles with that seed."""
    study_order: Literal["key", "path"] = "key"
    """study split only: sort the pool by city_seq_frame key (cities of train and val interleave),
    or by file path as the study did (then train and dev come from the official train folder and
    its test split holds all 500 official val images)."""
    class_space: str = "trainid"
    """What the network learns: 'trainid' (19 classes), 'labelid' (34), or a label-set YAML file
    (classes with id/name/color, a label_map from the dataset's labelIds; a relative path is
    resolved against the config file naming it). See docs/TRAINING.md."""
    height: int = 256
    width: int = 512
    resize: Literal["lanczos3", "area", "bilinear"] = "lanczos3"
    normalization: Literal["scale", "mean_std"] = "scale"
    """scale: pixel/255; mean_std: per-channel mean/std measured on the training split only."""
    batch_size: int = 8
    shuffle_buffer: int = 1024
    cache_dir: str | None = "~/.cache/cityseg"
    """Preprocessed uint8 cache at training resolution; null disables it."""
    max_samples: int | None = None
    """Use only the first N samples of each split (quick experiments)."""

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0 or self.batch_size <= 0:
            raise ValueError("data.height, data.width and data.batch_size must be positive")
        from cityseg.errors import InputError
        from cityseg.labels import load_label_set

        try:
            space = load_label_set(self.class_space)
        except InputError as exc:
            raise ValueError(f"data.class_space: {exc}") from None
        if self.layout != "cityscapes" and space.is_cityscapes:
            raise ValueError(f"data.layout {self.layout} holds annotations in the dataset's own class ids, "
                             f"not Cityscapes labelIds: set data.class_space to its label set "
                             f"(camvid for CamVid, or a label-set YAML), not {self.class_space}")
        if self.layout != "cityscapes" and self.split == "study":
            raise ValueError("data.split study pools Cityscapes' train and val folders; with data.layout "
                             f"{self.layout} use split: official (the layout's own train/val/test)")
        if len(self.paired_dirs) != 2 or not all(self.paired_dirs) or self.paired_dirs[0] == self.paired_dirs[1]:
            raise ValueError(f"data.paired_dirs must name two different folders (images, labels), "
                             f"got {list(self.paired_dirs)}")


@dataclass
class AugmentConfig:
    """Training-time augmentation, applied per sample in the data pipeline (never at inference)."""

    photometric_prob: float = 0.0
    """Probability that a sample gets the photometric set below (the study: 0.5)."""
    hue: float = 0.0
    """Max hue delta (the study: 0.1)."""
    brightness: float = 0.0
    """Max brightness delta, in [0, 1] pixel units."""
    contrast: tuple[float, float] | None = None
    """Contrast factor range, e.g. [0.8, 1.2]."""
    saturation: tuple[float, float] | None = None
    """Saturation factor range, e.g. [0.8, 1.2]."""
    hflip_prob: float = 0.0
    vflip_prob: float = 0.0
    """Up-down flip: the study's "bad" augmentation, kept for the ablation."""
    scale_crop_prob: float = 0.0
    scale_range: tuple[float, float] = (0.75, 1.5)
    """Random scale then crop back to the training size (modern Cityscapes recipes)."""
    crop: tuple[int, int] | None = None
    """[height, width]: train on a random crop of this size of every (augmented) sample, each a
    multiple of the model's stride and at most data.height x data.width; validation, the model
    bundle and inference keep the full data.height x data.width (the models are fully
    convolutional). Fewer pixels a step: the usual way to train faster on large frames."""

    def __post_init__(self) -> None:
        probs = (self.photometric_prob, self.hflip_prob, self.vflip_prob, self.scale_crop_prob)
        if any(not 0.0 <= p <= 1.0 for p in probs):
            raise ValueError("augment probabilities must be within [0, 1]")
        if self.crop is not None and (len(self.crop) != 2 or min(self.crop) <= 0):
            raise ValueError(f"augment.crop must be [height, width], two positive integers, got {self.crop}")


class DatasetSettings(Protocol):
    """What the tf.data pipeline reads of a training config (a ``TrainConfig`` is one)."""

    data: DataConfig
    augment: AugmentConfig
    seed: int

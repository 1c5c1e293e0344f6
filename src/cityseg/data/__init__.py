"""Cityscapes data: discovery and splits (cityscapes), tf.data pipeline and cache (pipeline),
augmentation (augment), synthetic street scenes in Cityscapes layout (synth, scene).

Only the TensorFlow-free parts are re-exported here; import ``cityseg.data.pipeline`` for the rest.
"""

from cityseg.data.cityscapes import (DatasetError, Sample, find_samples, make_splits, study_split,
                                     validation_split)

__all__ = ["DatasetError", "Sample", "find_samples", "make_splits", "study_split", "validation_split"]

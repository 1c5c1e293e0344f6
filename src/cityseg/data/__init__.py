"""Cityscapes data: discovery and splits (cityscapes), tf.data pipeline and cache (pipeline),
augmentation (augment). Synthetic street scenes in the Cityscapes layout are :mod:`cityseg.synthetic`.

Only the TensorFlow-free parts are re-exported here; import ``cityseg.data.pipeline`` for the rest.
"""

from cityseg.data.cityscapes import DatasetError, Sample, find_samples, make_splits, study_split, validation_split

__all__ = ["DatasetError", "Sample", "find_samples", "make_splits", "study_split", "validation_split"]

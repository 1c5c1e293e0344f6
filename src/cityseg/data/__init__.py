"""Datasets: discovery of each layout (cityscapes, camvid, paired; one way in: layouts), the
tf.data pipeline and cache (pipeline), augmentation (augment), dataset checks (check). Synthetic
street scenes in the Cityscapes layout are :mod:`cityseg.synthetic`.

Only the TensorFlow-free parts are re-exported here; import ``cityseg.data.pipeline`` for the rest.
"""

from cityseg.data.cityscapes import DatasetError, Sample, find_samples, study_split
from cityseg.data.layouts import find_split, make_splits, validation_split

__all__ = ["DatasetError", "Sample", "find_samples", "find_split", "make_splits", "study_split",
           "validation_split"]

"""Inference: preprocess -> backend -> postprocess, free of ROS."""

from cityseg.inference.segmenter import ConfidenceUnavailable, Segmentation, Segmenter

__all__ = ["ConfidenceUnavailable", "Segmentation", "Segmenter"]

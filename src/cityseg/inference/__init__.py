"""Inference: preprocess -> backend -> postprocess, free of ROS."""

from cityseg.inference.segmenter import Segmentation, Segmenter

__all__ = ["Segmentation", "Segmenter"]

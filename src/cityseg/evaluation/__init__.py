"""Official Cityscapes evaluation: scoring math and running a bundle over a split.

Layering (no cycles): :mod:`cityseg.evaluation.scoring` is pure numpy on top of
:mod:`cityseg.labels` only, so it sits at the bottom with the labels and any layer may use it;
:mod:`cityseg.evaluation.run` (score label PNGs, run a bundle over a split) sits at the top beside
ros/, above inference, which it imports. Nothing in training/ imports this package: the Keras
metrics of a run are :mod:`cityseg.training.metrics`.
"""

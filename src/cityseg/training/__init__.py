"""Training: the training config, losses, metrics, schedules, callbacks and the training loop.

Submodules are imported where needed (TensorFlow/Keras load only when a Keras part is used):
``config`` (the `cityseg train --config` schema and loader, free of TensorFlow), ``losses`` (CE,
class-weighted CE, soft Dice, CE+Dice), ``metrics`` (Keras stateful metrics), ``schedules``,
``callbacks``, and the run itself: ``train`` (the story, top-down) with ``run_state`` (the run
state and checkpoint names, free of Keras), ``run_dir``, ``run_data``, ``model_setup``,
``distribute`` and ``deliverable``.
The official Cityscapes scores are :mod:`cityseg.evaluation` (above training; never imported here).
"""

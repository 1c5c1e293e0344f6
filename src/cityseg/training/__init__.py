"""Training: losses, metrics, schedules, callbacks and the training loop.

Submodules are imported where needed (TensorFlow/Keras load only when a Keras part is used):
``losses`` (CE, class-weighted CE, soft Dice, CE+Dice), ``metrics`` (Keras stateful metrics and
the official-Cityscapes numpy confusion matrix), ``schedules``, ``callbacks``, ``train``.
"""

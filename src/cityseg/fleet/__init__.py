"""`cityseg fleet`: segment many bags on a Ray cluster (a local one by default).

- :mod:`cityseg.fleet.plan`: which bags, where their outputs go, what identifies a complete
  output (model, parameters, input) so a rerun skips it;
- :mod:`cityseg.fleet.actors`: the Ray actor that loads the model once and replays bag after bag
  with :func:`cityseg.ros.bag.replay.replay_bag`, committing each output atomically;
- :mod:`cityseg.fleet.run`: Ray start-up, scheduling, retries, progress and the summary.

Ray is an optional extra (``pip install cityseg[fleet]``); only ``run`` and the actors import it,
lazily, so ``import cityseg`` never needs it.
"""

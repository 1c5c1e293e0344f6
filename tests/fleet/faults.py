"""Faults the fleet tests inject into a Ray worker: it dies (as a killed process would) or hangs
after the first frame of one bag.

:func:`faulty_worker` makes a :class:`BagWorker` subclass that carries the fault; a test puts it
in place of ``cityseg.fleet.run.BagWorker``, and Ray ships the class (made inside a function, so
pickled by value) to its worker processes. Run as a script, this module is ``cityseg`` with that
worker in place: ``python faults.py BAG:MODE cityseg-args...`` (how a test kills a whole run mid-bag).
"""

from __future__ import annotations

import os
import sys
import time

from cityseg.fleet.actors import BagWorker


def faulty_worker(bag: str, mode: str = "exit", attempts: tuple[int, ...] | None = (1,)) -> type[BagWorker]:
    """A BagWorker that, replaying ``bag`` on one of ``attempts`` (None: every attempt), after its
    first frame exits with status 17 (``mode='exit'``) or sleeps until killed (``mode='hang'``)."""

    class FaultyBagWorker(BagWorker):
        def _write(self, task, reporter):
            if task.name == bag and (attempts is None or task.attempt in attempts):
                frame = reporter.frame

                def frame_then_fault() -> None:
                    frame()
                    if mode == "exit":
                        os._exit(17)
                    while True:
                        time.sleep(1)

                reporter.frame = frame_then_fault
            return BagWorker._write(self, task, reporter)

    return FaultyBagWorker


if __name__ == "__main__":
    import cityseg.fleet.run
    from cityseg.cli import main

    name, _, how = sys.argv[1].partition(":")
    cityseg.fleet.run.BagWorker = faulty_worker(name, how or "exit")
    sys.exit(main(sys.argv[2:]))

"""The Keras / TensorFlow versions the private-API code is tested with, and the check that says so.

Three places use what Keras and TensorFlow do not promise to keep:

* :func:`cityseg.training.distribute.adapt_to_strategy` - ``Model._symbolic_build`` and
  ``Model._maybe_symbolic_build`` (several replicas / workers);
* :func:`cityseg.training.model_setup.batchnorm_layers` - ``Layer._flatten_layers`` (nested
  BatchNormalization layers, for sync BN and the momentum override);
* the tests that read models through ``_flatten_layers``.

``setup.py`` bounds the ``train`` extra below the next minor versions; a newer install (by hand,
or a bound raised without re-testing) gets :class:`UntestedVersionWarning` where the private APIs
are used, and ``tests/training/test_version_fence.py`` fails. To move the fence: run the whole suite
(``make test``, distributed tests included) on the new versions, then raise ``TESTED_*`` here and
the bounds in ``setup.py`` together.
"""

from __future__ import annotations

import logging
import re
import warnings
from functools import cache

from cityseg.bundle.card import framework_versions

log = logging.getLogger(__name__)

TESTED_KERAS = "3.15"
"""The newest Keras minor version the private-API code is tested with (setup.py: keras<3.16)."""
TESTED_TENSORFLOW = "2.21"
"""The newest TensorFlow minor version it is tested with (setup.py: tensorflow<2.22)."""
TESTED = {"keras": TESTED_KERAS, "tensorflow": TESTED_TENSORFLOW}


class UntestedVersionWarning(UserWarning):
    """Keras or TensorFlow is newer than the versions cityseg's private-API code is tested with."""


def minor(version: str) -> tuple[int, int]:
    """'3.15.1' / '2.21.0rc1' / '3.15' -> (3, 15)."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if not match:
        raise ValueError(f"cannot read a version number from {version!r}")
    return int(match.group(1)), int(match.group(2))


def installed_versions() -> dict[str, str]:
    """The installed versions of the fenced packages (those not installed are left out)."""
    return {name: version for name, version in framework_versions(*TESTED).items() if name in TESTED}


def untested(installed: dict[str, str] | None = None) -> list[str]:
    """'<package> <installed> (tested up to <fence>)' for each package newer than the fence."""
    installed = installed_versions() if installed is None else installed
    return [f"{name} {version} (tested up to {TESTED[name]}.x)" for name, version in sorted(installed.items())
            if name in TESTED and minor(version) > minor(TESTED[name])]


def message(newer: list[str], where: str) -> str:
    return (f"{where} uses private Keras/TensorFlow APIs tested only up to Keras {TESTED_KERAS} and "
            f"TensorFlow {TESTED_TENSORFLOW}, but this environment has {', '.join(newer)}. If training "
            f"fails or behaves oddly, install the tested versions (pip install 'keras<3.16' "
            f"'tensorflow<2.22', as setup.py's train extra does); to support the new versions, run the "
            f"whole suite on them and move the fence in cityseg/training/version_fence.py and setup.py")


@cache
def check_versions(where: str) -> None:
    """Warn once per ``where`` (the code about to use a private API) when Keras or TensorFlow is
    newer than the fence knows."""
    newer = untested()
    if newer:
        warnings.warn(message(newer, where), UntestedVersionWarning, stacklevel=2)

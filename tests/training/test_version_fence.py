"""The fence around the private Keras/TensorFlow APIs: the installed versions are ones it knows,
setup.py bounds them at the same place, and a newer version is reported loudly."""

import re
from pathlib import Path

import pytest

from cityseg.training import version_fence as fence

SETUP = Path(__file__).resolve().parents[2] / "setup.py"


def test_installed_keras_and_tensorflow_are_within_the_fence():
    newer = fence.untested()
    assert not newer, (
        f"{', '.join(newer)} is newer than the versions the private-API code (training/distribute.py, "
        "training/model_setup.py) is tested with. Run the whole suite (make test) on it, then raise "
        "TESTED_* in src/cityseg/training/fence.py and the bounds in setup.py together")


def test_setup_py_bounds_at_the_next_minor_of_the_fence():
    text = SETUP.read_text()
    for name, tested in fence.TESTED.items():
        major, minor = fence.minor(tested)
        assert re.search(rf'"{name}>=[\d.]+,<{major}\.{minor + 1}"', text), f"setup.py: {name} bound"


def test_a_newer_version_is_named_with_what_to_do(monkeypatch):
    assert fence.untested({"keras": "3.15.1", "tensorflow": "2.21.0"}) == []
    newer = fence.untested({"keras": "3.16.0", "tensorflow": "2.21.0rc1"})
    assert newer == ["keras 3.16.0 (tested up to 3.15.x)"]
    monkeypatch.setattr(fence, "untested", lambda: newer)
    fence.check_versions.cache_clear()
    with pytest.warns(fence.UntestedVersionWarning, match=r"(?s)tested only up to Keras 3\.15.*keras 3\.16\.0"
                                                          r".*fence\.py"):
        fence.check_versions("test")
    fence.check_versions.cache_clear()

"""Fixtures for the data tests: tiny Cityscapes trees written as real PNG files."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import flat_pair, write_pair


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A small synthetic Cityscapes tree: 6 train + 2 val scenes of 128x64."""
    from cityseg.synthetic.dataset import write_dataset

    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, 8, size=(128, 64), seed=3, splits={"train": 0.75, "val": 0.25})
    return root


class TreeWriter:
    """Helpers handed to tests by the ``tree`` fixture."""

    write_pair = staticmethod(write_pair)
    flat_pair = staticmethod(flat_pair)


@pytest.fixture
def tree() -> type[TreeWriter]:
    return TreeWriter

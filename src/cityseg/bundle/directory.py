"""A model bundle on disk: the directory holding ``model.json`` (the card) and the model files.

Layout::

    <bundle>/model.json       the card (:mod:`cityseg.bundle.card`)
    <bundle>/model.keras      written by the trainer
    <bundle>/model.onnx       written by ``cityseg export --onnx``
    <bundle>/*.engine         written by ``cityseg export --tensorrt``

A bare bundle name (``unet_lite``, no path separator) is looked up in ``./models``, then
``$CITYSEG_MODELS``, then the installed share directory (:func:`resolve_bundle`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cityseg.bundle.card import CARD_FILE, MODELS_ENV, Artifact, ModelCard
from cityseg.config import ConfigError, from_mapping
from cityseg.errors import BundleError
from cityseg.fileio import sha256_file, write_json_atomic


class Bundle:
    """A model bundle directory and its validated card."""

    def __init__(self, path: Path, card: ModelCard):
        self.path = Path(path)
        self.card = card

    @classmethod
    def load(cls, path: str | Path) -> Bundle:
        """Load and validate the bundle at ``path`` (a directory or its ``model.json``, or a bare
        bundle name found by :func:`resolve_bundle`)."""
        root = resolve_bundle(path)
        if root.name == CARD_FILE:
            root = root.parent
        card_path = root / CARD_FILE
        if root.is_file():
            raise BundleError(f"{root}: is a file, not a model bundle directory; give the directory "
                              f"holding {CARD_FILE}")
        if not root.is_dir():
            raise BundleError(f"{root}: no such model bundle directory; train one with "
                              "`cityseg train` or `cityseg demo`, or check the path")
        if not card_path.is_file():
            raise BundleError(f"{root}: not a model bundle, {CARD_FILE} is missing")
        try:
            raw = json.loads(card_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{card_path}: corrupt model card ({exc}); restore it from the "
                              "training run directory") from None
        try:
            card = from_mapping(ModelCard, raw, where=str(card_path))
        except ConfigError as exc:
            raise BundleError(f"invalid model card: {exc}") from None
        bundle = cls(root, card)
        for key, artifact in card.artifacts.items():
            _check_inside(root, key, artifact.path)
            if not (root / artifact.path).is_file():
                raise BundleError(f"{root / artifact.path}: the card lists artifact {key!r} but "
                                  "the file is missing; copy the whole bundle directory, or "
                                  "re-run `cityseg export` to recreate it")
        return bundle

    @classmethod
    def create(cls, path: str | Path, card: ModelCard, *, overwrite: bool = False) -> Bundle:
        """Start a new bundle directory holding ``card``; refuse to replace one unless ``overwrite``."""
        root = Path(path)
        if (root / CARD_FILE).exists() and not overwrite:
            raise BundleError(f"{root}: a model bundle already exists there; choose another "
                              "output directory or pass --force to replace it")
        root.mkdir(parents=True, exist_ok=True)
        bundle = cls(root, card)
        bundle.save()
        return bundle

    def save(self) -> None:
        """Write the card atomically."""
        write_json_atomic(self.path / CARD_FILE, self.card.to_dict())

    def artifact_path(self, key: str) -> Path:
        return self.path / self.card.artifacts[key].path

    def verified_artifact_path(self, key: str) -> Path:
        """The artifact's file, checked against the card: its recorded size always, its recorded
        sha256 once per (file, size, mtime) in this process; BundleError naming a file that does not
        belong to the card (e.g. another graph copied over it)."""
        path, details = self.artifact_path(key), self.card.artifacts[key].details
        stat = path.stat()
        fix = (f"restore the bundle's own file, or re-run `cityseg export` for {self.path} to "
               "recreate it (--force)")
        if isinstance(details.get("bytes"), int) and stat.st_size != details["bytes"]:
            raise BundleError(f"{path}: this file does not belong to the card of {self.path} (artifact "
                              f"{key!r}): {stat.st_size} bytes, the card records {details['bytes']}; {fix}")
        want = details.get("sha256")
        if isinstance(want, str):
            seen = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
            if seen not in _VERIFIED:
                _VERIFIED[seen] = sha256_file(path)
            if _VERIFIED[seen] != want:
                raise BundleError(f"{path}: this file does not belong to the card of {self.path} (artifact "
                                  f"{key!r}): sha256 {_VERIFIED[seen][:12]}..., the card records "
                                  f"{want[:12]}...; {fix}")
        return path

    def artifacts(self, fmt: str) -> dict[str, Artifact]:
        """The card's artifacts of one format (keras, onnx, tensorrt), in card order."""
        return {k: a for k, a in self.card.artifacts.items() if a.format == fmt}

    def add_artifact(self, key: str, artifact: Artifact) -> None:
        """Record an artifact (its file must already be in place) and save the card."""
        if not (self.path / artifact.path).is_file():
            raise BundleError(f"{self.path / artifact.path}: cannot record a missing artifact")
        self.card.artifacts[key] = artifact
        self.save()

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, {self.card.architecture}, {list(self.card.artifacts)})"


_VERIFIED: dict[tuple[str, int, int], str] = {}
"""(resolved path, size, mtime_ns) -> sha256 of the artifact files checked in this process."""


def _check_inside(root: Path, key: str, relative: str) -> None:
    """An artifact path must be relative and stay inside the bundle directory."""
    lexical = os.path.normpath(relative)  # lexical: a bundle's own symlinked file stays allowed
    if Path(relative).is_absolute() or lexical == ".." or lexical.startswith(".." + os.sep):
        raise BundleError(f"{root / CARD_FILE}: artifact {key!r} path {relative!r} is "
                          f"{'absolute' if Path(relative).is_absolute() else 'outside the bundle directory'}; "
                          "a card names its files relative to the bundle directory - fix the card or "
                          "re-export the bundle")


def resolve_bundle(path: str | Path) -> Path:
    """Where the bundle ``path`` is. A path with a separator (or ``.``, ``..``, ``model.json``) is
    returned as given; a bare name is the first ``<dir>/<name>`` holding a model card among
    :func:`bundle_dirs`, else ``./<name>``; BundleError naming every place searched when none is."""
    text = os.fspath(path)
    separators = {os.sep, os.altsep} - {None}
    if any(s in text for s in separators) or text in ("", ".", "..", CARD_FILE):
        return Path(path)
    searched = []
    for where, directory in bundle_dirs():
        candidate = directory / text
        if (candidate / CARD_FILE).is_file():
            return candidate
        searched.append(f"{candidate} ({where})")
    if Path(text).is_dir():
        return Path(text)
    if not os.environ.get(MODELS_ENV):
        searched.insert(1, f"${MODELS_ENV} (not set)")
    searched.append(f"{Path(text).resolve()} (as a path)")
    raise BundleError(f"{text}: no model bundle of that name; looked in\n  " + "\n  ".join(searched)
                      + f"\nPut the bundle directory (with its {CARD_FILE}) in ./models/ (see models/README.md) "
                      f"or in a folder named by {MODELS_ENV}, or give the bundle's path (e.g. ./{text})")


def bundle_dirs() -> list[tuple[str, Path]]:
    """The folders searched for bare bundle names, in order, as (why searched, folder)."""
    dirs = [("./models", Path("models"))]
    dirs += [(f"${MODELS_ENV}", Path(d)) for d in os.environ.get(MODELS_ENV, "").split(os.pathsep) if d]
    dirs.append(("installed", Path(sys.prefix) / "share" / "cityseg" / "models"))
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(("ament share", Path(get_package_share_directory("cityseg")) / "models"))
    except (ImportError, LookupError, ValueError, OSError):  # no ROS 2, AMENT_PREFIX_PATH unset
        pass  # (rclpy from PyPI), or cityseg not in the ament index
    unique = {}
    for where, directory in dirs:
        unique.setdefault(directory.resolve(), (where, directory))
    return list(unique.values())

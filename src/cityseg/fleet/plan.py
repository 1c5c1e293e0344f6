"""What a fleet run does: the bags, their outputs, and what makes an output complete.

Each input bag ``.../<name>`` (a rosbag2 directory) or ``.../<name>.bag`` (ROS 1) becomes the
rosbag2 ``OUT/<name>/``. A complete output holds :data:`MARKER`, written into the staged bag
before it is renamed into place: the model's id (hash of its card and model files), the
parameters' id (hash of everything else that shapes the output) and the input's id (its path and
the size and mtime of its files). A rerun skips a bag whose marker matches all three.
No Ray here.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from cityseg import __version__
from cityseg.config import to_mapping
from cityseg.errors import InputError, listing
from cityseg.fusion.config import FusionConfig
from cityseg.ros.bag.rosbag_io import normalize_topic, open_reader
from cityseg.ros.core.messages import IMAGE_TYPES
from cityseg.ros.core.processor import ProcessorConfig

MARKER = "cityseg-fleet.json"
"""File inside each complete output bag: what it was made from (rosbag2 ignores extra files)."""
STAGING_SUFFIX = ".fleet-partial"
"""Outputs are written under ``OUT/.<name>.<random>.fleet-partial/`` and renamed when complete."""
MARKER_FORMAT = 1


@dataclass(frozen=True)
class ReplayOptions:
    """Everything besides the model and the input that shapes an output bag."""

    model: str
    """Model bundle directory (as the workers open it)."""
    backend: str
    config: ProcessorConfig
    storage: str = "sqlite3"
    image_topic: str | None = None
    camera_info_topic: str | None = None
    copy_input: bool = False
    fusion: FusionConfig | None = None
    """--points-topic and its options (labelled clouds, grids); None: off."""

    def params(self) -> dict:
        """The parameters as JSON values (fleet.json and the params id)."""
        config = dataclasses.asdict(self.config)
        config["outputs"] = sorted(config["outputs"])
        out = {"backend": self.backend, **config, "storage": self.storage, "image_topic": self.image_topic,
               "camera_info_topic": self.camera_info_topic, "copy_input": self.copy_input}
        if self.fusion is not None:
            out["fusion"] = _fusion_params(self.fusion)
        return out

    def params_id(self) -> str:
        return _digest(self.params())[:16]


def _fusion_params(fusion: FusionConfig) -> dict:
    """The fusion options as JSON, the extrinsics file by path and content digest (an edited file
    is a new parameter set, so a rerun labels the bags again)."""
    fields = {f.name: getattr(fusion, f.name) for f in dataclasses.fields(fusion) if f.compare}  # not the read tree
    params = json.loads(json.dumps(to_mapping(fields), default=str))
    if fusion.extrinsics_file is not None:
        params["extrinsics_sha256"] = hashlib.sha256(Path(fusion.extrinsics_file).read_bytes()).hexdigest()
    return params


@dataclass
class BagTask:
    """One input bag and its output; ``attempt`` counts workers that tried it (a dead one retries)."""

    index: int
    input: str
    name: str
    output: str
    input_id: str
    frames: int | None = None
    """Image messages to segment (for progress), None when the driver cannot tell."""
    attempt: int = 1
    avoid: int | None = None
    """Worker slot it died on: a retry goes to another one when there is one."""


# ------------------------------------------------------------------------------------------
# Finding bags
# ------------------------------------------------------------------------------------------

def is_bag(path: Path) -> bool:
    """A rosbag2 directory (with metadata.yaml) or a ROS 1 ``.bag`` file."""
    return (path / "metadata.yaml").is_file() or (path.is_file() and path.suffix == ".bag")


def bag_name(path: Path) -> str:
    """Name of the output bag: the directory's name, or the ``.bag`` file's stem."""
    return path.stem if path.suffix == ".bag" and not path.is_dir() else path.name


def find_bags(directory: Path) -> list[Path]:
    """Every bag under ``directory`` (not looking inside bags), sorted."""
    found = []
    for root, dirs, files in os.walk(directory):
        here = Path(root)
        if "metadata.yaml" in files:
            found.append(here)
            dirs.clear()
            continue
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [here / f for f in files if f.endswith(".bag")]
    return sorted(found)


def read_manifest(path: Path) -> list[Path]:
    """Bag paths of a manifest: one a line; blank lines and ``#`` comments skipped; relative paths
    are relative to the manifest's directory."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc.strerror}); give a text file "
                         "with one bag path a line") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: the manifest is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                         f"offset {exc.start}); re-save it as UTF-8, one bag path a line") from None
    entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    return [Path(path).parent / entry for entry in entries]


def collect_bags(inputs: list[Path], manifest: Path | None = None, out_dir: Path | None = None) -> list[Path]:
    """The bags to segment: bags as given, directories searched, manifest entries; each once.
    Bags inside ``out_dir`` (earlier outputs) are never inputs."""
    given = list(inputs) + (read_manifest(manifest) if manifest is not None else [])
    if not given:
        raise InputError("no bags given; name bags or directories holding bags, or --manifest FILE")
    bags: list[Path] = []
    missing = [str(p) for p in given if not p.exists()]
    if missing:
        raise InputError(listing(missing, "bag path(s) do not exist here") + "\nBags must be readable "
                         "where cityseg fleet runs and on every Ray worker, at the same path (shared storage)")
    for path in given:
        if is_bag(path) or path.is_file():
            bags.append(path)
            continue
        found = find_bags(path)
        if not found:
            raise InputError(f"{path}: no rosbag2 directory (with metadata.yaml) or .bag file in it")
        bags += found
    unique = list(dict.fromkeys(p.resolve() for p in bags))
    if out_dir is not None:
        out = Path(out_dir).resolve()
        unique = [p for p in unique if p != out and out not in p.parents and p not in out.parents]
        if not unique:
            raise InputError(f"no bags to segment: every bag given lies in --out {out_dir} (or contains it)")
    _check_names(unique)
    return unique


def _check_names(bags: list[Path]) -> None:
    by_name: dict[str, list[Path]] = {}
    for bag in bags:
        by_name.setdefault(bag_name(bag), []).append(bag)
    clashes = [f"{name}: {', '.join(map(str, paths))}" for name, paths in by_name.items() if len(paths) > 1]
    if clashes:
        raise InputError(listing(clashes, "output name(s) shared by several bags") +
                         "\nEach bag becomes OUT/<name>; rename the bags or segment them in separate runs")


# ------------------------------------------------------------------------------------------
# Identities
# ------------------------------------------------------------------------------------------

def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def input_identity(bag: Path) -> str:
    """Id of an input bag: its resolved path and the name, size and mtime of each of its files."""
    bag = Path(bag).resolve()
    files = [bag] if bag.is_file() else sorted(p for p in bag.rglob("*") if p.is_file())
    stats = [(str(p.relative_to(bag)) if p != bag else p.name, p.stat().st_size, p.stat().st_mtime_ns)
             for p in files]
    return _digest({"path": str(bag), "files": stats})[:16]


def model_identity(model) -> dict:
    """``{"path", "name", "id"}`` of a loaded Bundle; id = name @ hash of the card and model files.

    TensorRT engines are left out: they are built from the ONNX (which is hashed) per GPU model,
    and a worker that builds one for its GPU adds it to the card; that must not change the id.
    """
    card = json.loads((model.path / "model.json").read_text())
    kept = sorted(k for k, a in model.card.artifacts.items() if a.format != "tensorrt")
    card["artifacts"] = {k: v for k, v in card.get("artifacts", {}).items() if k in kept}
    digest = hashlib.sha256(json.dumps(card, sort_keys=True).encode())
    for key in kept:
        digest.update(key.encode())
        digest.update(_file_digest(model.artifact_path(key)))
    return {"path": str(Path(model.path).resolve()), "name": model.card.name,
            "id": f"{model.card.name}@{digest.hexdigest()[:16]}"}


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


# ------------------------------------------------------------------------------------------
# Outputs: marker, skip decision, staging
# ------------------------------------------------------------------------------------------

def make_marker(task: BagTask, model_id: str, params_id: str, summary: dict) -> dict:
    """The marker written into a complete output bag."""
    return {"format": MARKER_FORMAT, "cityseg_version": __version__, "input": task.input,
            "input_id": task.input_id, "model_id": model_id, "params_id": params_id,
            "frames_in": summary.get("frames_in", 0), "frames_out": summary.get("frames_out", 0),
            "failed_frames": len(summary.get("failed", [])), "image_topic": summary.get("image_topic"),
            "wall_s": summary.get("wall_s", 0.0)}


def read_marker(output: Path) -> dict | None:
    """The marker of a complete output, or None (no output, or not written by cityseg fleet)."""
    try:
        marker = json.loads((Path(output) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def decide(task: BagTask, model_id: str, params_id: str, force: bool) -> tuple[str, str | dict | None]:
    """('run', None), ('skip', marker) or ('conflict', why): what to do with ``task``'s output."""
    output = Path(task.output)
    if not (output.exists() or output.is_symlink()):
        return "run", None
    if force:
        return "run", None
    marker = read_marker(output)
    if marker is None:
        return "conflict", (f"{output} already exists and was not written by cityseg fleet; pass --force "
                            "to replace it or choose another --out")
    wanted = {"input_id": task.input_id, "model_id": model_id, "params_id": params_id}
    differ = [key[:-3] for key, value in wanted.items() if marker.get(key) != value]
    if not differ:
        return "skip", marker
    return "conflict", (f"{output} already exists, written for another {' and '.join(differ)}; pass "
                        "--force to replace it or choose another --out")


def clear_stale_staging(out_dir: Path, name: str) -> None:
    """Remove what a killed run left while writing ``name`` (one fleet run per --out at a time);
    not another bag's (``.a.b.<random>.fleet-partial`` is bag ``a.b``'s, not ``a``'s)."""
    pattern = re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}{re.escape(STAGING_SUFFIX)}")
    for stale in Path(out_dir).glob(f".{glob.escape(name)}.*{STAGING_SUFFIX}"):
        if pattern.fullmatch(stale.name):
            shutil.rmtree(stale, ignore_errors=True)


def count_frames(bag: Path, image_topic: str | None) -> int | None:
    """Image messages the replay will read (for the progress bar), or None if it cannot tell."""
    try:
        reader = open_reader(Path(bag))
    except Exception:  # unreadable here: the worker reports it
        return None
    try:
        images = [c for c in reader.connections if c.msgtype in IMAGE_TYPES]
        if image_topic is not None:
            images = [c for c in images if normalize_topic(c.topic) == normalize_topic(image_topic)]
        if not images:
            return None
        return sum(c.msgcount for c in images)
    finally:
        reader.close()

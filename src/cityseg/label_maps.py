"""Cross-dataset label maps: score a model of one label set on the ground truth of another.

A map sends each class of the model's set (the source) to a class of the dataset's set (the
target) by name; source classes it does not name predict void (a miss wherever the truth is
scored). One is built in, ``cityscapes-to-camvid``; any other is a YAML file::

    name: my-map               # optional (default: the file's stem)
    source: cityscapes         # the model's label set (a built-in name or a label-set YAML)
    target: camvid             # the ground truth's label set
    map:                       # source class name -> target class name
      road: road
      sidewalk: pavement
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cityseg.errors import InputError
from cityseg.labels import IGNORE, LabelSet, load_label_set

CITYSCAPES_TO_CAMVID = {
    "road": "road", "sidewalk": "pavement", "building": "building", "wall": "building",
    "fence": "fence", "pole": "pole", "traffic light": "sign symbol", "traffic sign": "sign symbol",
    "vegetation": "tree", "terrain": "tree", "sky": "sky", "person": "pedestrian",
    "rider": "bicyclist", "bicycle": "bicyclist", "motorcycle": "bicyclist", "car": "car",
    "truck": "car", "bus": "car", "train": "car",
}
"""Cityscapes' 19 trainId classes onto SegNet's 11 CamVid classes (the usual zero-shot protocol)."""
BUILTIN_MAPS = {"cityscapes-to-camvid": ("cityscapes", "camvid", CITYSCAPES_TO_CAMVID)}
_KEYS = ("name", "source", "target", "map")


@dataclass(frozen=True, eq=False)
class LabelMap:
    """A map from the class indices of ``source`` to those of ``target``."""

    name: str
    source: LabelSet
    target: LabelSet
    index_lut: np.ndarray
    """uint8[256]: source class index -> target class index (unmapped, and past the last class -> IGNORE)."""

    def target_ids(self, source_ids: np.ndarray) -> np.ndarray:
        """Masks in the source set's ids -> masks in the target set's ids (unmapped -> IGNORE)."""
        index = self.index_lut[self.source.id_to_index()[source_ids]]
        return self.target.index_to_id()[index]


def build_label_map(name: str, source: LabelSet, target: LabelSet, pairs: dict,
                    where: str = "") -> LabelMap:
    """A LabelMap from ``pairs`` (source class name -> target class name); InputError naming
    ``where`` (the file, else ``name``) and the first name either set lacks."""
    where = where or name
    if not isinstance(pairs, dict) or not pairs:
        raise InputError(f"{where}: 'map' must map source class names to target class names")
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for source_name, target_name in pairs.items():
        for label, space, role in ((source_name, source, "source"), (target_name, target, "target")):
            if str(label) not in space.names:
                raise InputError(f"{where}: {role} class {label!r} is not a class of the {role} label set "
                                 f"{space.name} (classes: {', '.join(space.names)}); fix the map")
        lut[source.names.index(str(source_name))] = target.names.index(str(target_name))
    return LabelMap(name, source, target, lut)


def load_label_map(spec: str | Path) -> LabelMap:
    """A built-in map by name, or a label-map YAML file; InputError naming the file and the problem."""
    text = str(spec)
    if text in BUILTIN_MAPS and not Path(text).is_file():
        source, target, pairs = BUILTIN_MAPS[text]
        return build_label_map(text, load_label_set(source), load_label_set(target), pairs)
    path = Path(text)
    if not path.is_file():
        raise InputError(f"{text}: no such label map; use {', '.join(BUILTIN_MAPS)} or a YAML file with "
                         "source, target and map (docs/DATA.md)")
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or not {"source", "target", "map"} <= set(data):
        raise InputError(f"{path}: a label map is a mapping with source, target and map (docs/DATA.md)")
    unknown = sorted(set(map(str, data)) - set(_KEYS))
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_KEYS)}")
    spaces = [load_label_set(_beside(path, str(data[k]))) for k in ("source", "target")]
    return build_label_map(str(data.get("name") or path.stem), *spaces, data["map"], where=str(path))


def _beside(path: Path, spec: str) -> str:
    """A label-set spec of a map file: a built-in name, or a YAML path relative to the map file."""
    candidate = path.parent / spec
    return str(candidate) if candidate.is_file() else spec

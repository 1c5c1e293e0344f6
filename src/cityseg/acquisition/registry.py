"""The pretrained models `cityseg pull` knows: one typed row per model, each verified from the
publisher's own files (the file pinned by commit, its size and sha256, its licence, how it is fed).

To add one: fetch the file from the publisher's repository at a fixed commit, compute its byte size
and sha256, read its preprocessing from the publisher's code, import it with `cityseg import` and
check its masks, then add a :class:`PretrainedModel` here (docs/MODELS.md, "Pretrained models").
"""

from __future__ import annotations

from dataclasses import dataclass

from cityseg.acquisition.importer import ImportOptions
from cityseg.errors import InputError


@dataclass(frozen=True)
class PretrainedModel:
    """One model `cityseg pull` can fetch and import."""

    name: str
    """The bundle name (``--model NAME``, ``model:=NAME``)."""
    publisher: str
    licence: str
    url: str
    """The file at the publisher's repository, pinned by commit."""
    size: int
    """Bytes of the file."""
    sha256: str
    file_name: str
    labels: str
    """The label set of the model's class ids (``cityseg import --labels``)."""
    import_options: ImportOptions
    input_description: str
    accuracy: str
    """The publisher's reported accuracy, in the publisher's words and figures."""
    accuracy_source: str
    """Where the publisher reports it."""


CORAL_DEEPLAB = PretrainedModel(
    name="coral-deeplab-cityscapes",
    publisher="Google Coral (EdgeTPU-DeepLab-slim, MobileNet-EdgeTPU backbone)",
    licence="Apache-2.0",
    url="https://github.com/google-coral/test_data/raw/104342d2d3480b3e66203073dac24f4e2dbb4c41/"
        "deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite",
    size=2157328,
    sha256="322fe29945cb1693f426952f2a330ab67ea5678545ddee6f2548e0cfd0ca03e5",
    file_name="deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite",
    labels="cityscapes",
    import_options=ImportOptions(channel_order="RGB", resize="linear"),
    input_description="513x513 uint8 RGB, no normalisation; int64 trainIds out",
    accuracy="about 70% mIoU, Cityscapes val (float EdgeTPU-DeepLab-slim family, output stride 32)",
    accuracy_source="https://github.com/tensorflow/models/blob/master/research/deeplab/g3doc/model_zoo.md",
)

REGISTRY: dict[str, PretrainedModel] = {m.name: m for m in (CORAL_DEEPLAB,)}


def lookup(name: str) -> PretrainedModel:
    """The registry entry ``name``; InputError listing the known names when there is none."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise InputError(f"{name!r} is not a model cityseg pull knows; known: {', '.join(sorted(REGISTRY))} "
                         "(`cityseg pull --list`), or import your own file with `cityseg import`") from None


def table() -> str:
    """The registry as a text table (what `cityseg pull --list` prints)."""
    rows = [("name", "classes", "input", "licence", "publisher's accuracy", "bytes")]
    rows += [(m.name, m.labels, m.input_description, m.licence, m.accuracy, str(m.size))
             for m in REGISTRY.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    sources = [f"{m.name}: {m.publisher}; {m.url}; accuracy reported at {m.accuracy_source}"
               for m in REGISTRY.values()]
    return "\n".join(lines + [""] + sources)

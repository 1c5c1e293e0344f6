"""The model bundle and what it means: the one thing that flows from the trainer to the node.

* :mod:`cityseg.bundle.card` - the model card (``model.json``): input, preprocessing, label set,
  output kind and layout, artifacts; validated on load.
* :mod:`cityseg.bundle.directory` - :class:`Bundle`, the directory holding the card and the model
  files, and where a bare bundle name is looked up.
* :mod:`cityseg.bundle.precision` - the precision vocabulary: names, what each needs and runs on,
  how an artifact records it.
* :mod:`cityseg.bundle.raw_output` - what a model's raw output means (layout, kind, stride) read as
  class scores at the input size, for the Segmenter and the converter's parity check.

``cityseg import`` (a bundle for a model cityseg did not train) is the converter's inverse and
lives with it: :mod:`cityseg.acquisition.importer`.

``from cityseg.bundle import Bundle, ModelCard, Artifact, ...`` keeps working for the card and the
directory.
"""

from cityseg.bundle.card import (
                                 CARD_FILE,
                                 CARD_FORMAT_VERSION,
                                 CUSTOM_SPACE,
                                 MODELS_ENV,
                                 Artifact,
                                 ArtifactFormat,
                                 CameraInput,
                                 IOKind,
                                 Layout,
                                 ModelCard,
                                 OutputKind,
                                 class_fields,
                                 framework_versions,
                                 replace_card,
)
from cityseg.bundle.directory import Bundle, bundle_dirs, resolve_bundle

__all__ = ["CARD_FILE", "CARD_FORMAT_VERSION", "CUSTOM_SPACE", "MODELS_ENV", "Artifact",
           "ArtifactFormat", "Bundle", "CameraInput", "IOKind", "Layout", "ModelCard", "OutputKind", "bundle_dirs",
           "class_fields", "framework_versions", "replace_card", "resolve_bundle"]

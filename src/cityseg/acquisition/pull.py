"""`cityseg pull`: fetch a registry model (or a file/mirror the user names), verify its size and
sha256, import it and run the import check, and only then move the bundle into place.

Everything happens in a hidden staging folder beside the bundle (``.<name>.pull-staging``,
:mod:`cityseg.bundle.staging`): a download cut off mid-file is resumed with an HTTP Range request
(up to :data:`ATTEMPTS` tries), and any failure removes the staging folder, so no half-written
bundle is ever left that looks complete; ``--force`` replaces only the old bundle's own files, and
a ``--from`` file inside ``--out`` is refused.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from cityseg.acquisition.importer import write_import
from cityseg.acquisition.registry import PretrainedModel
from cityseg.bundle.directory import Bundle
from cityseg.bundle.staging import staged_bundle
from cityseg.bundle.staging import staging_dir as bundle_staging_dir
from cityseg.errors import InputError
from cityseg.labels import load_label_set

log = logging.getLogger(__name__)

ATTEMPTS = 4
"""Tries per download; each after the first resumes where the last stopped (HTTP Range)."""
CHUNK = 1 << 16
TIMEOUT_S = 30.0


STAGING_TAG = "pull"
DOWNLOAD_DIR = ".download"
"""Where the file is fetched to, inside the staging folder (not part of the bundle)."""


def staging_dir(out: Path) -> Path:
    """The hidden folder a pull into ``out`` works in."""
    return bundle_staging_dir(out, STAGING_TAG)


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _download_once(url: str, part: Path, size: int) -> None:
    """Append to ``part`` from where it stops (Range), or start over when the server ignores Range."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        mode = "ab" if have and response.status == 206 else "wb"
        with open(part, mode) as sink:
            while chunk := response.read(CHUNK):
                sink.write(chunk)
                if sink.tell() > size:
                    return  # more than the registry's size: the checksum check refuses it


def download(url: str, part: Path, size: int) -> None:
    """Fetch ``url`` into ``part``, resuming after dropped connections; InputError when it cannot."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _download_once(url, part, size)
        except urllib.error.HTTPError as exc:
            raise InputError(f"{url}: the server answered {exc.code} {exc.reason}; check the URL, or fetch "
                             "the file elsewhere and give it with --from FILE") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            got = part.stat().st_size if part.exists() else 0
            if attempt == ATTEMPTS:
                raise InputError(f"{url}: the download broke off at {got} of {size} bytes after {ATTEMPTS} "
                                 f"tries ({exc}); retry, or fetch the file elsewhere and give it with "
                                 "--from FILE") from None
            log.warning("%s: connection lost at %d of %d bytes (%s); resuming", url, got, size, exc)
            continue
        if part.stat().st_size >= size:
            return
        log.warning("%s: the server closed the file at %d of %d bytes; resuming", url, part.stat().st_size, size)
    raise InputError(f"{url}: the server keeps closing the file at {part.stat().st_size} of {size} bytes; "
                     "retry, or fetch the file elsewhere and give it with --from FILE")


def verify(path: Path, model: PretrainedModel, source: str) -> None:
    """InputError when the file's byte size or sha256 is not the registry's."""
    got = path.stat().st_size
    if got != model.size:
        raise InputError(f"{source}: {got} bytes, the registry's {model.name} has {model.size}; it is not "
                         "that file (or it is cut short) - fetch it again")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    if digest.hexdigest() != model.sha256:
        raise InputError(f"{source}: sha256 {digest.hexdigest()} is not the registry's {model.sha256} for "
                         f"{model.name}; the file is corrupt or was changed - fetch it again")


def fetch(model: PretrainedModel, source: str | None, staging: Path) -> Path:
    """The verified model file in ``staging``, from the registry URL or ``source`` (a file or URL)."""
    target = staging / model.file_name
    part = target.with_name(target.name + ".part")
    where = source or model.url
    if _is_url(where):
        download(where, part, model.size)
    else:
        shutil.copyfile(where, part)
    verify(part, model, where)
    os.replace(part, target)
    return target


def pull(model: PretrainedModel, out: Path, source: str | None = None, force: bool = False) -> Bundle:
    """Fetch, verify, import and check ``model`` into the bundle ``out``; nothing is left at ``out``
    (and no staging folder) when any step fails, and --force replaces only the old bundle's own files."""
    out = Path(out)
    local = None if source is None or _is_url(source) else local_source(source)
    with staged_bundle(out, force=force, inputs=[local] if local else [], tag=STAGING_TAG) as staging:
        download = staging / DOWNLOAD_DIR
        download.mkdir()
        path = fetch(model, source, download)
        write_import(path, staging, load_label_set(model.labels), model.import_options, model.name)
        _record_origin(staging, model, source)
    return Bundle.load(out / "model.json")  # the folder written, never a same-named one in ./models


def local_source(source: str) -> Path:
    """The ``--from`` file; InputError when it is missing or a folder."""
    path = Path(source)
    if path.is_dir():
        raise InputError(f"--from {source}: is a folder; give the model file itself, e.g. --from "
                         f"{path / 'MODEL.tflite'}")
    if not path.is_file():
        raise InputError(f"--from {source}: no such file; check the path (or give the file's URL)")
    return path


def _record_origin(path: Path, model: PretrainedModel, source: str | None) -> None:
    """The card's ``imported`` says where the file came from (registry entry, URL, licence)."""
    bundle = Bundle.load(path)
    card = bundle.card
    card.imported.update({"source": source or model.url, "registry": model.name, "licence": model.licence,
                          "publisher": model.publisher, "publisher_accuracy": model.accuracy,
                          "accuracy_source": model.accuracy_source})
    bundle.save()

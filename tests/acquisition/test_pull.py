"""`cityseg pull` against a local HTTP server (127.0.0.1, started here, with Range support) serving a
TFLite built in the test: success, resume after a dropped connection, a wrong checksum and a 404;
each failure is one line and leaves no bundle and no staging folder behind."""

import dataclasses
import hashlib
import http.server
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from tflite_models import CORAL, build_tflite

from cityseg.acquisition import pull as pull_module
from cityseg.acquisition import registry
from cityseg.acquisition.importer import ImportOptions
from cityseg.acquisition.pull import pull, staging_dir
from cityseg.bundle import Bundle
from cityseg.cli import main
from cityseg.errors import InputError
from cityseg.inference import Segmenter


class FileServer(http.server.ThreadingHTTPServer):
    """Serves ``payload`` at /model.tflite (Range honoured); ``drops``: how many responses are cut
    off after ``cut`` bytes; ``requests``: the Range header of each request."""

    def __init__(self, payload: bytes):
        super().__init__(("127.0.0.1", 0), Handler)
        self.payload, self.drops, self.cut, self.requests = payload, 0, len(payload) // 3, []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/model.tflite"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        if self.path != "/model.tflite":
            self.send_error(404)
            return
        server.requests.append(self.headers.get("Range"))
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        body = server.payload[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.drops > 0:
            server.drops -= 1
            self.wfile.write(body[:server.cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture(scope="module")
def tflite_file(tmp_path_factory):
    return build_tflite(tmp_path_factory.mktemp("tfl") / "seg_int8.tflite", int8=True)


@pytest.fixture
def server(tflite_file):
    srv = FileServer(tflite_file.read_bytes())
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def entry(path: Path, url: str, **changes) -> registry.PretrainedModel:
    data = path.read_bytes()
    model = registry.PretrainedModel(
        name="tiny-test", publisher="this test", licence="CC0", url=url, size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), file_name="seg_int8.tflite", labels="cityscapes",
        import_options=ImportOptions(channel_order="RGB", resize="nearest"), input_description="32x64 uint8",
        accuracy="none", accuracy_source="this test")
    return dataclasses.replace(model, **changes)


def nothing_left(out: Path) -> bool:
    return not out.exists() and not staging_dir(out).exists()


def test_pull_downloads_imports_and_segments(tmp_path, server, tflite_file):
    out = tmp_path / "models" / "tiny-test"
    bundle = pull(entry(tflite_file, server.url), out)
    assert bundle.card.input_dtype == "uint8" and bundle.card.imported["registry"] == "tiny-test"
    assert not staging_dir(out).exists()
    mask = Segmenter(out, backend="onnxruntime").segment(np.zeros((64, 128, 3), np.uint8)).mask
    assert mask.shape == (64, 128)
    assert server.requests == [None]


def test_pull_resumes_after_dropped_connections(tmp_path, server, tflite_file):
    server.drops = 2
    out = tmp_path / "tiny-test"
    pull(entry(tflite_file, server.url), out)
    assert (out / "model.json").is_file()
    assert server.requests[0] is None and server.requests[1] == f"bytes={server.cut}-"
    assert len(server.requests) == 3


def test_a_server_that_keeps_dropping_is_refused_and_leaves_nothing(tmp_path, server, tflite_file):
    server.drops, server.cut = 100, 10
    out = tmp_path / "tiny-test"
    with pytest.raises(InputError, match="broke off|keeps closing") as info:
        pull(entry(tflite_file, server.url), out)
    assert "\n" not in str(info.value) and nothing_left(out)
    assert len(server.requests) == pull_module.ATTEMPTS


def test_wrong_checksum_is_refused_and_leaves_nothing(tmp_path, server, tflite_file):
    out = tmp_path / "tiny-test"
    with pytest.raises(InputError, match="sha256") as info:
        pull(entry(tflite_file, server.url, sha256="0" * 64), out)
    assert "\n" not in str(info.value) and nothing_left(out)


def test_404_is_refused_and_leaves_nothing(tmp_path, server, tflite_file):
    out = tmp_path / "tiny-test"
    with pytest.raises(InputError, match="404") as info:
        pull(entry(tflite_file, server.url.replace("model.tflite", "gone.tflite")), out)
    assert "\n" not in str(info.value) and nothing_left(out)


def test_from_file_with_the_wrong_size_is_refused(tmp_path, tflite_file):
    short = tmp_path / "short.tflite"
    short.write_bytes(tflite_file.read_bytes()[:-5])
    out = tmp_path / "tiny-test"
    with pytest.raises(InputError, match="bytes"):
        pull(entry(tflite_file, "http://127.0.0.1:9/unused"), out, source=str(short))
    assert nothing_left(out)


def test_cli_list_unknown_name_and_bad_from(tmp_path, capsys, monkeypatch):
    assert main(["pull", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "coral-deeplab-cityscapes" in listed and "Apache-2.0" in listed
    assert main(["pull", "no-such-model"]) == 2
    assert "not a model cityseg pull knows" in capsys.readouterr().err
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"x" * 100)
    monkeypatch.chdir(tmp_path)
    assert main(["pull", "coral-deeplab-cityscapes", "--from", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bytes" in err
    assert not (tmp_path / "models").exists()  # not even the models/ folder the pull would have made


@pytest.mark.skipif(not CORAL.is_file(), reason=f"the shared Coral model is absent ({CORAL})")
def test_cli_pulls_the_coral_model_from_a_local_mirror(tmp_path, capsys, monkeypatch):
    srv = FileServer(CORAL.read_bytes())
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.chdir(tmp_path)
        assert main(["pull", "coral-deeplab-cityscapes", "--from", srv.url]) == 0
    finally:
        srv.shutdown()
        srv.server_close()
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("wrote models/coral-deeplab-cityscapes")  # result last
    artifacts = Bundle.load(tmp_path / "models" / "coral-deeplab-cityscapes").card.artifacts
    assert len(artifacts["onnx_quantized"].details["tensorrt_check"]) > 300  # the publisher's uint8 graph
    assert artifacts["onnx"].details["tensorrt_check"] == [] and artifacts["onnx"].details["role"] == "float-twin"
    assert lines[0].startswith("TensorRT 10: no operators or attributes TensorRT 10 is known to reject in the "
                               "float twin model.onnx")  # one line: the twin TensorRT will build from
    segmenter = Segmenter("coral-deeplab-cityscapes", backend="onnxruntime")  # found by name in ./models
    assert segmenter.input_size == (513, 513)
    from cityseg.labels import class_space
    from cityseg.synthetic.dataset import drive_frames

    image, labels = next(drive_frames(1, 256, 512, seed=5))
    road = labels == class_space("labelid").names.index("road")
    assert (segmenter.segment(image).mask[road] == 0).mean() > 0.5  # trainId 0 = road


# --- no data loss, clear refusals (issue 33: 3, 11, 12) ----------------------------------------------

def test_from_a_file_inside_out_is_refused_with_force_and_nothing_is_deleted(tmp_path, tflite_file):
    out = tmp_path / "tiny-test"
    model = entry(tflite_file, "http://127.0.0.1:9/unused")
    pull(model, out, source=str(tflite_file))
    (out / "seg_int8.tflite").write_bytes(tflite_file.read_bytes())
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(InputError, match="lies inside --out"):
        pull(model, out, source=str(out / "seg_int8.tflite"), force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_force_replaces_the_bundle_and_keeps_the_users_files(tmp_path, tflite_file):
    out = tmp_path / "tiny-test"
    model = entry(tflite_file, "http://127.0.0.1:9/unused")
    pull(model, out, source=str(tflite_file))
    (out / "notes.txt").write_text("mine")
    pull(model, out, source=str(tflite_file), force=True)
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.onnx", "model_quantized.onnx", "notes.txt"]
    assert not staging_dir(out).exists()


def test_from_a_folder_a_symlinked_out_and_an_unwritable_out_are_named(tmp_path, tflite_file, capsys):
    model = entry(tflite_file, "http://127.0.0.1:9/unused")
    with pytest.raises(InputError, match=r"--from .*: is a folder; give the model file itself"):
        pull(model, tmp_path / "b", source=str(tmp_path))
    real = tmp_path / "real"
    pull(model, real, source=str(tflite_file))
    link = tmp_path / "link"
    link.symlink_to(real)
    started = time.monotonic()
    with pytest.raises(InputError, match=r"--out .*link: is a symbolic link \(to .*real\)"):
        pull(model, link, source=str(tflite_file), force=True)
    assert time.monotonic() - started < 1.0  # refused before the conversion
    with pytest.raises(InputError, match=r"--out /proc/x: cannot write beside it in /proc") as info:
        pull(model, Path("/proc/x"), source=str(tflite_file))
    assert "staging" not in str(info.value)


def test_a_failed_pull_removes_every_folder_it_made(tmp_path, tflite_file):
    short = tmp_path / "short.tflite"
    short.write_bytes(tflite_file.read_bytes()[:-5])
    out = tmp_path / "new1" / "new2" / "bundle"
    with pytest.raises(InputError, match="bytes"):
        pull(entry(tflite_file, "http://127.0.0.1:9/unused"), out, source=str(short))
    assert not (tmp_path / "new1").exists()


def test_list_refuses_a_name_or_out_it_would_ignore(capsys):
    assert main(["pull", "--list", "coral-deeplab-cityscapes", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "--list only prints the registry; drop NAME, --out" in err and err.count("\n") == 1

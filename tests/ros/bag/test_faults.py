"""`cityseg bag` faults: --force replaces only its own output; SIGTERM/SIGINT clean up; stale partials go."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cityseg.cli import main as cli_main
from cityseg.errors import CitysegError
from cityseg.fileio import check_replaceable, clear_stale_partials, output_marker, staged_output
from cityseg.ros.bag.camera_bag import write_camera_bag

from support import painted_scene

SRC = Path(__file__).resolve().parents[3] / "src"


def frames(count: int):
    first = painted_scene(128, 256, "trainid", seed=0)[0]
    return [first] * count


def bag_args(src, dst, bundle, *extra):
    return ["bag", str(src), str(dst), "--model", str(bundle.path), "--backend", "onnxruntime",
            "--no-progress", "--id-space", "trainid", *extra]


def test_force_never_replaces_a_user_folder_or_file(tmp_path, bundle, capsys):
    src = tmp_path / "cam"
    write_camera_bag(src, frames(2))
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    assert cli_main(bag_args(src, folder, bundle, "--force")) == 2
    err = capsys.readouterr().err
    assert f"{folder} is a directory that `cityseg bag` did not write" in err and err.count("\n") == 1
    assert (folder / "thesis.txt").read_text() == "years of work"
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    assert cli_main(bag_args(src, afile, bundle, "--force")) == 2
    assert f"{afile} is a file that `cityseg bag` did not write" in capsys.readouterr().err
    assert afile.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam", "notes.txt", "thesis"]


def test_force_replaces_an_earlier_bag_output(tmp_path, bundle, capsys):
    src, dst = tmp_path / "cam", tmp_path / "out"
    write_camera_bag(src, frames(2))
    assert cli_main(bag_args(src, dst, bundle)) == 0
    assert (dst / output_marker("bag")).is_file() and (dst / "metadata.yaml").is_file()
    assert cli_main(bag_args(src, dst, bundle)) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli_main(bag_args(src, dst, bundle, "--force")) == 0
    assert (dst / "metadata.yaml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam", "out"]  # no staging left behind


def test_a_link_to_an_earlier_output_is_not_replaced(tmp_path):
    own = tmp_path / "own"
    with staged_output(own, "bag") as staged:
        staged.mkdir()
    link = tmp_path / "link"
    link.symlink_to(own)
    with pytest.raises(CitysegError, match="is a link that `cityseg bag` did not write"):
        check_replaceable(link, "bag", True)
    assert check_replaceable(own, "bag", True) is True
    assert check_replaceable(tmp_path / "none", "bag", False) is False


def _start(src, dst, bundle, tmp_path):
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    code = "import sys; from cityseg.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *bag_args(src, dst, bundle)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def _partials(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith("-partial"))


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_bag_removes_the_partial_output(tmp_path, bundle, sig, code):
    src, dst = tmp_path / "cam", tmp_path / "out"
    write_camera_bag(src, frames(3000))
    proc = _start(src, dst, bundle, tmp_path)
    deadline = time.monotonic() + 60
    while not _partials(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.3)  # well into writing
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and ("terminated" in err or "interrupted" in err)
    assert not dst.exists() and _partials(tmp_path) == []


def test_a_rerun_removes_stale_partials_of_its_own_only(tmp_path, bundle):
    src, dst = tmp_path / "cam", tmp_path / "out"
    write_camera_bag(src, frames(1))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / ".out.abcd1234.cityseg-bag-partial"
    (stale / "out").mkdir(parents=True)
    (stale / "owner.pid").write_text(str(dead.pid))
    running = tmp_path / ".out.zzzz1234.cityseg-bag-partial"  # a live run's staging stays
    running.mkdir()
    (running / "owner.pid").write_text(str(os.getppid()))
    other = tmp_path / ".out.b.abcd1234.cityseg-bag-partial"  # bag "out.b"'s, not "out"'s
    other.mkdir()
    users = tmp_path / ".out.abcd1234.partial-of-mine"
    users.mkdir()
    assert cli_main(bag_args(src, dst, bundle)) == 0
    assert not stale.exists() and running.exists() and other.exists() and users.exists()
    assert clear_stale_partials(dst, "bag") == []

"""The CLI boundary: OSError, non-UTF-8 text, MemoryError and bad numbers give one line and exit 2."""

from __future__ import annotations

import contextlib
import re
import subprocess
from pathlib import Path

import pytest

from cityseg.cli import describe_failure, main

REPO = Path(__file__).resolve().parents[2]


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "synth:" not in line[:7]]
    errors = [line for line in lines if line.startswith(f"cityseg {command}: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert f"cityseg {command}: error: cityseg {command}:" not in err
    return errors[0]


@contextlib.contextmanager
def tmpfs(path: Path, *options: str):
    """A small real tmpfs at ``path`` (skip where this sandbox cannot mount)."""
    path.mkdir()
    opts = ",".join(("size=256k", *options))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def synth(out: Path, size: str = "256x128", count: int = 2) -> list[str]:
    return ["synth", "--out", str(out), "--count", str(count), "--size", size]


def test_an_out_path_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(synth(tmp_path / "afile" / "data")) == 2
    line = one_error_line(capsys, "synth")
    assert "Not a directory" in line and "a part of the path is a file" in line


def test_a_read_only_out_is_one_line(tmp_path, capsys):
    with tmpfs(tmp_path / "ro", "ro") as ro:
        assert main(synth(ro / "data")) == 2
    assert "read-only file system; choose a writable location" in one_error_line(capsys, "synth")


def test_a_full_disk_is_one_line(tmp_path, capsys):
    with tmpfs(tmp_path / "full") as full:
        assert main(synth(full / "data", "1024x512", count=20)) == 2
    assert "the disk is full" in one_error_line(capsys, "synth")


def test_the_debug_flag_shows_the_traceback(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError):
        main(["--debug", *synth(tmp_path / "afile" / "data")])


def test_a_non_utf8_config_is_one_line(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_bytes(b"name: caf\xe9\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    line = one_error_line(capsys, "train")
    assert f"{config}: not UTF-8 text (byte 0xe9" in line and "re-save it as UTF-8" in line
    assert not (tmp_path / "run").exists()


def test_a_negative_learning_rate_is_refused_before_the_run_dir_exists(tmp_path, capsys):
    text = (REPO / "training_configs" / "demo.yaml").read_text()
    assert "learning_rate:" in text
    config = tmp_path / "lr.yaml"
    config.write_text(re.sub(r"(learning_rate:) *[^ #\n]+", r"\1 -1", text, count=1))
    run = tmp_path / "run"
    for _ in range(2):  # the plain rerun gets the same message, not "RUN_DIR is not empty"
        assert main(["train", "--config", str(config), "--out", str(run)]) == 2
        assert "optimizer.learning_rate must be > 0, got -1" in one_error_line(capsys, "train")
        assert not run.exists()


@pytest.mark.parametrize("argv, option", [
    (["bench", "bundle", "--repeats", "0"], "--repeats"),
    (["fleet", "bags", "--model", "m", "--out", "o", "--cpus-per-worker", "-2"], "--cpus-per-worker"),
    (["synth", "--out", "o", "--count", "1", "--size", "100000x100000"], "--size"),
    (["demo", "--out", "o", "--epochs", "0"], "--epochs"),
])
def test_bad_numbers_are_refused_at_once_naming_the_option(argv, option, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_message_naming_the_command_is_not_prefixed_twice(tmp_path, capsys):
    assert main(["bag", str(tmp_path / "in"), str(tmp_path / "out")]) == 2
    line = one_error_line(capsys, "bag")
    assert line == "cityseg bag: error: --model is required (or a --params-file that sets `model`)"


def test_memory_and_decode_failures_are_described():
    assert "ran out of memory" in describe_failure(MemoryError())
    assert "not UTF-8" in describe_failure(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"))


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_a_full_disk_during_bag_is_one_line_and_leaves_nothing(tmp_path, capsys, storage):
    from cityseg.ros.bag.camera_bag import write_camera_bag

    from support import make_palette_bundle, painted_scene

    bundle = make_palette_bundle(tmp_path / "bundle", "trainid", 64, 128)
    write_camera_bag(tmp_path / "cam", [painted_scene(128, 256, "trainid", seed=0)[0]] * 60)
    with tmpfs(tmp_path / "full") as full:
        argv = ["bag", str(tmp_path / "cam"), str(full / "out"), "--model", str(bundle.path),
                "--backend", "onnxruntime", "--no-progress", "--storage", storage]
        assert main(argv) == 2
        line = one_error_line(capsys, "bag")
        assert str(full / "out") in line or "sqlite3 bag" in line
        assert "free space or write elsewhere" in line
        assert list(full.iterdir()) == []


def test_fleet_errors_name_the_command_once(tmp_path, capsys):
    (tmp_path / "bags").mkdir()
    assert main(["fleet", str(tmp_path / "bags"), "--out", str(tmp_path / "o")]) == 2
    assert one_error_line(capsys, "fleet").startswith("cityseg fleet: error: --model is required")


def test_a_full_disk_during_segment_leaves_no_half_outputs(tmp_path, capsys):
    import cv2
    import numpy as np

    from support import make_palette_bundle, painted_scene

    bundle = make_palette_bundle(tmp_path / "bundle", "trainid", 64, 128)
    scene = painted_scene(512, 1024, "trainid", seed=3)[0]
    noisy = (scene.astype(int) + np.random.default_rng(0).integers(-40, 40, scene.shape)).clip(0, 255)
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), noisy.astype(np.uint8))
    with tmpfs(tmp_path / "full") as full:
        argv = ["segment", str(image), "--model", str(bundle.path), "--out", str(full), "--backend", "onnxruntime"]
        assert main(argv) == 2
        line = one_error_line(capsys, "segment")
        assert "the disk is full" in line
        assert list(full.iterdir()) == []


def test_a_non_utf8_manifest_is_named(tmp_path, capsys):
    manifest = tmp_path / "bags.txt"
    manifest.write_bytes(b"bag\xff\n")
    assert main(["fleet", "--manifest", str(manifest), "--model", "m", "--out", str(tmp_path / "o")]) == 2
    assert f"{manifest}: the manifest is not UTF-8 text (byte 0xff" in one_error_line(capsys, "fleet")


def test_bench_refuses_an_unwritable_out_before_running(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["bench", "--out", str(tmp_path / "afile" / "table.md")]) == 2
    assert "is a file, not a directory" in one_error_line(capsys, "bench")
    with tmpfs(tmp_path / "ro", "ro") as ro:
        assert main(["bench", "--out", str(ro / "table.md")]) == 2
    assert "read-only or no permission" in one_error_line(capsys, "bench")


@pytest.mark.parametrize("flag, value, says", [
    ("--grid-resolution", "nan", "must be a positive number, got nan"),
    ("--grid-resolution", "0", "must be a positive number, got 0"),
    ("--grid-origin", "nan,0", "'nan,0' is not X,Y: two finite numbers"),
    ("--grid-origin", "abc", "'abc' is not X,Y: two finite numbers"),
    ("--grid-origin", "1,2,3", "'1,2,3' is not X,Y: two finite numbers"),
    ("--grid-range", "inf", "must be a positive number, got inf"),
    ("--sync-tolerance-ms", "nan", "must be a finite number, got nan"),
    ("--tf-tolerance-ms", "-1", "must be a number >= 0, got -1"),
    ("--alpha", "nan", "must be a finite number, got nan"),
])
def test_bag_refuses_non_finite_and_malformed_fusion_numbers_naming_the_flag(flag, value, says, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["bag", str(tmp_path / "in"), str(tmp_path / "out"), "--model", "m", "--grid-frame", "base_link",
              flag, value])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and f"argument {flag}: {says}" in err
    assert "could not convert" not in err and "unpack" not in err and list(tmp_path.iterdir()) == []

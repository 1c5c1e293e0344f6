"""`cityseg fleet` on a real local Ray with 2 workers, on bags written here: sqlite3 and mcap
rosbag2, a ROS 1 bag, a bag with two cameras and a corrupt one. Outputs are compared byte for byte
with single-process `cityseg bag` (replay_bag run here)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import cityseg.fleet.run
from cityseg.cli import main as cli_main
from cityseg.errors import InputError
from cityseg.fleet.actors import BagWorker, check_access
from cityseg.fleet.plan import (
    MARKER,
    STAGING_SUFFIX,
    BagTask,
    ReplayOptions,
    clear_stale_staging,
    collect_bags,
    decide,
    input_identity,
    model_identity,
    read_manifest,
)
from cityseg.ros.bag.camera_bag import write_camera_bag
from cityseg.ros.bag.replay import replay_bag
from cityseg.ros.core.processor import ProcessorConfig

from support import painted_scene, write_ros1_bag

FAULTS = Path(__file__).with_name("faults.py")
_spec = importlib.util.spec_from_file_location("fleet_faults", FAULTS)
faults = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(faults)

pytest.importorskip("ray")

SRC = Path(__file__).resolve().parents[2] / "src"
TRAINID = ProcessorConfig(id_space="trainid")
GOOD = ("front", "rear", "drive")
FRAME_SIZE = (128, 256)
T0 = 1_700_000_000 * 10**9


def frames(count: int, seed: int = 0) -> list[np.ndarray]:
    return [painted_scene(*FRAME_SIZE, "trainid", seed=seed + i)[0] for i in range(count)]


def write_stereo_bag(path: Path, count: int, storage: str = "sqlite3") -> Path:
    """A rosbag2 with two cameras: /left and /right, each an Image and a CameraInfo topic."""
    from cityseg.ros.bag.rosbag_io import open_writer, sensor_data_qos
    from cityseg.ros.core.images import encode_rgb
    from cityseg.ros.core.messages import CAMERA_INFO_TYPE, IMAGE_TYPE, CameraInfoValues, RosbagsMessages

    factory = RosbagsMessages()
    with open_writer(path, storage) as writer:
        conns = {}
        for side in ("left", "right"):
            conns[side] = (writer.add_connection(f"/{side}/image_raw", IMAGE_TYPE, typestore=factory.typestore,
                                                 offered_qos_profiles=sensor_data_qos()),
                           writer.add_connection(f"/{side}/camera_info", CAMERA_INFO_TYPE, typestore=factory.typestore,
                                                 offered_qos_profiles=sensor_data_qos()))
        for i in range(count):
            stamp = T0 + i * 10**8
            for seed, (side, (image, info)) in enumerate(conns.items()):
                header = factory.header(stamp // 10**9, stamp % 10**9, side)
                rgb = frames(1, seed=10 * seed + i)[0]
                writer.write(image, stamp, factory.serialize(factory.image(header, encode_rgb(rgb, "rgb8"))))
                info_msg = factory.camera_info(header, CameraInfoValues.pinhole(*FRAME_SIZE))
                writer.write(info, stamp, factory.serialize(info_msg))
    return path


def write_corrupt_bag(path: Path) -> Path:
    """A directory that claims to be a rosbag2 but whose storage file is garbage."""
    path.mkdir(parents=True)
    (path / "metadata.yaml").write_text(
        "rosbag2_bagfile_information:\n  version: 9\n  storage_identifier: sqlite3\n"
        f"  relative_file_paths: [{path.name}.db3]\n  duration: {{nanoseconds: 0}}\n"
        "  starting_time: {nanoseconds_since_epoch: 0}\n  message_count: 1\n  topics_with_message_count: []\n"
        "  compression_format: ''\n  compression_mode: ''\n  files: []\n  custom_data: {}\n  ros_distro: ''\n")
    (path / f"{path.name}.db3").write_bytes(b"this is not an sqlite database" * 100)
    return path


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> Path:
    """bags/{front (sqlite3), rear (mcap, png), drive.bag (ROS 1), stereo (2 cameras), corrupt}."""
    root = tmp_path_factory.mktemp("fleet") / "bags"
    write_camera_bag(root / "front", frames(4, seed=0), storage="sqlite3")
    write_camera_bag(root / "rear", frames(3, seed=5), storage="mcap", encoding="png",
                     image_topic="/rear/image_raw/compressed", camera_info_topic="/rear/camera_info")
    write_ros1_bag(root / "drive.bag", frames(2, seed=9))
    write_stereo_bag(root / "stereo", 3)
    write_corrupt_bag(root / "corrupt")
    return root


@pytest.fixture(scope="module")
def reference(bags, bundle, tmp_path_factory) -> dict[str, Path]:
    """Each good bag replayed by `cityseg bag`'s function in this process."""
    root = tmp_path_factory.mktemp("reference")
    out = {}
    for name, src in (("front", "front"), ("rear", "rear"), ("drive", "drive.bag")):
        replay_bag(bags / src, root / name, bundle.path, backend="onnxruntime", progress=False, config=TRAINID)
        out[name] = root / name
    replay_bag(bags / "stereo", root / "stereo", bundle.path, backend="onnxruntime", progress=False,
               config=TRAINID, image_topic="/right/image_raw")
    out["stereo"] = root / "stereo"
    return out


def bag_messages(path: Path) -> list[tuple[str, str, int, bytes]]:
    """(topic, type, bag timestamp, serialized bytes) of every message, in order."""
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        return [(c.topic, c.msgtype, stamp, bytes(raw)) for c, stamp, raw in reader.messages()]


def assert_same_bag(output: Path, expected: Path) -> None:
    got, want = bag_messages(output), bag_messages(expected)
    assert [m[:3] for m in got] == [m[:3] for m in want]
    assert got == want  # masks, colour masks, overlays, camera_info, label_info: byte for byte


def fleet(out: Path, *args: str, model: Path, capsys, workers: int = 2, progress: bool = False) -> tuple[int, dict]:
    """Run `cityseg fleet --json` here; (exit code, summary printed to stdout, with stderr added)."""
    code = cli_main(["fleet", *args, "--out", str(out), "--model", str(model), "--backend", "onnxruntime",
                     "--id-space", "trainid", "--workers", str(workers), "--json",
                     *([] if progress else ["--no-progress"])])
    captured = capsys.readouterr()
    summary = json.loads(captured.out) if captured.out.strip() else {}
    return code, {**summary, "stderr": captured.err}


def by_name(summary: dict) -> dict[str, dict]:
    return {b["name"]: b for b in summary["bags"]}


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.endswith(STAGING_SUFFIX))


# ------------------------------------------------------------------------------------------
# Planning (no Ray)
# ------------------------------------------------------------------------------------------

def test_bags_are_found_in_directories_manifests_and_never_in_out(bags, tmp_path):
    found = collect_bags([bags])
    assert [p.name for p in found] == ["corrupt", "drive.bag", "front", "rear", "stereo"]
    manifest = tmp_path / "list.txt"
    manifest.write_text(f"# drives of monday\n{bags / 'front'}\n\n{os.path.relpath(bags / 'rear', tmp_path)}\n")
    assert read_manifest(manifest) == [bags / "front", tmp_path / os.path.relpath(bags / "rear", tmp_path)]
    assert [p.name for p in collect_bags([bags / "front"], manifest)] == ["front", "rear"]
    assert [p.name for p in collect_bags([bags.parent], out_dir=bags.parent / "bags" / "stereo")] == [
        "corrupt", "drive.bag", "front", "rear"]
    with pytest.raises(InputError, match=r"1 bag path\(s\) do not exist here:\n  .*nope"):
        collect_bags([bags / "nope"])
    with pytest.raises(InputError, match="no bags given"):
        collect_bags([])
    twin = tmp_path / "other" / "front"
    shutil.copytree(bags / "front", twin)
    with pytest.raises(InputError, match="output name.* shared by several bags"):
        collect_bags([bags / "front", twin])


def test_skip_only_a_complete_output_for_the_same_model_params_and_input(bags, tmp_path):
    out = tmp_path / "front"
    task = BagTask(0, str(bags / "front"), "front", str(out), input_identity(bags / "front"))
    assert decide(task, "m@1", "p1", force=False) == ("run", None)
    out.mkdir()
    action, why = decide(task, "m@1", "p1", force=False)
    assert action == "conflict" and "not written by cityseg fleet; pass --force" in why
    (out / MARKER).write_text(json.dumps({"input_id": task.input_id, "model_id": "m@1", "params_id": "p1"}))
    assert decide(task, "m@1", "p1", force=False)[0] == "skip"
    assert decide(task, "m@1", "p1", force=True) == ("run", None)
    assert "another model and params" in decide(task, "m@2", "p2", force=False)[1]
    for stale in (".front.ab_12xyz.fleet-partial", ".front.b.ab_12xyz.fleet-partial", ".front.txt"):
        (tmp_path / stale).mkdir()
    clear_stale_staging(tmp_path, "front")  # a killed run's partial 'front', not bag 'front.b''s
    assert sorted(p.name for p in tmp_path.glob(".front*")) == [".front.b.ab_12xyz.fleet-partial", ".front.txt"]
    touched = tmp_path / "touched"
    shutil.copytree(bags / "front", touched)
    before = input_identity(touched)
    os.utime(touched / "metadata.yaml", ns=(1, 1))
    assert input_identity(touched) != before


def test_model_id_follows_the_card_and_model_files_but_not_engines_built_per_gpu(bundle, tmp_path):
    from cityseg.bundle import Artifact, Bundle

    copy = tmp_path / "palette"
    shutil.copytree(bundle.path, copy)
    first = model_identity(Bundle.load(copy))
    assert first["id"] == model_identity(bundle)["id"] and first["id"].startswith("palette@")
    (copy / "model.fp16.sm89.trt10.3.0.engine").write_bytes(b"engine")
    Bundle.load(copy).add_artifact("tensorrt_fp16", Artifact("model.fp16.sm89.trt10.3.0.engine", "tensorrt",
                                                             "probabilities"))
    assert model_identity(Bundle.load(copy))["id"] == first["id"]
    with open(copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    assert model_identity(Bundle.load(copy))["id"] != first["id"]


def test_a_worker_names_the_bag_it_cannot_read(bags, tmp_path, bundle):
    with pytest.raises(InputError, match=r"worker on .* cannot read bag /mnt/nas/x \(no such file or directory\); "
                                         r"cityseg fleet needs the bags and --out on storage every Ray node mounts"):
        check_access([str(bags / "front"), "/mnt/nas/x"], str(tmp_path))
    worker = BagWorker(ReplayOptions(str(bundle.path), "onnxruntime", TRAINID), "m", force=False)
    info = worker.setup([str(bags / "front"), "/mnt/nas/x"], str(tmp_path / "out"))
    assert "cannot read bag /mnt/nas/x" in info["error"]


def test_an_unreachable_cluster_is_one_error(bags, bundle, tmp_path, capsys):
    """Before the module's Ray starts: a Ray this process already runs is used as it is."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    assert cli_main(["fleet", str(bags / "front"), "--out", str(tmp_path / "o"), "--model", str(bundle.path),
                     "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port} (Connection refused); start it with" in err


# ------------------------------------------------------------------------------------------
# On Ray
# ------------------------------------------------------------------------------------------

def test_fleet_equals_single_process_bag_and_reports_failures(local_ray, bags, reference, bundle, tmp_path,
                                                              capsys):
    out = tmp_path / "out"
    code, summary = fleet(out, str(bags), model=bundle.path, capsys=capsys)
    assert code == 1  # the corrupt bag failed
    bag = by_name(summary)
    assert {n: b["status"] for n, b in bag.items()} == {
        "front": "done", "rear": "done", "drive": "done", "stereo": "done", "corrupt": "failed"}
    assert "cannot read it as a rosbag2 directory" in bag["corrupt"]["error"]
    assert bag["stereo"]["image_topic"] == "/left/image_raw, /right/image_raw"  # both cameras, one pass
    assert [bag[n]["frames"] for n in (*GOOD, "stereo")] == [4, 3, 2, 6]
    assert summary["totals"] | {"seconds": 0} == summary["totals"] | {
        "bags": 5, "done": 4, "skipped": 0, "failed": 1, "frames": 15, "seconds": 0}
    assert summary["workers"] == 2 and summary["model"]["id"].startswith("palette@")
    assert summary["params"]["id_space"] == "trainid" and summary["params"]["backend"] == "onnxruntime"
    assert json.loads((out / "fleet.json").read_text())["bags"] == summary["bags"]
    for name in GOOD:
        assert_same_bag(out / name, reference[name])
        assert json.loads((out / name / MARKER).read_text())["model_id"] == summary["model"]["id"]
    assert sorted(p.name for p in out.iterdir()) == ["drive", "fleet.json", "front", "rear", "stereo"]


def test_several_cameras_replay_the_chosen_topic(local_ray, bags, reference, bundle, tmp_path, capsys):
    code, summary = fleet(tmp_path / "out", str(bags / "stereo"), "--image-topic", "/right/image_raw",
                          model=bundle.path, capsys=capsys, progress=True)
    assert code == 0 and by_name(summary)["stereo"]["image_topic"] == "/right/image_raw"
    assert "fleet: 100%" in summary["stderr"] and "3/3 [" in summary["stderr"]  # the progress bar, on stderr
    assert_same_bag(tmp_path / "out" / "stereo", reference["stereo"])


def test_rerun_skips_complete_outputs_force_redoes_and_others_are_kept(local_ray, bags, bundle, tmp_path,
                                                                      capsys):
    out = tmp_path / "out"
    good = [str(bags / "front"), str(bags / "drive.bag")]
    assert fleet(out, *good, model=bundle.path, capsys=capsys)[0] == 0
    db3 = out / "front" / "front.db3"
    written = db3.stat().st_mtime_ns
    code, summary = fleet(out, *good, model=bundle.path, capsys=capsys)
    assert code == 0 and [b["status"] for b in summary["bags"]] == ["skipped", "skipped"]
    assert summary["workers"] == 0 and summary["totals"]["frames_skipped"] == 6 and db3.stat().st_mtime_ns == written

    code, summary = fleet(out, *good, "--outputs", "mask", model=bundle.path, capsys=capsys)
    assert code == 1 and {b["status"] for b in summary["bags"]} == {"failed"}
    assert "already exists, written for another params; pass --force" in summary["bags"][0]["error"]
    assert db3.stat().st_mtime_ns == written  # never overwritten without --force

    (out / "foreign").mkdir()
    (out / "foreign" / "notes.txt").write_text("mine")
    shutil.copytree(bags / "front", tmp_path / "in" / "foreign")
    code, summary = fleet(out, str(tmp_path / "in" / "foreign"), model=bundle.path, capsys=capsys)
    assert code == 1 and "not written by cityseg fleet" in summary["bags"][0]["error"]
    assert (out / "foreign" / "notes.txt").read_text() == "mine"

    code, summary = fleet(out, good[0], "--force", model=bundle.path, capsys=capsys)
    assert code == 0 and summary["bags"][0]["status"] == "done" and db3.stat().st_mtime_ns != written
    assert leftovers(out) == []


def test_a_killed_worker_has_its_bag_retried_once(local_ray, bags, reference, bundle, tmp_path, capsys,
                                                  monkeypatch):
    monkeypatch.setattr(cityseg.fleet.run, "BagWorker", faults.faulty_worker("front"))
    out = tmp_path / "out"
    code, summary = fleet(out, *(str(bags / n) for n in ("front", "rear", "drive.bag")), model=bundle.path,
                          capsys=capsys)
    bag = by_name(summary)
    assert code == 0 and bag["front"]["status"] == "done" and bag["front"]["attempts"] == 2
    assert bag["rear"]["attempts"] == 1
    for name in GOOD:
        assert_same_bag(out / name, reference[name])
    assert leftovers(out) == []  # the dead worker's partial output was cleared


@pytest.mark.slow
def test_a_bag_whose_worker_dies_twice_is_failed_and_the_others_finish(local_ray, bags, reference, bundle,
                                                                       tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cityseg.fleet.run, "BagWorker", faults.faulty_worker("front", attempts=None))
    out = tmp_path / "out"
    code, summary = fleet(out, str(bags / "front"), str(bags / "rear"), model=bundle.path, capsys=capsys)
    bag = by_name(summary)
    assert code == 1 and bag["front"]["status"] == "failed" and bag["front"]["attempts"] == 2
    assert "the Ray worker segmenting it died on each of 2 attempts" in bag["front"]["error"]
    assert bag["rear"]["status"] == "done" and not (out / "front").exists()
    assert_same_bag(out / "rear", reference["rear"])
    assert leftovers(out) == []


@pytest.mark.slow
def test_a_killed_run_leaves_nothing_that_looks_complete_and_resumes(local_ray, bags, reference, bundle,
                                                                     tmp_path, capsys):
    """A whole run (driver, its local Ray and workers) killed mid-bag; the rerun finishes it."""
    out = tmp_path / "out"
    order = [str(bags / n) for n in ("front", "rear", "drive.bag")]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    command = [sys.executable, str(FAULTS), "rear:hang", "fleet", *order, "--out", str(out),
               "--model", str(bundle.path), "--backend", "onnxruntime", "--id-space", "trainid", "--workers", "1",
               "--no-progress"]
    run = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not ((out / "front" / MARKER).exists() and leftovers(out)):  # front done, rear mid-bag
            assert run.poll() is None, run.stderr.read().decode()
            assert time.monotonic() < deadline, "the run did not reach the second bag"
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["front"]
    assert not (out / "rear").exists() and leftovers(out)  # the partial bag only under its staging name

    code, summary = fleet(out, *order, model=bundle.path, capsys=capsys)
    assert code == 0 and [b["status"] for b in summary["bags"]] == ["skipped", "done", "done"]
    for name in GOOD:
        assert_same_bag(out / name, reference[name])
    assert leftovers(out) == []


def test_cli_errors_are_one_line(local_ray, bags, bundle, tmp_path, capsys):
    code, result = fleet(tmp_path / "out", str(bags / "front"), model=bundle.path, capsys=capsys, workers=5)
    assert code == 2 and "--workers 5 does not fit: the Ray cluster has 2 CPU(s)" in result["stderr"]
    assert cli_main(["fleet", "--out", str(tmp_path / "o"), "--model", str(bundle.path)]) == 2
    assert "error: no bags given" in capsys.readouterr().err
    assert cli_main(["fleet", str(bags / "front"), "--out", str(tmp_path / "o")]) == 2
    assert "cityseg fleet: error: --model is required" in capsys.readouterr().err



def test_without_ray_fleet_says_how_to_install_it_and_bag_still_works(bags, bundle, tmp_path):
    blocker = tmp_path / "noray"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['ray'] = None  # `import ray` fails\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(SRC)])}
    common = ["--model", str(bundle.path), "--backend", "onnxruntime"]
    fleet_run = subprocess.run([sys.executable, "-m", "cityseg", "fleet", str(bags / "front"), "--out",
                                str(tmp_path / "out"), *common], env=env, capture_output=True, text=True)
    assert fleet_run.returncode == 2 and fleet_run.stdout == ""
    assert fleet_run.stderr.strip() == ("cityseg fleet: error: cityseg fleet needs Ray, which is not installed "
                                        "here: pip install 'cityseg[fleet]' (or pip install 'ray>=2.9'); "
                                        "`cityseg bag` replays one bag without it")
    bag_run = subprocess.run([sys.executable, "-m", "cityseg", "bag", str(bags / "front"), str(tmp_path / "b"),
                              "--no-progress", *common], env=env, capture_output=True, text=True)
    assert bag_run.returncode == 0, bag_run.stderr
    assert "4 frames in, 4 out, 0 failed" in bag_run.stdout


def test_the_local_ray_listens_on_the_loopback_interface_only(local_ray):
    address = local_ray.get_runtime_context().gcs_address
    assert address.split(":")[0] == "127.0.0.1", address

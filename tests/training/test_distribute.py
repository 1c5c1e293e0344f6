"""Distributed training: TF_CONFIG checks, >= 2 mirrored replicas, and a 2-worker cluster on localhost.

The mirrored run needs logical CPU devices configured before TensorFlow starts, and every worker
of a cluster is its own `cityseg train` process, so those tests start subprocesses.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("tensorflow")
HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from cityseg.config import to_mapping  # noqa: E402
from cityseg.training.distribute import ClusterError, ClusterTask, config_digest, read_tf_config  # noqa: E402

from distributed_support import LOSS_TOLERANCE, comparable_config, free_ports, tf_config  # noqa: E402


def cluster(workers: int = 2, index: int = 0, **extra) -> dict[str, str]:
    return {"TF_CONFIG": json.dumps({"cluster": {"worker": [f"localhost:{2000 + i}" for i in range(workers)],
                                                 **extra}, "task": {"type": "worker", "index": index}})}


def test_tf_config_is_read_and_checked():
    task = read_tf_config(cluster(2, 1))
    assert (task.task_type, task.task_id, task.num_workers, task.is_chief) == ("worker", 1, 2, False)
    assert read_tf_config(cluster(2, 0)).is_chief
    with_chief = read_tf_config(cluster(2, 0, chief=["localhost:1999"]))
    assert not with_chief.is_chief and with_chief.num_workers == 3
    assert ClusterTask("chief", 0, {"chief": ["a:1"], "worker": ["b:1"]}).is_chief


@pytest.mark.parametrize("environ, message", [
    ({}, "multi_worker needs the TF_CONFIG environment variable.*index 1 on the second worker"),
    ({"TF_CONFIG": "{cluster"}, "TF_CONFIG is not valid JSON"),
    ({"TF_CONFIG": '{"task": {"type": "worker", "index": 0}}'}, "needs a 'cluster' and a 'task'"),
    (cluster(2, 2), r"task index 2 is out of range: the cluster has 2 worker address\(es\), so use 0..1"),
    (cluster(2, -1), "task index -1 is out of range"),
    ({"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}'},
     "task type 'ps' is not a job of the cluster"),
])
def test_tf_config_mistakes_get_one_clear_message(environ, message):
    with pytest.raises(ClusterError, match=message):
        read_tf_config(environ)


def test_config_digest_tells_configs_apart(tmp_path):
    a = to_mapping(comparable_config(tmp_path, tmp_path))
    b = to_mapping(comparable_config(tmp_path, tmp_path, seed=1))
    assert config_digest(a) == config_digest(json.loads(json.dumps(a))) != config_digest(b)
    assert 0 < config_digest(a) < 2 ** 48


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    from cityseg.synthetic.dataset import write_dataset

    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, count=6, size=(256, 128), seed=3, splits={"train": 4, "val": 2})
    return root


def run_quietly(args: list[str], timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=environ)


def test_mirrored_with_two_replicas_trains_like_one_device(data_root, tmp_path):
    result = run_quietly([sys.executable, str(HERE / "replicas_run.py"), "2", str(data_root),
                          str(tmp_path / "cache"), str(tmp_path / "runs")], timeout=400)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    found = json.loads(lines[0][len("RESULT "):])
    one, two = found["none"], found["mirrored"]
    assert found["devices"] == 2 and (one["replicas"], two["replicas"]) == (1, 2)
    # the global batch is split: both runs take the same number of optimizer steps
    assert one["iterations"] == two["iterations"] == 3 * 2
    # and follow the same loss curve (a per-replica batch, or N-times steps, would not)
    for a, b in zip(one["loss"], two["loss"], strict=True):
        assert abs(a - b) <= LOSS_TOLERANCE * a, (one["loss"], two["loss"])
    # validation mIoU counts every replica's images: equal to scoring the same weights on one device
    assert two["val_miou"][-1] == pytest.approx(found["single_device_val_miou_of_mirrored_last"], rel=1e-5)


def write_config(path: Path, cfg) -> Path:
    path.write_text("# test run\n" + yaml.safe_dump(to_mapping(cfg), sort_keys=False))
    return path


def start_workers(configs: list[Path], out: Path, tmp: Path, *extra: str, ports=None,
                  count: int | None = None, outs: list[Path] | None = None) -> list[subprocess.Popen]:
    """``cityseg train`` once per worker of a localhost cluster (worker i gets configs[i] and
    ``outs[i]``, default ``out``)."""
    ports = ports or free_ports(len(configs))
    workers = []
    for index, config in enumerate(configs[:count]):
        worker_out = (outs or [out] * len(configs))[index]
        worker_tmp = tmp / f"tmp{index}"
        worker_tmp.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TF_CONFIG": tf_config(ports, index), "TF_CPP_MIN_LOG_LEVEL": "3",
               "TMPDIR": str(worker_tmp)}
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "cityseg", "train", "--config", str(config), "--out", str(worker_out),
             "--quiet", *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return workers


def finish(workers: list[subprocess.Popen], timeout: float) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    results = []
    for worker in workers:
        try:
            _, err = worker.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            _, err = worker.communicate()
            pytest.fail(f"worker {worker.args} still running after {timeout}s:\n{err[-3000:]}")
        results.append((worker.returncode, err))
    return results


def test_a_worker_that_never_joins_times_out_with_one_message(data_root, tmp_path):
    config = write_config(tmp_path / "mw.yaml", comparable_config(data_root, tmp_path / "cache",
                                                                  distribute="multi_worker"))
    started = time.monotonic()
    [(code, err)] = finish(start_workers([config, config], tmp_path / "run", tmp_path,
                                         "--join-timeout", "5", count=1), timeout=120)
    assert code != 0 and time.monotonic() - started < 100
    assert "not every worker of TF_CONFIG joined within 5s (this is worker 0 of 2 worker(s)" in err
    assert "Traceback" not in err


def test_workers_started_with_different_configs_stop_with_one_message(data_root, tmp_path):
    configs = [write_config(tmp_path / f"w{i}.yaml", comparable_config(
        data_root, tmp_path / "cache", distribute="multi_worker", seed=i)) for i in range(2)]
    results = finish(start_workers(configs, tmp_path / "run", tmp_path, "--join-timeout", "120"),
                     timeout=200)
    for code, err in results:
        assert code != 0 and "Traceback" not in err
        assert "the workers were started with different configs (config hashes: workers [0]" in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def losses(run: Path) -> list[float]:
    with open(run / "history.csv", newline="") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_two_workers_train_like_one_process_and_resume_after_being_killed(data_root, tmp_path):
    from cityseg.bundle import Bundle
    from cityseg.training.train import train

    # mean/std and class weights are computed by the chief only: the other worker starts from
    # zeros, so unless it receives the chief's values its normalisation is refused (std 0) or its
    # loss is 0, and the loss curve below cannot match the single process.
    shared_statistics = {"normalization": "mean_std", "loss": "weighted_ce"}
    cfg = comparable_config(data_root, tmp_path / "cache", distribute="multi_worker", epochs=2,
                            **shared_statistics)
    config = write_config(tmp_path / "mw.yaml", cfg)
    out = tmp_path / "run"
    started = time.monotonic()
    elsewhere = tmp_path / "worker1_out"  # a fresh run: worker 1 never writes (or reads) --out
    results = finish(start_workers([config, config], out, tmp_path, "--join-timeout", "120",
                                   outs=[out, elsewhere]), 300)
    assert [code for code, _ in results] == [0, 0], [err[-3000:] for _, err in results]
    seconds = time.monotonic() - started
    # the chief wrote the run; worker 1 wrote only to its temporary directory, now removed
    assert not elsewhere.exists()
    for name in ("config.yaml", "history.csv", "history.png", "checkpoints/last.keras",
                 "checkpoints/best.keras", "previews/epoch_002.png", "bundle/model.keras"):
        assert (out / name).is_file(), name
    assert list((tmp_path / "tmp1").iterdir()) == []
    card = Bundle.load(out / "bundle").card
    assert card.training["replicas"] == 2 and card.training["optimizer_steps"] == 2 * 2
    # the same loss curve as one process with the same global batch
    single = tmp_path / "single"
    train(comparable_config(data_root, tmp_path / "cache", epochs=2, **shared_statistics), single,
          progress=False)
    assert Bundle.load(single / "bundle").card.normalization == card.normalization
    for a, b in zip(losses(single), losses(out), strict=True):
        assert abs(a - b) <= LOSS_TOLERANCE * a, (losses(single), losses(out))
    print(f"2 workers, 2 epochs: {seconds:.1f}s wall (both processes)")

    # kill both workers once an epoch is checkpointed; --resume on both finishes the run
    long_config = write_config(tmp_path / "long.yaml", comparable_config(
        data_root, tmp_path / "cache", distribute="multi_worker", epochs=50))
    killed = tmp_path / "killed"
    workers = start_workers([long_config, long_config], killed, tmp_path, "--join-timeout", "120")
    state = killed / "checkpoints" / "state.json"
    deadline = time.monotonic() + 200
    while not state.is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    for worker in workers:
        worker.send_signal(signal.SIGKILL)
        worker.communicate()
    done = json.loads(state.read_text())["epochs_done"]
    assert 1 <= done < 50
    results = finish(start_workers([long_config, long_config], killed, tmp_path, "--resume",
                                   "--epochs", str(done + 1), "--join-timeout", "120"), 300)
    assert [code for code, _ in results] == [0, 0], [err[-3000:] for _, err in results]
    resumed = json.loads(state.read_text())
    assert resumed["epochs_done"] == done + 1 and resumed["iterations"] == (done + 1) * 2
    assert [int(r["epoch"]) for r in resumed["history"]] == list(range(done + 1))
    assert len(losses(killed)) == done + 1

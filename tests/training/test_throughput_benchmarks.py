"""The training-throughput benchmark and its profiler run as docs/PERFORMANCE.md gives them."""

import os
import subprocess
import sys

import pytest

from support import REPO, write_camvid_tree


def run_script(name: str, *args: str, home) -> str:
    env = {**os.environ, "HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}  # the data cache goes to HOME
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), "--config",
                           str(REPO / "training_configs" / "camvid.yaml"), *args],
                          capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_throughput_table_and_step_profile_on_a_camvid_folder(tmp_path):
    root = write_camvid_tree(tmp_path / "CamVid", {"train": 8, "val": 2}, size=(360, 480))
    table = run_script("train_throughput.py", "--data-root", str(root), "--variants", "baseline,crop",
                       "--steps", "1", "--rounds", "1", home=tmp_path)
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
    assert set(rows) == {"baseline", "crop"} and rows["baseline"][3] == "1.00"
    assert all(float(value) > 0 for row in rows.values() for value in row[1:])
    profile = run_script("train_step_profile.py", "--data-root", str(root), "--variant", "crop_kbn",
                         "--steps", "1", home=tmp_path)
    shares = {" ".join(line.split()[4:]): float(line.split()[0])
              for line in profile.split("-- by layer kind")[1].split("--")[0].strip().splitlines()}
    # Keras' own batch norm path is profiled and attributed to its layers, forward and gradient
    assert shares["grad bn"] > 0 and shares["fwd sepconv"] > 0 and 99 < sum(shares.values()) < 101


def test_an_unknown_variant_is_refused_naming_the_choices(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "train_throughput.py"), "--config",
                           str(REPO / "training_configs" / "camvid.yaml"), "--data-root", str(tmp_path),
                           "--variants", "crop,turbo"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown variant(s) turbo" in done.stderr and "crop_kbn" in done.stderr

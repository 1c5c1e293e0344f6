"""The run state, the run directory and TF_CONFIG parsing load neither Keras nor TensorFlow."""

import json
import subprocess
import sys

from cityseg.training.run_state import MONITOR, STATE_FILE, RunState


def loaded_frameworks(code: str) -> list[str]:
    probe = code + "; import sys; print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1].replace("'", '"'))


def test_run_state_and_tf_config_parsing_do_not_import_keras():
    code = ("import json, cityseg.training.run_state, cityseg.training.run_dir, cityseg.training.distribute as d; "
            "d.read_tf_config({'TF_CONFIG': json.dumps({'cluster': {'worker': ['a:1', 'b:2']}, "
            "'task': {'type': 'worker', 'index': 1}})})")
    assert loaded_frameworks(code) == []


def test_run_state_round_trips(tmp_path):
    state = RunState(epochs_done=2, iterations=40, best_value=0.5, best_epoch=2,
                     history=[{"epoch": 0, MONITOR: 0.4}, {"epoch": 1, MONITOR: 0.5}])
    state.save(tmp_path / STATE_FILE)
    assert RunState.load(tmp_path / STATE_FILE) == state
    assert state.monitor == MONITOR == "val_miou"

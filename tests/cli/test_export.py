"""`cityseg export` on real bundles: parity printed, refusals as one clear message."""

import cv2
import pytest

from cityseg.bundle import Bundle
from cityseg.cli import main
from cityseg.errors import InputError
from cityseg.labels import class_space
from cityseg.tensorrt.runtime import runtime_unavailable_reason

from support import make_palette_bundle, painted_scene


@pytest.fixture
def bundle_dir(tmp_path):
    return make_palette_bundle(tmp_path / "palette", formats=("keras",)).path


def test_export_onnx_prints_parity(bundle_dir, capsys):
    assert main(["export", str(bundle_dir)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {bundle_dir / 'model.onnx'}" in out
    assert "parity keras:model.keras vs onnxruntime:model.onnx (fp32)" in out and "- ok" in out
    assert "bundle" in out and "keras, onnx" in out
    assert "onnx" in Bundle.load(bundle_dir).card.artifacts


def test_argmax_head_strict_with_own_parity_images(bundle_dir, tmp_path, capsys):
    images = tmp_path / "frames"
    images.mkdir()
    for i in range(3):
        rgb, _ = painted_scene(200, 400, seed=i)
        cv2.imwrite(str(images / f"{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    args = ["export", str(bundle_dir), "--onnx", "--argmax-head", "--strict", "--parity-images", str(images)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "on 3 given frames" in out and "model_argmax.onnx" in out
    assert Bundle.load(bundle_dir).card.artifacts["onnx_argmax"].output == "argmax"


def test_existing_artifact_needs_force(bundle_dir, capsys):
    assert main(["export", str(bundle_dir)]) == 0
    capsys.readouterr()
    assert main(["export", str(bundle_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cityseg export: error:") and "--force" in err and "Traceback" not in err
    assert main(["export", str(bundle_dir), "--force"]) == 0


def test_tensorrt_without_tensorrt_is_one_clear_message(bundle_dir, capsys):
    reason = runtime_unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT and a GPU are present here; tests/tensorrt/test_build_gpu covers --tensorrt")
    assert main(["export", str(bundle_dir), "--onnx", "--tensorrt"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "--tensorrt needs TensorRT 10 or 11 and an NVIDIA GPU" in lines[0]
    assert reason in lines[0] and "Traceback" not in captured.err
    assert not (bundle_dir / "model.onnx").exists()  # failed before doing any work


def test_bad_arguments_are_explained(bundle_dir, tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "no such model bundle directory" in capsys.readouterr().err
    assert main(["export", str(bundle_dir), "--batch", "4,2,1"]) == 2
    assert "need 1 <= min <= opt <= max" in capsys.readouterr().err
    assert main(["export", str(bundle_dir), "--parity-images", str(tmp_path / "none")]) == 2
    assert "--parity-images" in capsys.readouterr().err
    assert main(["export", str(bundle_dir), "--calib-images", str(tmp_path)]) == 2
    assert "used only by --precision int8" in capsys.readouterr().err
    assert main(["export", str(bundle_dir), "--precision", "fp16", "--eval-label-map", "cityscapes-to-camvid"]) == 2
    assert "--eval-layout and --eval-label-map describe --eval-data ROOT" in capsys.readouterr().err


def test_fp16_gate_on_camvid_ground_truth_through_the_map(bundle_dir, tmp_path, capsys):
    from support import write_camvid_tree

    root = write_camvid_tree(tmp_path / "CamVid", {"val": 2})
    assert main(["export", str(bundle_dir), "--precision", "fp16", "--eval-data", str(root), "--eval-layout",
                 "camvid", "--eval-label-map", "cityscapes-to-camvid"]) == 0, capsys.readouterr().err
    gate = Bundle.load(bundle_dir).card.artifacts["onnx_fp16"].details["gate"]
    assert (gate["mode"], gate["frames"], gate["frame_source"]) == ("ground-truth", 2, "val:CamVid")
    assert gate["worst_class"] in class_space("camvid").names


def test_max_batch_is_a_one_to_n_profile(capsys):
    import argparse

    from cityseg.cli.export import batch_profile
    from cityseg.tensorrt.engine_cache import BatchProfile

    def args(batch=None, max_batch=None):
        return argparse.Namespace(batch=batch, max_batch=max_batch)

    assert batch_profile(args()) == BatchProfile(1, 1, 4)
    assert batch_profile(args(max_batch=6)) == BatchProfile(1, 6, 6)
    assert batch_profile(args(batch="2,2,8")) == BatchProfile(2, 2, 8)
    assert BatchProfile.up_to(4).to_dict() == {"min": 1, "opt": 4, "max": 4}  # the sidecar's profile
    with pytest.raises(InputError, match="--batch 1,1,4 and --max-batch 6 both set the batch profile"):
        batch_profile(args("1,1,4", 6))
    with pytest.raises(InputError, match="--max-batch 0: need at least 1"):
        batch_profile(args(max_batch=0))


def test_max_batch_conflict_is_explained_by_the_cli(bundle_dir, capsys):
    assert main(["export", str(bundle_dir), "--batch", "1,1,4", "--max-batch", "8"]) == 2
    assert "give one (--max-batch N is --batch 1,N,N)" in capsys.readouterr().err

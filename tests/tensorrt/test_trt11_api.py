"""The converter uses no TensorRT API that TensorRT 11 removed (so one code path builds on 10.x and 11.x).

REMOVED is the list of NVIDIA's "Removed Python APIs and Replacements" (TensorRT 10.x to 11.x Python API
reference, docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-reference.html),
the entries that concern a builder: precision moved into the network (strongly typed networks, Q/DQ), so
the weak-typing builder flags, the calibrator and quantization-flag calls, the algorithm selector and the
platform-capability queries are gone. The test scans cityseg's sources for each name.
"""

import re
from pathlib import Path

import cityseg

REMOVED = (
    "BuilderFlag.FP16", "BuilderFlag.INT8", "BuilderFlag.FP8", "BuilderFlag.BF16", "BuilderFlag.INT4",
    "BuilderFlag.FP4", "BuilderFlag.OBEY_PRECISION_CONSTRAINTS", "BuilderFlag.PREFER_PRECISION_CONSTRAINTS",
    "BuilderFlag.DIRECT_IO",
    "int8_calibrator", "set_calibration_profile", "get_calibration_profile",
    "set_quantization_flag", "get_quantization_flag", "quantization_flags", "clear_quantization_flag",
    "device_memory_size",
    "IInt8Calibrator", "IInt8EntropyCalibrator", "IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator",
    "IInt8LegacyCalibrator",
    "IAlgorithm", "IAlgorithmContext", "IAlgorithmIOInfo", "IAlgorithmSelector", "IAlgorithmVariant",
    "platform_has_fast_fp16", "platform_has_fast_int8",
)
"""Names TensorRT 11's Python API no longer has (migration guide, 10.x -> 11.x)."""

SOURCE = Path(cityseg.__file__).parent


def test_no_removed_tensorrt_api_in_the_sources():
    hits = []
    for path in sorted(SOURCE.rglob("*.py")):
        text = path.read_text()
        for name in REMOVED:
            if re.search(r"\b" + re.escape(name) + r"\b", text):
                hits.append(f"{path.relative_to(SOURCE)}: {name}")
    assert hits == [], "TensorRT 11 removed these APIs: " + "; ".join(hits)


def test_the_build_is_strongly_typed():
    text = (SOURCE / "export" / "tensorrt_build.py").read_text()
    assert "NetworkDefinitionCreationFlag.STRONGLY_TYPED" in text


def test_the_scan_finds_a_removed_call(tmp_path):
    sample = "config.set_flag(trt.BuilderFlag.FP16)\nconfig.int8_calibrator = c\n"
    found = [n for n in REMOVED if re.search(r"\b" + re.escape(n) + r"\b", sample)]
    assert found == ["BuilderFlag.FP16", "int8_calibrator"]

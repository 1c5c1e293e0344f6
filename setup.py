"""One setup.py for `pip install -e .` (workstation) and `colcon build` (ament_python, vehicle)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "cityseg"

EXTRAS = {
    # Training and the TensorFlow inference backend. The upper bounds are the fence of the code
    # that uses private Keras/TensorFlow APIs (cityseg/training/version_fence.py): raise them together.
    "train": ["tensorflow>=2.16,<2.22", "keras>=3.3,<3.16", "tensorboard>=2.16", "matplotlib>=3.7"],
    # ONNX export and the ONNX Runtime backend (onnxruntime-gpu works too).
    "onnx": ["onnxruntime>=1.17", "onnx>=1.15", "tf2onnx>=1.16"],
    # Offline rosbag2 / ROS 1 bag replay without ROS.
    "bag": ["rosbags>=0.10"],
    # `cityseg fleet`: many bags on a Ray cluster (or a local Ray).
    "fleet": ["ray>=2.9"],
    # TensorRT engines and runtime (NVIDIA GPU only). Engines are built strongly typed (precision in
    # the ONNX), the one code path of TensorRT 10.x and 11.x.
    "tensorrt": ["tensorrt>=10,<12", "cuda-python>=12"],
    # The OpenVINO CPU backend (fp32 / int8 Q/DQ ONNX, bf16 where the CPU has it).
    "openvino": ["openvino>=2024.4"],
    "dev": ["pytest>=7", "pytest-timeout", "catkin_pkg", "colcon-common-extensions", "ruff>=0.4", "import-linter>=2"],
    # Real ROS 2 Jazzy Python (rclpy + Fast DDS and the message packages the node uses) from PyPI,
    # for tests and workstations without a ROS installation. A sourced ROS 2 needs none of it.
    "ros": ["ros-jazzy-rclpy[fastrtps]", "ros-jazzy-sensor-msgs", "ros-jazzy-std-msgs",
            "ros-jazzy-diagnostic-msgs", "ros-jazzy-lifecycle-msgs", "ros-jazzy-nav-msgs",
            "ros-jazzy-geometry-msgs"],
}
EXTRAS["all"] = sorted({req for name, reqs in EXTRAS.items() if name not in ("tensorrt", "ros") for req in reqs})

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Semantic segmentation of street scenes: Cityscapes trainer, ONNX/TensorRT "
                "converter and a ROS 2 node",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    maintainer="cityseg developers",
    maintainer_email="cityseg@example.com",
    python_requires=">=3.10",
    package_dir={"": "src"},
    packages=find_packages("src"),
    install_requires=[
        "numpy>=1.23",
        "opencv-python-headless>=4.7",
        "pillow>=9",
        "pyyaml>=6",
        "tqdm>=4.60",
        "cityscapesscripts>=2.2",
    ],
    extras_require=EXTRAS,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml") + glob("config/*.rviz")
         + glob("config/*.json")),
        (f"share/{PACKAGE}/models", ["models/README.md"]),
        (f"share/{PACKAGE}/training_configs", glob("training_configs/*.yaml")),
        (f"share/{PACKAGE}/training_configs/seed", glob("training_configs/seed/*.yaml")),
    ],
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "cityseg = cityseg.cli:main",
            "segmentation_node = cityseg.ros.live.main:main",
        ],
    },
)

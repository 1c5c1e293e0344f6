"""Real test models and images the suite builds itself (no downloads).

The "palette classifier" is a genuine per-pixel model: class scores are
``-|x - colour_c|^2`` up to a per-pixel constant, i.e. ``x . 2c - |c|^2`` followed by softmax,
so an image painted in Cityscapes palette colours is segmented exactly into those classes.
It exists as a real ONNX file (built with onnx.helper) and as a real Keras model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cityseg.benchmarking.fixtures import save_onnx
from cityseg.bundle import Artifact, Bundle, ModelCard
from cityseg.fileio import write_png
from cityseg.labels import class_space

REPO = Path(__file__).resolve().parents[1]


def palette_weights(space_name: str = "trainid") -> tuple[np.ndarray, np.ndarray]:
    """(kernel float32[3, C], bias float32[C]) of the nearest-palette-colour classifier."""
    colors = class_space(space_name).colors.astype(np.float64) / 255.0
    kernel = (2.0 * colors.T).astype(np.float32)
    bias = (-(colors ** 2).sum(axis=1)).astype(np.float32)
    return kernel, bias


def write_palette_onnx(path: Path, space_name: str = "trainid", height: int | None = None,
                       width: int | None = None, argmax: bool = False, sharpness: float = 50.0) -> Path:
    """Write the palette classifier as ONNX: NHWC float input 'image' -> probabilities (or uint8 argmax)."""
    from onnx import TensorProto, helper, numpy_helper

    kernel, bias = palette_weights(space_name)
    num_classes = kernel.shape[1]
    nodes = [
        helper.make_node("MatMul", ["image", "kernel"], ["mm"]),
        helper.make_node("Add", ["mm", "bias"], ["logits"]),
        helper.make_node("Mul", ["logits", "sharpness"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["probabilities"], axis=-1),
    ]
    out_name, out_type, out_shape = "probabilities", TensorProto.FLOAT, ["N", height, width, num_classes]
    if argmax:
        nodes += [helper.make_node("ArgMax", ["probabilities"], ["idx"], axis=-1, keepdims=0),
                  helper.make_node("Cast", ["idx"], ["classes"], to=TensorProto.UINT8)]
        out_name, out_type, out_shape = "classes", TensorProto.UINT8, ["N", height, width]
    graph = helper.make_graph(
        nodes, "palette_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", height, width, 3])],
        [helper.make_tensor_value_info(out_name, out_type, out_shape)],
        initializer=[numpy_helper.from_array(kernel, "kernel"), numpy_helper.from_array(bias, "bias"),
                     numpy_helper.from_array(np.array(sharpness, np.float32), "sharpness")],
    )
    return save_onnx(path, graph)


def build_palette_keras(space_name: str = "trainid", height: int = 64, width: int = 128):
    """The palette classifier as a Keras model (1x1 conv + softmax)."""
    import keras

    kernel, bias = palette_weights(space_name)
    inputs = keras.Input((height, width, 3), name="image")
    logits = keras.layers.Conv2D(kernel.shape[1], 1, name="palette")(inputs)
    scaled = keras.layers.Rescaling(50.0)(logits)
    outputs = keras.layers.Softmax(name="probabilities")(scaled)
    model = keras.Model(inputs, outputs, name="palette_classifier")
    model.get_layer("palette").set_weights([kernel.reshape(1, 1, 3, -1), bias])
    return model


def palette_card(space_name: str = "trainid", height: int = 64, width: int = 128,
                 resize: str = "area", **changes) -> ModelCard:
    space = class_space(space_name)
    card = ModelCard(name="palette", architecture="palette_classifier", input_height=height,
                     input_width=width, class_space=space.name, class_names=space.names,
                     resize=resize)
    for key, value in changes.items():
        setattr(card, key, value)
    return card


def make_palette_bundle(root: Path, space_name: str = "trainid", height: int = 64, width: int = 128,
                        formats: tuple[str, ...] = ("onnx",), resize: str = "area") -> Bundle:
    """A complete bundle directory with the palette classifier in the requested formats."""
    bundle = Bundle.create(root, palette_card(space_name, height, width, resize))
    if "onnx" in formats:
        write_palette_onnx(root / "model.onnx", space_name, height, width)
        bundle.add_artifact("onnx", Artifact("model.onnx", "onnx", "probabilities", {"opset": 17}))
    if "onnx_argmax" in formats:
        write_palette_onnx(root / "model_argmax.onnx", space_name, height, width, argmax=True)
        bundle.add_artifact("onnx_argmax", Artifact("model_argmax.onnx", "onnx", "argmax", {"opset": 17}))
    if "keras" in formats:
        build_palette_keras(space_name, height, width).save(root / "model.keras")
        bundle.add_artifact("keras", Artifact("model.keras", "keras", "probabilities"))
    return bundle


def painted_scene(height: int = 256, width: int = 512, space_name: str = "trainid",
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, uint8 class mask): blocks of palette colours, sized to survive resizing."""
    space = class_space(space_name)
    rng = np.random.default_rng(seed)
    rows, cols = 4, 8
    blocks = rng.integers(0, space.num_classes, size=(rows, cols)).astype(np.uint8)
    ys = (np.arange(height) * rows // height)
    xs = (np.arange(width) * cols // width)
    mask = blocks[ys[:, None], xs[None, :]]
    return space.palette[mask], mask


# Cityscapes trees written file by file (the data tests' ``tree`` fixture, the synth tests).

def write_pair(root: Path, split: str, city: str, key: str, image_rgb: np.ndarray,
               label_ids: np.ndarray | None, label_city: str | None = None) -> None:
    """Write one image (and its labelIds PNG unless None) in Cityscapes layout."""
    write_png(root / "leftImg8bit" / split / city / f"{key}_leftImg8bit.png",
              cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if label_ids is not None:
        write_png(root / "gtFine" / split / (label_city or city) / f"{key}_gtFine_labelIds.png", label_ids)


def flat_pair(value: int, height: int = 16, width: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """An image whose every pixel is ``value`` and a label whose every pixel is ``value`` too."""
    return np.full((height, width, 3), value, np.uint8), np.full((height, width), value, np.uint8)


# CamVid trees (SegNet's list-file layout) and paired trees, written file by file.

CAMVID_PREFIX = "/SegNet/CamVid"
"""The absolute prefix SegNet's list files carry; the layout resolves it against the data root."""


def camvid_scene(height: int = 96, width: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(RGB image painted in CamVid colours, uint8 annotation with void 11 in the top-left block)."""
    image, mask = painted_scene(height, width, "camvid", seed)
    mask = mask.copy()
    mask[: height // 4, : width // 8] = 11
    return image, mask


def scene_seed(split: str, index: int) -> int:
    """The seed of scene ``index`` of ``split`` in :func:`write_camvid_tree` (not hash(): salted per process)."""
    return zlib.crc32(f"{split}{index}".encode()) % 1000


def write_camvid_tree(root: Path, counts: dict[str, int] | None = None, size: tuple[int, int] = (96, 128),
                      prefix: str = CAMVID_PREFIX, scene=camvid_scene) -> Path:
    """A CamVid folder: <split>/, <split>annot/ PNGs and <split>.txt list files naming them under
    ``prefix`` (absolute, like SegNet's). ``scene(h, w, seed)`` paints each (image, annotation)."""
    counts = counts or {"train": 4, "val": 2, "test": 2}
    for split, count in counts.items():
        lines = []
        for k in range(count):
            name = f"0001TP_{split}{k:04d}.png"
            image, mask = scene(*size, seed=scene_seed(split, k))
            write_png(root / split / name, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            write_png(root / f"{split}annot" / name, mask)
            lines.append(f"{prefix}/{split}/{name} {prefix}/{split}annot/{name}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def camvid_bundle(root: Path, height: int = 96, width: int = 128) -> Bundle:
    """The palette classifier as a bundle of the built-in CamVid label set (card as training writes it)."""
    from cityseg.bundle import class_fields

    space = class_space("camvid")
    card = ModelCard(name="palette-camvid", architecture="palette_classifier", input_height=height,
                     input_width=width, resize="area", **class_fields(space, with_label_map=True))
    bundle = Bundle.create(root, card)
    write_palette_onnx(root / "model.onnx", "camvid", height, width)
    bundle.add_artifact("onnx", Artifact("model.onnx", "onnx", "probabilities", {"opset": 17}))
    return bundle


# ------------------------------------------------------------------------------------------
# The node's lifecycle services, as `ros2 lifecycle set` uses them (tests over DDS).
# ------------------------------------------------------------------------------------------

class Lifecycle:
    """Clients of a node's lifecycle services (``~/change_state``, ``~/get_state``), from a Probe's node."""

    def __init__(self, probe, fqn: str | None = None):
        from lifecycle_msgs import srv as lifecycle_srv

        self.srv = lifecycle_srv
        fqn = fqn or probe.fqn
        self.change = probe.node.create_client(self.srv.ChangeState, f"{fqn}/change_state")
        self.get = probe.node.create_client(self.srv.GetState, f"{fqn}/get_state")
        assert self.change.wait_for_service(20.0) and self.get.wait_for_service(20.0)

    @staticmethod
    def _call(client, request, timeout: float = 60.0):
        from cityseg.benchmarking.ros_probe import wait_until

        future = client.call_async(request)
        assert wait_until(future.done, timeout), "no answer from the lifecycle service"
        return future.result()

    def state(self) -> str:
        return self._call(self.get, self.srv.GetState.Request()).current_state.label

    def set(self, transition: int) -> bool:
        from lifecycle_msgs.msg import Transition

        request = self.srv.ChangeState.Request(transition=Transition(id=transition))
        return self._call(self.change, request).success


READY = "segmenting "
"""The node's startup log line begins with this once it is subscribed and publishing."""


def start_node(graph, bundle, namespace: str, **params):
    """The real ``segmentation_node`` in ``namespace`` on the palette bundle, started and ready."""
    from cityseg.benchmarking.ros_probe import NodeProcess

    values = {"model": str(bundle.path), "backend": "onnxruntime", "id_space": "trainid",
              "diagnostics_period": 0.25, "log_period": 0.0, **params}
    node = NodeProcess(namespace, values, env=graph)
    assert node.wait_for_output(READY, 30.0), node.output
    return node


def write_ros1_bag(path: Path, images: list[np.ndarray], topic: str = "/camera/image_color") -> Path:
    """A ROS 1 bag with one raw Image topic."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    from cityseg.ros.core.images import encode_rgb

    ros1 = get_typestore(Stores.ROS1_NOETIC)
    t = ros1.types
    with Writer(path) as writer:
        conn = writer.add_connection(topic, "sensor_msgs/msg/Image", typestore=ros1)
        for i, rgb in enumerate(images):
            raw = encode_rgb(rgb, "rgb8")
            header = t["std_msgs/msg/Header"](seq=i, stamp=t["builtin_interfaces/msg/Time"](sec=100 + i, nanosec=5),
                                              frame_id="cam")
            msg = t["sensor_msgs/msg/Image"](header=header, height=raw.height, width=raw.width, encoding="rgb8",
                                             is_bigendian=0, step=raw.step, data=raw.data)
            writer.write(conn, (100 + i) * 10**9 + 5, ros1.serialize_ros1(msg, "sensor_msgs/msg/Image"))
    return path


# --- foreign ONNX models (cityseg import): written by cityseg.benchmarking.fixtures.save_foreign_onnx ---

FOREIGN_H, FOREIGN_W = 64, 128


def conv_weights(classes, kernel, seed=0):
    """Patchify-conv weights (C, 3, k, k) and bias (C,) of a foreign model."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.05, (classes, 3, kernel, kernel)).astype(np.float32),
            rng.normal(0, 0.5, classes).astype(np.float32))


# ------------------------------------------------------------------------------------------
# The package as `colcon build` installs it (what `ros2 launch` and `ros2 run` start).
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ColconInstall:
    """A colcon install tree of this repository."""

    prefix: Path
    """install/cityseg"""

    @property
    def share(self) -> Path:
        return self.prefix / "share" / "cityseg"

    @property
    def node_executable(self) -> Path:
        return self.prefix / "lib" / "cityseg" / "segmentation_node"

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` plus what sourcing install/setup.bash adds for this package."""
        site = next((self.prefix / "lib").glob("python3*/site-packages"))
        paths = [str(site), *filter(None, base.get("PYTHONPATH", "").split(os.pathsep))]
        ament = [str(self.prefix), *filter(None, base.get("AMENT_PREFIX_PATH", "").split(os.pathsep))]
        return {**base, "PYTHONPATH": os.pathsep.join(paths), "AMENT_PREFIX_PATH": os.pathsep.join(ament)}


def colcon_install(root: Path) -> ColconInstall:
    """``colcon build`` of this repository into ``root`` (as `make colcon-check` does, ~2 s)."""
    colcon = Path(sys.executable).with_name("colcon")
    command = [str(colcon), "--log-base", str(root / "log"), "build", "--base-paths", str(REPO),
               "--build-base", str(root / "build"), "--install-base", str(root / "install")]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return ColconInstall(root / "install" / "cityseg")


def read_bag(path: Path) -> dict[str, list[tuple[int, object]]]:
    """topic -> [(bag timestamp, message)], read back with rosbags' plain rosbag2 Reader."""
    from rosbags.rosbag2 import Reader

    from cityseg.ros.core.messages import RosbagsMessages

    store = RosbagsMessages().typestore
    topics: dict[str, list] = {}
    with Reader(path) as reader:
        for conn, stamp, raw in reader.messages():
            topics.setdefault(conn.topic, []).append((stamp, store.deserialize_cdr(raw, conn.msgtype)))
    return topics


class OnnxAsEngine:
    """Stands in for a TensorRT engine in tests without a GPU: the serialized 'engine' is the ONNX
    file's path (what a patched ``build_serialized_engine`` returns), run in ONNX Runtime."""

    def __init__(self, serialized, name="engine"):
        from cityseg.export.onnx import onnxruntime_runner

        self.run = onnxruntime_runner(serialized.decode())

    def infer(self, batch):
        return self.run(batch)

    def close(self):
        pass

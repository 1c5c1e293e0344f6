"""Offline bag replay on bags the tests write with rosbags (rosbag2 sqlite3 / mcap, ROS 1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cityseg.cli import main as cli_main
from cityseg.errors import CitysegError, InputError
from cityseg.ros.bag.camera_bag import RigCamera, write_camera_bag, write_rig_bag
from cityseg.ros.bag.replay import load_processor, output_topics, replay_bag
from cityseg.ros.bag.rosbag_io import normalize_topic, topic_namespace
from cityseg.ros.core.images import encode_rgb
from cityseg.ros.core.messages import RosbagsMessages
from cityseg.ros.core.processor import ProcessorConfig

from support import painted_scene, read_bag, write_ros1_bag

F = RosbagsMessages()
T0 = 1_700_000_000 * 10**9
FPS = 10.0
TRAINID = ProcessorConfig(id_space="trainid")


def scenes(count: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    return [painted_scene(128, 256, "trainid", seed=i) for i in range(count)]


def raw_messages(path: Path) -> dict[str, list[tuple[int, bytes]]]:
    """topic -> [(bag timestamp, serialized message)]."""
    from rosbags.rosbag2 import Reader

    topics: dict[str, list] = {}
    with Reader(path) as reader:
        for conn, stamp, raw in reader.messages():
            topics.setdefault(conn.topic, []).append((stamp, bytes(raw)))
    return topics


def qos_of(path: Path) -> dict[str, list]:
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        return {c.topic: c.ext.offered_qos_profiles for c in reader.connections}


def mask_pixels(msg) -> np.ndarray:
    return msg.data.reshape(msg.height, msg.step)[:, : msg.width]


def replay(src, dst, bundle, **kw):
    kw.setdefault("config", TRAINID)
    return replay_bag(src, dst, bundle, backend="onnxruntime", progress=False, **kw)


def test_topic_names():
    assert normalize_topic("camera/image_raw/") == "/camera/image_raw"
    assert topic_namespace("/front/image_raw") == "/front"
    assert topic_namespace("front/image_raw/compressed") == "/front"
    assert topic_namespace("/image") == ""
    assert output_topics("/cam/left/image_rect")["mask"] == "/cam/left/segmentation/mask"


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("encoding", ["bgr8", "png"])
def test_replay_keeps_counts_stamps_qos_and_pixels(tmp_path, bundle, storage, encoding):
    frames = scenes()
    src, dst = tmp_path / "camera", tmp_path / "segmented"
    topic = "/camera/image_raw" + ("/compressed" if encoding == "png" else "")
    assert write_camera_bag(src, [rgb for rgb, _ in frames], image_topic=topic, encoding=encoding,
                            storage=storage, fps=FPS, frame_id="cam") == 4
    summary = replay(src, dst, bundle, storage=storage)
    assert (summary.frames_in, summary.frames_out, summary.failed) == (4, 4, [])
    assert summary.image_topic == topic and summary.camera_info_topic == "/camera/camera_info"
    assert set(summary.stage_ms) == {"convert", "preprocess", "infer", "postprocess", "publish"}
    assert (dst / "metadata.yaml").is_file() and (dst / f"segmented.{'mcap' if storage == 'mcap' else 'db3'}").is_file()

    out = read_bag(dst)
    prefix = "/camera/segmentation/"
    assert {t: len(m) for t, m in out.items()} == {
        prefix + "mask": 4, prefix + "color_mask": 4, prefix + "overlay": 4, prefix + "camera_info": 4,
        prefix + "label_info": 1}
    stamps = [T0 + round(i * 1e9 / FPS) for i in range(4)]
    for name in ("mask", "color_mask", "overlay", "camera_info"):
        messages = out[prefix + name]
        assert [s for s, _ in messages] == stamps  # bag timestamps
        assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in messages] == stamps
        assert {m.header.frame_id for _, m in messages} == {"cam"}
    for (_, mask), (_, expected) in zip(out[prefix + "mask"], frames):
        assert (mask.height, mask.width, mask.encoding) == (128, 256, "mono8")
        np.testing.assert_array_equal(mask_pixels(mask), expected)
    assert out[prefix + "overlay"][0][1].encoding == "bgr8"
    label = out[prefix + "label_info"][0]
    assert label[0] == stamps[0] and label[1].class_map[0].class_name == "road"

    qos_in, qos_out = qos_of(src), qos_of(dst)
    assert qos_out[prefix + "mask"] == qos_in[topic]
    assert qos_out[prefix + "camera_info"] == qos_in["/camera/camera_info"]
    assert qos_out[prefix + "label_info"][0].durability.name == "TRANSIENT_LOCAL"


def test_bad_messages_are_reported_and_skipped(tmp_path, bundle):
    from rosbags.rosbag2 import Writer

    frames = scenes(6)
    src = tmp_path / "bad"
    stamps = [T0 + i * 10**8 for i in range(6)]
    with Writer(src, version=9) as writer:
        conn = writer.add_connection("/cam/image", "sensor_msgs/msg/Image", typestore=F.typestore)
        for i, (rgb, _) in enumerate(frames):
            header = F.header(stamps[i] // 10**9, stamps[i] % 10**9, "cam")
            if i == 2:
                raw = b"\x00\x01\x00\x00\xff\xff"  # truncated CDR
            elif i == 4:
                good = encode_rgb(rgb, "rgb8")
                raw = F.serialize(F._t["sensor_msgs/msg/Image"](
                    header=header, height=good.height, width=good.width, encoding="rgb8", is_bigendian=0,
                    step=good.width, data=good.data))  # step < width * 3
            else:
                raw = F.serialize(F.image(header, encode_rgb(rgb, "rgb8")))
            writer.write(conn, stamps[i], raw)
    summary = replay(src, tmp_path / "out", bundle)
    assert (summary.frames_in, summary.frames_out) == (6, 4)
    assert [(f.index, f.stamp) for f in summary.failed] == [(2, stamps[2]), (4, stamps[4])]
    assert "cannot deserialize sensor_msgs/msg/Image" in summary.failed[0].reason
    assert "step 256 is smaller than width*bytes_per_pixel" in summary.failed[1].reason
    masks = read_bag(tmp_path / "out")["/cam/segmentation/mask"]
    assert [s for s, _ in masks] == [stamps[i] for i in (0, 1, 3, 5)]
    for (_, mask), i in zip(masks, (0, 1, 3, 5)):
        np.testing.assert_array_equal(mask_pixels(mask), frames[i][1])
    assert summary.camera_info_topic is None and "camera_info" not in summary.output_topics


def test_refuses_to_overwrite_without_force_and_replaces_only_its_own_output_with_it(tmp_path, bundle):
    src, dst = tmp_path / "cam", tmp_path / "out"
    write_camera_bag(src, [rgb for rgb, _ in scenes(2)])
    dst.mkdir()
    (dst / "precious.txt").write_text("user data")
    with pytest.raises(CitysegError, match="already exists; choose another output path or pass --force"):
        replay(src, dst, bundle)
    with pytest.raises(CitysegError, match="did not write"):
        replay(src, dst, bundle, force=True)
    assert (dst / "precious.txt").exists()
    (dst / "precious.txt").unlink()
    dst.rmdir()
    replay(src, dst, bundle)
    summary = replay(src, dst, bundle, force=True)
    assert summary.frames_out == 2 and (dst / "metadata.yaml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam", "out"]  # no staging left behind


def test_output_must_not_be_or_contain_the_input(tmp_path, bundle):
    src = tmp_path / "cam"
    write_camera_bag(src, [rgb for rgb, _ in scenes(1)])
    for dst in (src, src / "inner", tmp_path):
        with pytest.raises(CitysegError, match="must not be the input bag"):
            replay(src, dst, bundle, force=True)
    assert (src / "metadata.yaml").is_file()


def test_failed_replay_leaves_no_output(tmp_path, bundle):
    src = tmp_path / "cam"
    write_camera_bag(src, [rgb for rgb, _ in scenes(1)])
    with pytest.raises(InputError, match="no topic"):
        replay(src, tmp_path / "out", bundle, image_topic="/nope")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam"]


def test_image_topic_selection(tmp_path, bundle):
    from rosbags.rosbag2 import Writer

    src = tmp_path / "stereo"
    rgb = scenes(1)[0][0]
    with Writer(src, version=9) as writer:
        for side in ("left", "right"):
            conn = writer.add_connection(f"/{side}/image_raw", "sensor_msgs/msg/Image", typestore=F.typestore)
            writer.write(conn, T0, F.serialize(F.image(F.header(1, 0, side), encode_rgb(rgb, "rgb8"))))
        writer.add_connection("/left/camera_info", "sensor_msgs/msg/CameraInfo", typestore=F.typestore)
    summary = replay(src, tmp_path / "both", bundle)  # no --image-topic: every camera
    assert summary.image_topic == "/left/image_raw, /right/image_raw" and summary.frames_out == 2
    assert [c.camera_info_topic for c in summary.cameras] == ["/left/camera_info", None]  # only beside its camera
    with pytest.raises(InputError, match="no topic '/front/image_raw'"):
        replay(src, tmp_path / "out", bundle, image_topic="/front/image_raw")
    with pytest.raises(InputError, match="holds sensor_msgs/msg/CameraInfo"):
        replay(src, tmp_path / "out", bundle, image_topic="/left/camera_info")
    summary = replay(src, tmp_path / "out", bundle, image_topic="right/image_raw")  # no leading slash
    assert summary.image_topic == "/right/image_raw" and summary.frames_out == 1
    assert summary.camera_info_topic == "/left/camera_info"  # the only one
    assert set(read_bag(tmp_path / "out")) == {"/right/segmentation/mask", "/right/segmentation/color_mask",
                                               "/right/segmentation/overlay", "/right/segmentation/label_info"}


def test_copy_input_keeps_the_input_messages(tmp_path, bundle):
    src, dst = tmp_path / "cam", tmp_path / "out"
    write_camera_bag(src, [rgb for rgb, _ in scenes(3)], storage="mcap")
    summary = replay(src, dst, bundle, copy_input=True)
    assert summary.copied_topics == ["/camera/camera_info", "/camera/image_raw"]
    original, copied = read_bag(src), read_bag(dst)
    for topic in ("/camera/image_raw", "/camera/camera_info"):
        assert [s for s, _ in copied[topic]] == [s for s, _ in original[topic]]
    np.testing.assert_array_equal(copied["/camera/image_raw"][2][1].data, original["/camera/image_raw"][2][1].data)
    assert qos_of(dst)["/camera/image_raw"] == qos_of(src)["/camera/image_raw"]


def test_ros1_bag_is_replayed_and_copied_as_ros2(tmp_path, bundle):
    frames = scenes(2)
    src = write_ros1_bag(tmp_path / "drive.bag", [rgb for rgb, _ in frames])
    dst = tmp_path / "out"
    summary = replay(src, dst, bundle, copy_input=True)
    assert (summary.frames_in, summary.frames_out) == (2, 2)
    out = read_bag(dst)
    masks = out["/camera/segmentation/mask"]
    assert [(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in masks] == [(100, 5), (101, 5)]
    np.testing.assert_array_equal(mask_pixels(masks[1][1]), frames[1][1])
    copied = out["/camera/image_color"]
    assert len(copied) == 2 and copied[0][1].header.frame_id == "cam"  # migrated to ROS 2 (no seq)


def test_not_a_bag_is_an_input_error(tmp_path, bundle):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="cannot read it as a rosbag2 directory"):
        replay(tmp_path / "empty", tmp_path / "out", bundle)
    with pytest.raises(InputError, match="no such bag"):
        replay(tmp_path / "missing", tmp_path / "out", bundle)


def test_bag_without_images(tmp_path, bundle):
    from rosbags.rosbag2 import Writer

    src = tmp_path / "info_only"
    with Writer(src, version=9) as writer:
        writer.add_connection("/camera/camera_info", "sensor_msgs/msg/CameraInfo", typestore=F.typestore)
    with pytest.raises(InputError, match="no sensor_msgs/Image or CompressedImage topic"):
        replay(src, tmp_path / "out", bundle)


def test_write_camera_bag_refuses_existing_path(tmp_path):
    (tmp_path / "cam").mkdir()
    with pytest.raises(CitysegError, match="already exists"):
        write_camera_bag(tmp_path / "cam", [])


def test_cli_writes_bag_and_json_summary(tmp_path, bundle, capsys):
    src, dst, summary = tmp_path / "cam", tmp_path / "out", tmp_path / "summary.json"
    write_camera_bag(src, [rgb for rgb, _ in scenes(2)])
    args = ["bag", str(src), str(dst), "--model", str(bundle.path), "--backend", "onnxruntime",
            "--json", str(summary), "--no-progress", "--outputs", "mask,camera_info", "--storage", "mcap"]
    assert cli_main(args) == 0
    report = json.loads(summary.read_text())
    assert (report["frames_in"], report["frames_out"], report["failed"]) == (2, 2, [])
    assert set(report["stage_ms"]) == {"convert", "preprocess", "infer", "postprocess", "publish"}
    assert set(read_bag(dst)) == {"/camera/segmentation/mask", "/camera/segmentation/camera_info",
                                  "/camera/segmentation/label_info"}
    assert "2 frames in, 2 out, 0 failed" in capsys.readouterr().out
    assert cli_main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli_main(args[:-4] + ["--outputs", "color"]) == 2
    assert "unknown output(s) color" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# A camera rig: several image topics in one bag
# ------------------------------------------------------------------------------------------

RIG_SIZES = {"front": (128, 256), "left": (64, 128), "rear": (192, 384)}
RIG_ENCODINGS = {"front": "rgb8", "left": "bgr8", "rear": "png"}


def rig_cameras(count: int = 3) -> list[RigCamera]:
    return [RigCamera.named(name, [painted_scene(*size, "trainid", seed=10 * k + i)[0] for i in range(count)],
                            RIG_ENCODINGS[name])
            for k, (name, size) in enumerate(RIG_SIZES.items())]


def recording_processor(bundle):
    """A processor whose process_batch records the cameras (frame_ids) of every batch."""
    processor = load_processor(bundle, TRAINID, "onnxruntime")
    batches, inner = [], processor.process_batch

    def recording(requests):
        batches.append([r.msg.header.frame_id for r in requests])
        return inner(requests)
    processor.process_batch = recording
    return processor, batches


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_rig_bag_segments_every_camera_batched_and_byte_identical(tmp_path, bundle, storage):
    src = tmp_path / "rig"
    assert write_rig_bag(src, rig_cameras(), storage=storage) == [3, 3, 3]
    processor, batches = recording_processor(bundle)
    summary = replay_bag(src, tmp_path / "all", processor, progress=False, storage=storage)
    assert [c.image_topic for c in summary.cameras] == ["/front/image_raw", "/left/image_raw",
                                                        "/rear/image_raw/compressed"]
    assert [(c.frames_in, c.frames_out, c.failed) for c in summary.cameras] == [(3, 3, [])] * 3
    assert (summary.frames_in, summary.frames_out) == (9, 9)
    assert batches == [["front", "left", "rear"]] * 3  # one backend call per instant, across cameras
    assert [c.camera_info_topic for c in summary.cameras] == ["/front/camera_info", "/left/camera_info",
                                                              "/rear/camera_info"]
    together, raw_together = read_bag(tmp_path / "all"), raw_messages(tmp_path / "all")
    for k, (name, (height, width)) in enumerate(RIG_SIZES.items()):
        image = summary.cameras[k].image_topic
        alone = replay(src, tmp_path / name, bundle, image_topic=image, storage=storage)
        assert alone.frames_out == 3 and alone.output_topics == summary.cameras[k].output_topics
        single = raw_messages(tmp_path / name)
        assert set(single) == {t for t in raw_together if t.startswith(f"/{name}/")}
        for topic in summary.cameras[k].output_topics.values():
            assert topic.startswith(f"/{name}/segmentation/")
            assert raw_together[topic] == single[topic]  # byte-identical, same bag timestamps
            stamps = [s for s, _ in raw_together[topic]]
            assert stamps == sorted(stamps)
        assert {m.header.frame_id for _, m in together[f"/{name}/segmentation/overlay"]} == {name}
        mask = together[f"/{name}/segmentation/mask"][0][1]
        assert (mask.height, mask.width) == (height, width)
        np.testing.assert_array_equal(mask_pixels(mask), painted_scene(height, width, "trainid", seed=10 * k)[1])


def test_rig_max_batch_caps_the_batch(tmp_path, bundle):
    src = tmp_path / "rig"
    write_rig_bag(src, rig_cameras(2))
    processor, batches = recording_processor(bundle)
    summary = replay_bag(src, tmp_path / "out", processor, progress=False, max_batch=2)
    assert summary.frames_out == 6
    assert batches == [["front", "left"], ["rear", "front"], ["left", "rear"]]


def test_rig_camera_with_malformed_frames_fails_alone(tmp_path, bundle):
    from rosbags.rosbag2 import Writer

    src = tmp_path / "rig"
    frames = scenes(3)
    with Writer(src, version=9) as writer:
        conns = {side: writer.add_connection(f"/{side}/image_raw", "sensor_msgs/msg/Image", typestore=F.typestore)
                 for side in ("left", "right")}
        for i, (rgb, _) in enumerate(frames):
            stamp = T0 + i * 10**8
            header = F.header(stamp // 10**9, stamp % 10**9, "cam")
            writer.write(conns["left"], stamp, F.serialize(F.image(header, encode_rgb(rgb, "rgb8"))))
            good = encode_rgb(rgb, "rgb8")
            bad = F._t["sensor_msgs/msg/Image"](header=header, height=good.height, width=good.width, encoding="rgb8",
                                                is_bigendian=0, step=good.width, data=good.data)
            writer.write(conns["right"], stamp + 1, F.serialize(bad if i != 2 else F.image(header, good)))
    summary = replay(src, tmp_path / "out", bundle)
    left, right = summary.cameras
    assert (left.frames_in, left.frames_out, left.failed) == (3, 3, [])
    assert (right.frames_in, right.frames_out) == (3, 1)
    assert [(f.index, f.topic) for f in right.failed] == [(0, "/right/image_raw"), (1, "/right/image_raw")]
    assert "step 256 is smaller than width*bytes_per_pixel" in right.failed[0].reason
    assert len(summary.failed) == 2 and "2 cameras: 6 frames in, 4 out, 2 failed" in summary.format()
    masks = read_bag(tmp_path / "out")["/left/segmentation/mask"]
    for (_, mask), (_, expected) in zip(masks, frames):
        np.testing.assert_array_equal(mask_pixels(mask), expected)


def test_cli_repeated_image_topic_chooses_cameras(tmp_path, bundle, capsys):
    src, dst, report = tmp_path / "rig", tmp_path / "out", tmp_path / "summary.json"
    write_rig_bag(src, rig_cameras(1))
    args = ["bag", str(src), str(dst), "--model", str(bundle.path), "--backend", "onnxruntime", "--no-progress",
            "--id-space", "trainid", "--image-topic", "/rear/image_raw/compressed", "--image-topic", "front/image_raw",
            "--json", str(report)]
    assert cli_main(args) == 0
    summary = json.loads(report.read_text())
    assert [c["image_topic"] for c in summary["cameras"]] == ["/rear/image_raw/compressed", "/front/image_raw"]
    assert summary["image_topic"] == "/rear/image_raw/compressed, /front/image_raw" and summary["frames_out"] == 2
    assert {t.split("/")[1] for t in read_bag(dst)} == {"front", "rear"}
    assert "2 cameras: 2 frames in, 2 out, 0 failed" in capsys.readouterr().out
    with pytest.raises(InputError, match="--camera-info-topic names one camera's CameraInfo, but 3 image topics"):
        replay(src, tmp_path / "x", bundle, camera_info_topic="/front/camera_info")


def types_of(path: Path) -> dict[str, str]:
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def test_compressed_outputs_are_written_like_the_raw_ones(tmp_path, bundle):
    import cv2

    frames = scenes(3)
    src, dst = tmp_path / "camera", tmp_path / "small"
    write_camera_bag(src, [rgb for rgb, _ in frames], fps=FPS, frame_id="cam")
    config = ProcessorConfig(id_space="trainid", outputs={"mask", "mask/compressed", "overlay/compressed"})
    summary = replay(src, dst, bundle, config=config)
    assert summary.frames_out == 3
    prefix = "/camera/segmentation/"
    out, types, qos = read_bag(dst), types_of(dst), qos_of(dst)
    assert set(out) == {prefix + s for s in ("mask", "mask/compressed", "overlay/compressed", "label_info")}
    for name in ("mask/compressed", "overlay/compressed"):
        assert types[prefix + name] == "sensor_msgs/msg/CompressedImage"
        assert qos[prefix + name] == qos[prefix + "mask"]
        assert [(s, m.header.stamp, m.header.frame_id) for s, m in out[prefix + name]] == [
            (s, m.header.stamp, m.header.frame_id) for s, m in out[prefix + "mask"]]
    for (_, png), (_, raw), (_, expected) in zip(out[prefix + "mask/compressed"], out[prefix + "mask"], frames):
        assert png.format == "mono8; png compressed "
        decoded = cv2.imdecode(png.data, cv2.IMREAD_UNCHANGED)
        assert decoded.tobytes() == mask_pixels(raw).tobytes() == expected.tobytes()
    assert {m.format for _, m in out[prefix + "overlay/compressed"]} == {"rgb8; jpeg compressed bgr8"}


def test_cli_writes_compressed_outputs_only_when_named(tmp_path, bundle):
    src = tmp_path / "cam"
    write_camera_bag(src, [rgb for rgb, _ in scenes(1)])
    params = Path(__file__).resolve().parents[3] / "config" / "segmentation.yaml"  # compressed switches on
    base = ["bag", str(src), "--params-file", str(params), "--model", str(bundle.path), "--backend",
            "onnxruntime", "--no-progress"]
    assert cli_main(base[:2] + [str(tmp_path / "small")] + base[2:] +
                    ["--outputs", "mask/compressed,overlay/compressed"]) == 0
    assert set(read_bag(tmp_path / "small")) == {"/camera/segmentation/mask/compressed",
                                                 "/camera/segmentation/overlay/compressed",
                                                 "/camera/segmentation/label_info"}
    assert cli_main(base[:2] + [str(tmp_path / "default")] + base[2:]) == 0
    assert not any(t.endswith("/compressed") for t in read_bag(tmp_path / "default"))

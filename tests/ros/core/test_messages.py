"""Message factories and message readers (rosbags' real ROS 2 / ROS 1 classes)."""

from __future__ import annotations

import numpy as np
import pytest

from cityseg.errors import InputError
from cityseg.ros.core.images import raw_image
from cityseg.ros.core.messages import CameraInfoValues, RosbagsMessages, StatusValues, header_fields

F = RosbagsMessages()


def test_label_info_type_matches_vision_msgs():
    """The registered definition hashes like the real vision_msgs/msg/LabelInfo (Jazzy's generated code)."""
    assert F.typestore.hash_rihs01("vision_msgs/msg/LabelInfo") == \
        "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783"


def test_messages_survive_cdr_round_trip():
    header = F.header(10, 20, "cam")
    mask = np.arange(12, dtype=np.uint8).reshape(3, 4)
    messages = [F.image_from_array(header, mask, "mono8"),
                F.camera_info(header, CameraInfoValues.pinhole(3, 4)),
                F.label_info(header, [(0, "road"), (255, "unlabeled")], 0.0),
                F.diagnostics(header, [StatusValues(1, "/cam/segmentation", "slow", "unet", (("k", "v"),))])]
    for msg in messages:
        back = F.typestore.deserialize_cdr(F.serialize(msg), msg.__msgtype__)
        assert header_fields(back) == (10, 20, "cam")
    image = F.typestore.deserialize_cdr(F.serialize(messages[0]), "sensor_msgs/msg/Image")
    np.testing.assert_array_equal(image.data.reshape(3, 4), mask)
    label = F.typestore.deserialize_cdr(F.serialize(messages[2]), "vision_msgs/msg/LabelInfo")
    assert [(c.class_id, c.class_name) for c in label.class_map] == [(0, "road"), (255, "unlabeled")]
    diag = F.typestore.deserialize_cdr(F.serialize(messages[3]), "diagnostic_msgs/msg/DiagnosticArray")
    assert diag.status[0].level == 1 and diag.status[0].values[0].key == "k"


def test_camera_info_reads_ros2_and_ros1_spellings():
    from rosbags.typesys import Stores, get_typestore

    values = CameraInfoValues.pinhole(480, 640)
    ros2 = F.camera_info(F.header(0, 0, "c"), values)
    assert CameraInfoValues.from_message(ros2) == values
    ros1_store = get_typestore(Stores.ROS1_NOETIC)
    t = ros1_store.types
    roi = t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    ros1 = t["sensor_msgs/msg/CameraInfo"](
        header=t["std_msgs/msg/Header"](seq=1, stamp=t["builtin_interfaces/msg/Time"](sec=0, nanosec=0),
                                         frame_id="c"),
        height=480, width=640, distortion_model="plumb_bob", D=np.zeros(5), K=np.array(values.k),
        R=np.array(values.r), P=np.array(values.p), binning_x=0, binning_y=0, roi=roi)
    assert CameraInfoValues.from_message(ros1) == values


def test_camera_info_resize_follows_image_proc():
    values = CameraInfoValues.pinhole(400, 600)
    half = values.resized((400, 600), (200, 300))
    assert (half.height, half.width) == (200, 300)
    assert half.k[0] == pytest.approx(values.k[0] / 2) and half.k[5] == pytest.approx(values.k[5] / 2)
    assert half.p[3] == 0.0 and half.r == values.r and half.d == values.d
    assert values.resized((400, 600), (400, 600)) is values


def test_camera_info_with_wrong_matrix_size_is_an_input_error():
    msg = F.camera_info(F.header(0, 0, "c"), CameraInfoValues.pinhole(4, 4))
    msg.p = np.zeros(9)
    with pytest.raises(InputError, match="CameraInfo.p has 9 values, expected 12"):
        CameraInfoValues.from_message(msg)


def test_raw_image_fields():
    raw = raw_image(np.zeros((5, 7, 3), np.uint8), "rgb8")
    assert (raw.height, raw.width, raw.step, raw.data.size, raw.is_bigendian) == (5, 7, 21, 105, 0)
    big = raw_image(np.zeros((2, 3), ">u2"), "mono16")
    assert (big.step, big.is_bigendian) == (6, 1)

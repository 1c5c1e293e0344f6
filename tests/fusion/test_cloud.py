import numpy as np
import pytest

from cityseg.errors import InputError
from cityseg.fusion.cloud import FLOAT32, UINT16, CloudLayout, Field, make_cloud, read_xyz, write_labelled


def _columns(n, rng):
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    xyz[3] = np.nan
    return xyz, [("intensity", rng.random(n).astype(np.float32)), ("z", xyz[:, 2]),
                 ("ring", np.arange(n, dtype=np.uint16)), ("y", xyz[:, 1]), ("x", xyz[:, 0])]


@pytest.mark.parametrize("step,height,bigendian", [(None, 1, False), (32, 1, False), (48, 4, False), (22, 2, True)])
def test_any_field_order_step_and_organisation_reads_xyz(step, height, bigendian):
    xyz, cols = _columns(40, np.random.default_rng(0))
    layout, data = make_cloud(cols, point_step=step, height=height, bigendian=bigendian)
    got = read_xyz(layout, data)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(xyz))
    np.testing.assert_array_equal(got[~np.isnan(got)], xyz[~np.isnan(xyz)])


def test_row_padding_is_skipped():
    xyz, cols = _columns(12, np.random.default_rng(1))
    layout, data = make_cloud(cols, height=3)
    rows = np.frombuffer(data, np.uint8).reshape(3, -1)
    padded = np.concatenate([rows, np.full((3, 7), 0xAB, np.uint8)], 1).tobytes()
    padded_layout = CloudLayout(3, 4, layout.fields, layout.point_step, layout.row_step + 7)
    np.testing.assert_array_equal(read_xyz(padded_layout, padded), read_xyz(layout, data))


def test_non_float32_xyz_is_refused_naming_the_field():
    layout = CloudLayout(1, 2, (Field("x", 0, FLOAT32), Field("y", 4, FLOAT32), Field("z", 8, UINT16)), 12, 24)
    with pytest.raises(InputError, match="'z' is u2"):
        read_xyz(layout, bytes(24))
    with pytest.raises(InputError, match="'y' is missing"):
        read_xyz(CloudLayout(1, 1, (Field("x", 0, FLOAT32), Field("z", 4, FLOAT32)), 8, 8), bytes(8))


def test_short_data_is_refused():
    _, cols = _columns(5, np.random.default_rng(2))
    layout, data = make_cloud(cols)
    with pytest.raises(InputError, match="needs"):
        read_xyz(layout, data[:-1])


def test_labelled_cloud_keeps_input_bytes_and_appends_fields():
    xyz, cols = _columns(10, np.random.default_rng(3))
    layout, data = make_cloud(cols, point_step=22, height=2)
    label = np.arange(10, dtype=np.uint8)
    out, out_data = write_labelled(layout, data, label, label + 100, np.full(10, 2, np.uint8))
    assert (out.height, out.width) == (2, 5) and out.point_step == 28
    rows = np.frombuffer(out_data, np.uint8).reshape(10, 28)
    np.testing.assert_array_equal(rows[:, :22], np.frombuffer(data, np.uint8).reshape(10, 22))
    np.testing.assert_array_equal(rows[:, 22], label)
    np.testing.assert_array_equal(rows[:, 23], label + 100)
    assert [f.name for f in out.fields][-3:] == ["label", "confidence", "camera"]
    np.testing.assert_array_equal(read_xyz(out, out_data)[~np.isnan(xyz).any(1)], xyz[~np.isnan(xyz).any(1)])


def test_dropping_points_makes_an_unorganized_cloud():
    _, cols = _columns(10, np.random.default_rng(4))
    layout, data = make_cloud(cols, height=2)
    label = np.arange(10, dtype=np.uint8)
    keep = label % 3 != 0
    out, out_data = write_labelled(layout, data, label, label, label, keep)
    assert (out.height, out.width) == (1, keep.sum())
    rows = np.frombuffer(out_data, np.uint8).reshape(-1, out.point_step)
    np.testing.assert_array_equal(rows[:, layout.point_step], label[keep])


def test_existing_label_field_is_refused():
    layout, data = make_cloud([("x", np.zeros(2, np.float32)), ("y", np.zeros(2, np.float32)),
                               ("z", np.zeros(2, np.float32)), ("label", np.zeros(2, np.uint8))])
    with pytest.raises(InputError, match="label"):
        write_labelled(layout, data, *(np.zeros(2, np.uint8),) * 3)

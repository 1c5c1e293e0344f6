import numpy as np
import pytest

from cityseg.fusion.camera import CameraModel
from cityseg.fusion.grid import (
    GROUND_CLASSES,
    GridSpec,
    class_ids,
    cost_table,
    grid_from_masks,
    grid_from_points,
    parse_costs,
)
from cityseg.fusion.labelling import CameraMask
from cityseg.labels import class_space
from cityseg.synthetic.geometry import CAR, ROAD, SIDEWALK, SKY
from cityseg.synthetic.scene3d import Box, Scene, camera_pose, render_labels

CLASSES = [(c.id, c.name) for c in class_space("labelid").classes]


def test_cost_table_defaults_and_refusals():
    lut = cost_table(CLASSES)
    assert (lut[ROAD], lut[SIDEWALK], lut[CAR], lut[SKY]) == (0, 20, 100, -1)
    assert cost_table(CLASSES, {"road": 5})[ROAD] == 5 and cost_table(CLASSES, {"road": 5})[CAR] == -1
    with pytest.raises(ValueError, match="unknown class"):
        cost_table(CLASSES, {"roadd": 0})
    with pytest.raises(ValueError, match="-1..100"):
        cost_table(CLASSES, {"road": 101})
    with pytest.raises(ValueError, match="unknown class"):
        class_ids(CLASSES, ["road", "skyy"])


def test_points_grid_takes_the_highest_cost_per_cell():
    spec = GridSpec("base_link", 1.0, 4, 3, -2.0, -1.0)
    pts = np.array([[-1.5, -0.5, 0], [-1.5, -0.5, 1.0], [0.5, 0.5, 0], [1.5, 1.5, 0], [9.0, 0, 0], [0.5, -0.5, 0]])
    label = np.array([ROAD, CAR, SIDEWALK, SKY, CAR, 255], np.uint8)
    grid = grid_from_points(spec, pts, label, cost_table(CLASSES))
    assert grid.cost.shape == (3, 4)
    assert (grid.cost[0, 0], grid.label[0, 0]) == (100, CAR)  # the car beats the road under it
    assert (grid.cost[1, 2], grid.label[1, 2]) == (20, SIDEWALK)
    assert (grid.cost[2, 3], grid.label[2, 3]) == (-1, 255)  # sky has no cost: unknown
    assert (grid.cost == -1).sum() == 10


def test_camera_only_grid_projects_ground_classes_within_range():
    scene = Scene(boxes=[Box((8.0, -1.0, 0.0), (12.0, 1.0, 1.5), CAR)],
                  strips=[(-3.0, 3.0, ROAD), (3.0, 6.0, SIDEWALK)])
    model = CameraModel(640, 320, "plumb_bob", (), (320.0, 0, 319.5, 0, 320.0, 159.5, 0, 0, 1))
    pose = camera_pose(0.0, 0.0, 1.5, 0.0, pitch_deg=10.0)
    cam = CameraMask(model, pose.inverse(), render_labels(scene, model, pose))
    spec = GridSpec("base_link", 0.5, 80, 40, 0.0, -10.0)
    grid = grid_from_masks(spec, [cam], class_ids(CLASSES, GROUND_CLASSES), cost_table(CLASSES), max_range=25.0)
    centres = spec.cell_centres().reshape(40, 80, 3)
    x, y = centres[..., 0], centres[..., 1]
    road = (grid.label == ROAD)
    assert road.sum() > 100 and (np.abs(y[road]) < 3.0 + 0.5).all()
    assert (np.abs(y[grid.label == SIDEWALK]) > 2.5).all()
    assert (grid.label[(x > 8.5) & (x < 11.5) & (np.abs(y) < 0.5)] == 255).all()  # under / behind the car
    assert (grid.label[x > 26] == 255).all()  # beyond the range limit
    assert set(np.unique(grid.cost)) <= {-1, 0, 20}


def test_cost_overrides_merge_onto_the_defaults():
    lut = cost_table(CLASSES, overrides=parse_costs(["sidewalk:50", "vegetation:-1"]))
    assert (lut[SIDEWALK], lut[ROAD], lut[CAR]) == (50, 0, 100)
    with pytest.raises(ValueError, match="unknown class"):
        cost_table(CLASSES, overrides={"sidewalkk": 5})
    with pytest.raises(ValueError, match="not 'class name:cost'"):
        parse_costs(["sidewalk=5"])


@pytest.mark.parametrize("args, match", [
    ((0.0, 10, 10, 0.0, 0.0), "grid resolution must be a positive number of metres per cell, got 0.0"),
    ((float("nan"), 10, 10, 0.0, 0.0), "grid resolution must be a positive number of metres per cell, got nan"),
    ((0.2, 10, 10, float("nan"), 0.0), "grid origin must be two finite numbers"),
    ((0.2, 0, 10, 0.0, 0.0), "grid width and height must be positive numbers of cells, got 0x10"),
])
def test_a_bad_grid_is_refused_in_words_not_a_repr(args, match):
    with pytest.raises(ValueError, match=match) as info:
        GridSpec("base_link", *args)
    assert "GridSpec(" not in str(info.value)

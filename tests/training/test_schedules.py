"""Learning-rate and dropout schedules: hand-computed values, graph mode, serialisation, optimizer clock."""

from __future__ import annotations

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from cityseg.training.config import ScheduleConfig  # noqa: E402
from cityseg.training.schedules import (  # noqa: E402
    EpochLearningRate,
    dropout_rate_at,
    learning_rate_at,
    make_lr_schedule,
    validate_dropout_schedule,
)


def rates(schedule, steps):
    return [learning_rate_at(schedule, s) for s in steps]


def test_constant_is_the_base_rate_at_every_step():
    lr = EpochLearningRate("constant", 3e-4, steps_per_epoch=5, total_epochs=4)
    assert rates(lr, [0, 7, 19, 500]) == pytest.approx([3e-4] * 4)


def test_study_step_schedule_is_1e3_for_20_epochs_then_1e4():
    cfg = ScheduleConfig(lr="step", step_epochs=(20,), step_factor=0.1)
    lr = make_lr_schedule(cfg, 1e-3, steps_per_epoch=10, total_epochs=40)
    # epoch 19 = steps 190..199 (the 20th epoch) still at 1e-3; epoch 20 starts at step 200
    assert rates(lr, [0, 199, 200, 399]) == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])


def test_step_schedule_with_several_milestones_compounds_the_factor():
    lr = EpochLearningRate("step", 1.0, steps_per_epoch=2, total_epochs=10, step_epochs=(2, 5),
                           step_factor=0.5)
    assert rates(lr, [3, 4, 9, 10, 19]) == pytest.approx([1.0, 0.5, 0.5, 0.25, 0.25])


def test_linear_warmup_reaches_the_base_rate_after_warmup_epochs():
    lr = EpochLearningRate("constant", 0.1, steps_per_epoch=4, total_epochs=3, warmup_epochs=1)
    assert rates(lr, [0, 1, 2, 3, 4, 11]) == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])


def test_poly_matches_the_hand_computed_curve():
    lr = EpochLearningRate("poly", 1e-2, steps_per_epoch=10, total_epochs=10, poly_power=0.9,
                           min_lr=1e-4)
    t = np.array([0, 25, 50, 99]) / 100
    expected = 1e-4 + (1e-2 - 1e-4) * (1 - t) ** 0.9
    assert rates(lr, [0, 25, 50, 99]) == pytest.approx(expected, rel=1e-5)
    assert learning_rate_at(lr, 1000) == pytest.approx(1e-4)  # past the end: clipped at min_lr


def test_poly_with_warmup_counts_progress_after_the_warmup():
    lr = EpochLearningRate("poly", 1.0, steps_per_epoch=10, total_epochs=5, warmup_epochs=1,
                           poly_power=1.0)
    assert learning_rate_at(lr, 4) == pytest.approx(0.5)        # warm-up: (4 + 1) / 10
    assert learning_rate_at(lr, 10) == pytest.approx(1.0)       # t = 0
    assert learning_rate_at(lr, 30) == pytest.approx(0.5)       # t = 20 / 40
    assert learning_rate_at(lr, 49) == pytest.approx(1 / 40)


def test_cosine_runs_from_base_to_min_lr():
    lr = EpochLearningRate("cosine", 1e-3, steps_per_epoch=10, total_epochs=4, min_lr=1e-5)
    assert learning_rate_at(lr, 0) == pytest.approx(1e-3)
    assert learning_rate_at(lr, 20) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate_at(lr, 10) == pytest.approx(1e-5 + (1e-3 - 1e-5) * (1 + math.cos(math.pi / 4)) / 2)
    assert learning_rate_at(lr, 40) == pytest.approx(1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "exp"}, "unknown learning-rate schedule"),
    ({"steps_per_epoch": 0}, "steps_per_epoch"),
    ({"base_lr": 0.0}, "base_lr"),
])
def test_invalid_schedules_are_refused(kwargs, message):
    args = {"kind": "constant", "base_lr": 1e-3, "steps_per_epoch": 5, "total_epochs": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        EpochLearningRate(**args)


def test_schedule_runs_in_a_graph_with_a_tensor_step():
    lr = EpochLearningRate("step", 1e-3, steps_per_epoch=10, total_epochs=40)
    graph_lr = tf.function(lambda step: lr(step))
    assert float(graph_lr(tf.constant(205, tf.int64))) == pytest.approx(1e-4)
    assert float(graph_lr(tf.constant(5, tf.int64))) == pytest.approx(1e-3)


def test_schedule_round_trips_through_keras_serialisation():
    lr = EpochLearningRate("poly", 2e-3, steps_per_epoch=7, total_epochs=9, step_epochs=(3,),
                           warmup_epochs=0.5, poly_power=1.5, min_lr=1e-6)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(lr))
    assert isinstance(restored, EpochLearningRate)
    assert restored.get_config() == lr.get_config()
    assert rates(restored, [0, 3, 30, 62]) == pytest.approx(rates(lr, [0, 3, 30, 62]))


def test_optimizer_uses_the_schedule_at_its_iteration_counter():
    lr = EpochLearningRate("step", 0.5, steps_per_epoch=2, total_epochs=4, step_epochs=(1,))
    optimizer = keras.optimizers.SGD(learning_rate=lr)
    weight = keras.Variable(np.zeros(1, np.float32))
    seen = []
    for _ in range(4):
        seen.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
        optimizer.apply_gradients([(keras.ops.ones(1), weight)])
    assert seen == pytest.approx([0.5, 0.5, 0.05, 0.05])
    # SGD without momentum: w = -(0.5 + 0.5 + 0.05 + 0.05)
    assert float(weight.numpy()[0]) == pytest.approx(-1.1)


def test_dropout_rate_in_force_is_the_latest_entry_not_after_the_epoch():
    study = {13: 0.35, 22: 0.4}
    assert [dropout_rate_at(study, e) for e in (0, 12, 13, 21, 22, 39)] == [None, None, 0.35, 0.35, 0.4, 0.4]
    assert dropout_rate_at({}, 5) is None


@pytest.mark.parametrize("schedule", [{-1: 0.2}, {3: 1.0}, {3: -0.1}])
def test_invalid_dropout_schedules_are_refused(schedule):
    with pytest.raises(ValueError, match="schedule.dropout"):
        validate_dropout_schedule(schedule)


def test_dropout_scheduler_sets_every_scheduled_dropout_layer():
    from cityseg.models.layers import ScheduledDropout
    from cityseg.training.callbacks import DropoutScheduler
    from cityseg.training.run_state import RunState

    inputs = keras.Input((4, 4, 2))
    x = ScheduledDropout(0.3, name="d1")(inputs)
    x = keras.layers.Conv2D(2, 1)(x)
    outputs = ScheduledDropout(0.3, name="d2")(x)
    model = keras.Model(inputs, outputs)
    state = RunState()
    scheduler = DropoutScheduler({1: 0.35, 3: 0.4}, state)
    scheduler.set_model(model)
    seen = []
    for epoch in range(4):
        scheduler.on_epoch_begin(epoch)
        logs = {}
        scheduler.on_epoch_end(epoch, logs)
        seen.append((round(model.get_layer("d1").rate, 6), round(model.get_layer("d2").rate, 6),
                     round(logs["dropout_rate"], 6)))
    # before the first entry the layers keep (and the logs report) the rate the model was built with
    assert seen == [(0.3, 0.3, 0.3), (0.35, 0.35, 0.35), (0.35, 0.35, 0.35), (0.4, 0.4, 0.4)]
    assert state.dropout_rate == 0.4

"""The study's U-Net, checked against the facts of SEED-SPEC.md (filters, BN, dropout, head)."""

import keras
import pytest

from cityseg.models import FusedBatchNormalization, ModelError, ScheduledDropout, build_model

STUDY_CLASSES = 34  # the study trained on all 34 labelIds


def producer(layer):
    """The layer whose output feeds ``layer`` (single-input layers)."""
    return layer.input._keras_history.operation


def consumers(model, layer):
    return [other for other in model.layers
            if any(getattr(t, "_keras_history", None) and t._keras_history.operation is layer
                   for t in (other.input if isinstance(other.input, list) else [other.input]))]


@pytest.fixture(scope="module")
def study_unet():
    return build_model("unet", (128, 128, 3), STUDY_CLASSES)


def test_first_conv_has_1792_parameters(study_unet):
    first = next(l for l in study_unet.layers if isinstance(l, keras.layers.Conv2D))
    assert first.count_params() == 1792 == 3 * 3 * 3 * 64 + 64


def test_filter_sequence_and_conv_settings(study_unet):
    convs = [l for l in study_unet.layers if type(l) is keras.layers.Conv2D]
    assert [c.filters for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512, 1024, 1024,
                                          512, 512, 256, 256, 128, 128, 64, 64, STUDY_CLASSES]
    for conv in convs[:-1]:
        assert conv.kernel_size == (3, 3) and conv.padding == "same"
        assert conv.activation is keras.activations.relu
        assert isinstance(conv.kernel_initializer, keras.initializers.HeNormal)
        # each 3x3 conv is followed by BatchNorm
        assert [type(c) for c in consumers(study_unet, conv)] == [FusedBatchNormalization]
    head = convs[-1]
    assert head.kernel_size == (1, 1)
    ups = [l for l in study_unet.layers if isinstance(l, keras.layers.Conv2DTranspose)]
    assert [(u.filters, u.kernel_size, u.strides, u.padding) for u in ups] == [
        (f, (3, 3), (2, 2), "same") for f in (512, 256, 128, 64)]
    pools = [l for l in study_unet.layers if isinstance(l, keras.layers.MaxPooling2D)]
    assert [p.pool_size for p in pools] == [(2, 2)] * 4


def test_dropout_after_each_pool_and_each_upconv_none_in_bottleneck(study_unet):
    dropouts = [l for l in study_unet.layers if isinstance(l, ScheduledDropout)]
    assert len(dropouts) == 8 and all(d.rate == pytest.approx(0.3) for d in dropouts)
    sources = [type(producer(d)) for d in dropouts]
    assert sources == [keras.layers.MaxPooling2D] * 4 + [keras.layers.Conv2DTranspose] * 4
    # the decoder concatenates the skip after the dropout
    for d in dropouts[4:]:
        assert [type(c) for c in consumers(study_unet, d)] == [keras.layers.Concatenate]
    bottleneck = [l for l in study_unet.layers if l.name.startswith("bottleneck")]
    assert bottleneck and not any(isinstance(l, ScheduledDropout) for l in bottleneck)


def _expected_parameters(base=64, depth=4, classes=STUDY_CLASSES):
    """Parameter count of the architecture described in SEED-SPEC.md, computed from the text."""
    conv = lambda cin, cout, k=3: k * k * cin * cout + cout  # noqa: E731
    bn = lambda c: 4 * c  # noqa: E731  gamma, beta, moving mean, moving variance
    total, cin = 0, 3
    for level in range(depth + 1):  # encoder levels + bottleneck
        f = base * 2 ** level
        total += conv(cin, f) + bn(f) + conv(f, f) + bn(f)
        cin = f
    for level in reversed(range(depth)):
        f = base * 2 ** level
        total += conv(cin, f)  # 3x3 transposed conv
        total += conv(2 * f, f) + bn(f) + conv(f, f) + bn(f)  # after concatenating the skip
        cin = f
    dropout_rates = 2 * depth  # each ScheduledDropout holds its rate as one scalar variable
    return total + conv(cin, classes, k=1) + dropout_rates


def test_total_parameters_match_the_described_architecture(study_unet):
    assert study_unet.count_params() == _expected_parameters()


def test_output_is_float32_probabilities_at_input_resolution(study_unet):
    assert tuple(study_unet.output.shape) == (None, 128, 128, STUDY_CLASSES)
    assert study_unet.output.dtype == "float32"


def test_parameters_width_depth_dropout_batchnorm_upsampling():
    model = build_model("unet", (64, 96, 3), 19, base_filters=8, depth=3, dropout=0.0,
                        batch_norm=False, upsampling="resize")
    assert model.count_params() > 0
    assert not any(isinstance(l, (ScheduledDropout, keras.layers.BatchNormalization,
                                  keras.layers.Conv2DTranspose)) for l in model.layers)
    assert sum(isinstance(l, keras.layers.UpSampling2D) for l in model.layers) == 3
    assert tuple(model.output.shape) == (None, 64, 96, 19)


def test_bad_parameters_are_refused_with_the_reason():
    with pytest.raises(ModelError, match="upsampling='deconv'"):
        build_model("unet", (64, 64, 3), 19, upsampling="deconv")
    with pytest.raises(ModelError, match="dropout"):
        build_model("unet", (64, 64, 3), 19, dropout=1.0)
    with pytest.raises(ModelError, match=r"100x64 is not divisible by 16"):
        build_model("unet", (100, 64, 3), 19)

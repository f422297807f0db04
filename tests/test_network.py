"""The digital ShuffleNetV2: convolution kernels against XLA's, BN folding, clamps, widths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from memjax import convolution as conv
from memjax.errors import MemjaxError
from memjax.network import ShuffleNetConfig, build_model, fold_batchnorm
from memjax.network.shufflenet import ConvBN

TINY = {"stage_repeats": (1, 2, 1)}


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [12, 7])
def test_depthwise_matches_grouped_convolution(stride, size):
    key_x, key_k = jax.random.split(jax.random.key(0))
    x = jax.random.normal(key_x, (2, size, size, 5))
    kernel = jax.random.normal(key_k, (3, 3, 5))
    reference = jax.lax.conv_general_dilated(
        x,
        kernel[:, :, None, :],
        (stride, stride),
        ((1, 1), (1, 1)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=5,
    )
    np.testing.assert_allclose(
        conv.depthwise_conv3x3(x, kernel, stride), reference, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("stride", [1, 2])
def test_one_channel_conv_and_max_pool_match_xla(stride):
    x = jax.random.normal(jax.random.key(1), (2, 10, 10, 1))
    kernel = jax.random.normal(jax.random.key(2), (3, 3, 1, 4))
    xla = lambda x, k: jax.lax.conv_general_dilated(  # noqa: E731
        x, k, (stride, stride), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    ours = lambda x, k: conv.conv3x3(x, k, stride)  # noqa: E731
    np.testing.assert_allclose(ours(x, kernel), xla(x, kernel), rtol=1e-5, atol=1e-5)
    # its derivatives come from its own rule: reverse mode (in both arguments, and in the
    # kernel alone, as fine-tuning takes it) and forward mode must agree with XLA's (float32)
    loss = lambda f, argnums: jax.grad(lambda x, k: jnp.sum(jnp.tanh(f(x, k))), argnums)  # noqa: E731
    tangents = (jax.random.normal(jax.random.key(3), x.shape), jnp.ones_like(kernel))
    pairs = [(loss(ours, a)(x, kernel), loss(xla, a)(x, kernel)) for a in ((0, 1), 1)]
    pairs.append((jax.jvp(ours, (x, kernel), tangents), jax.jvp(xla, (x, kernel), tangents)))
    for got, expected in pairs:
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    pooled = jax.lax.reduce_window(
        x,
        -jnp.inf,
        jax.lax.max,
        (1, 3, 3, 1),
        (1, stride, stride, 1),
        ((0, 0), (1, 1), (1, 1), (0, 0)),
    )
    np.testing.assert_array_equal(conv.max_pool3x3(x, stride), pooled)


def test_channel_shuffle_interleaves_halves():
    x = jnp.arange(8.0).reshape(1, 1, 1, 8)
    assert conv.channel_shuffle(x).ravel().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def expected_parameter_count(width: float) -> int:
    """Counted by hand from Ma et al. (2018), Table 5: kernels plus BN scale and bias."""
    c2, c3, c4, features = {
        0.5: (48, 96, 192, 1024),
        1.0: (116, 232, 464, 1024),
        1.5: (176, 352, 704, 1024),
        2.0: (244, 488, 976, 2048),
    }[width]
    count = 9 * 1 * 24 + 2 * 24  # input unit: 3x3 conv of one gray channel, BN
    cin = 24
    for cout, repeats in ((c2, 4), (c3, 8), (c4, 4)):
        half = cout // 2
        count += (9 * cin + 2 * cin) + (cin * half + 2 * half)  # left: dw 3x3, 1x1
        count += (cin * half + 2 * half) + (9 * half + 2 * half) + (half * half + 2 * half)
        count += (repeats - 1) * (2 * (half * half + 2 * half) + 9 * half + 2 * half)
        cin = cout
    return count + cin * features + 2 * features + features * 7 + 7  # output unit


@pytest.mark.parametrize("width", [0.5, 1.0, 1.5, 2.0])
def test_widths_give_seven_logits(width):
    model = build_model(ShuffleNetConfig(width=width))
    count = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert count == expected_parameter_count(width)
    logits = model(np.zeros((2, 48, 48), np.uint8))
    assert logits.shape == (2, 7)
    assert np.all(np.isfinite(logits))


def randomise_batchnorm(model, seed=0):
    """Non-trivial statistics, so that folding has something to fold."""
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.BatchNorm):
            keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), hash(path) % 2**31), 4)
            shape = node.mean.shape
            node.mean[...] = 0.2 * jax.random.normal(keys[0], shape)
            node.var[...] = jax.random.uniform(keys[1], shape, minval=0.3, maxval=3.0)
            node.scale[...] = jax.random.uniform(keys[2], shape, minval=0.5, maxval=2.0)
            node.bias[...] = 0.2 * jax.random.normal(keys[3], shape)


def test_folding_batchnorm_preserves_outputs():
    model = build_model(ShuffleNetConfig(width=0.5))
    randomise_batchnorm(model)
    folded = fold_batchnorm(model)
    assert folded.config.bn_mode == "folded"
    assert not any(isinstance(n, nnx.BatchNorm) for _, n in nnx.iter_graph(folded))
    images = np.random.default_rng(0).integers(0, 256, (8, 48, 48)).astype(np.uint8)
    expected, got = model(images), folded(images)
    # float32 through ~50 layers: relative error ~1e-6 per layer; 1e-4 of the logit scale.
    scale = float(jnp.max(jnp.abs(expected)))
    np.testing.assert_allclose(got, expected, atol=1e-4 * scale, rtol=0)
    assert np.array_equal(np.argmax(got, -1), np.argmax(expected, -1))


def test_activations_stay_within_the_limiter():
    """Every stage output (ReLU and, with clamp_linear, depthwise) lies in [-limit, limit]."""
    config = ShuffleNetConfig(width=0.5, activation_limit=0.5, **TINY)
    model = build_model(config)
    randomise_batchnorm(model, seed=3)
    seen = []
    for _, node in nnx.iter_graph(model):
        if isinstance(node, ConvBN):
            original = type(node).__call__
            break

    def spy(self, x, activations=None):
        y = original(self, x, activations)
        seen.append((self.activation, float(jnp.min(y)), float(jnp.max(y))))
        return y

    ConvBN.__call__ = spy
    try:
        model(np.random.default_rng(1).integers(0, 256, (4, 48, 48)).astype(np.uint8) * 3)
    finally:
        ConvBN.__call__ = original
    assert len(seen) > 10
    for activation, low, high in seen:
        assert high <= 0.5
        assert low >= (0.0 if activation == "relu" else -0.5)
    assert max(high for _, _, high in seen) == pytest.approx(0.5)  # the clamp is reached


def test_input_scaling_maps_gray_levels_to_the_range():
    model = build_model(ShuffleNetConfig(width=0.5, input_range=(0.0, 0.8), **TINY))
    x = model.scale_input(np.array([[[0, 255]]], np.uint8))
    assert x.shape == (1, 1, 2, 1)
    np.testing.assert_allclose(x.ravel(), [0.0, 0.8])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"width": 0.75}, "width 0.75"),
        ({"bn_mode": "merged"}, "bn_mode"),
        ({"activation_limit": -1.0}, "activation_limit"),
        ({"input_range": (1.0, 0.0)}, "input_range"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_config_rejects_bad_values(fields, message):
    with pytest.raises(MemjaxError, match=message):
        ShuffleNetConfig(**fields)


def test_zero_init_branch_starts_basic_units_at_their_identity_half():
    model = build_model(ShuffleNetConfig(width=0.5, zero_init_branch=True, **TINY))
    unit = model.units[2]  # a basic unit of stage 3
    assert float(jnp.max(jnp.abs(unit.project.bn.scale[...]))) == 0.0
    x = jax.random.uniform(jax.random.key(0), (2, 6, 6, 96))
    out = unit(x)  # evaluation mode: the branch gives relu(0 + 0) = 0
    kept = x[..., :48]
    np.testing.assert_array_equal(out[..., 0::2], kept)
    np.testing.assert_array_equal(out[..., 1::2], 0.0)


def test_activations_seam_replaces_the_nonlinearities():
    """Passing the config's own software activations changes nothing, bit for bit; others
    act in every ReLU stage, linear stage and the max pool."""
    from memjax.network.shufflenet import Activations, software_activations

    model = build_model(ShuffleNetConfig(width=0.5, **TINY))
    images = np.random.default_rng(2).integers(0, 256, (2, 48, 48)).astype(np.uint8)
    plain = model(images)
    np.testing.assert_array_equal(model(images, None, software_activations(model.config)), plain)
    calls = []

    def counted(name, fn):
        return lambda x: (calls.append(name), fn(x))[1]

    own = software_activations(model.config)
    spied = Activations(
        counted("relu", own.relu), counted("linear", own.linear), counted("pool", own.max_pool)
    )
    np.testing.assert_array_equal(model(images, None, spied), plain)
    assert calls.count("pool") == 1 and calls.count("linear") >= 3 and calls.count("relu") >= 5

"""ShuffleNetV2 in Flax NNX, organised as the paper's four unit kinds.

Input unit (3x3 conv + BN + ReLU + max pool), basic unit (stride 1), down-sampling unit
(stride 2) and output unit (1x1 conv + BN + ReLU + global average pool + fully connected), after
N. Ma et al., ECCV 2018, and S. Wang et al., IEEE TCAD 2021 (the memristive version).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from memjax import convolution as conv
from memjax.network.config import ShuffleNetConfig

Activation = Literal["relu", "linear"]
_he_normal = nnx.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


@dataclasses.dataclass(frozen=True, eq=False)
class Activations:
    """The nonlinear operations of the network: the seam through which a circuit's transfer
    curves replace the software ones (circuit-aware training, ``memjax.hardware.twin``).

    Attributes:
        relu: (pre-activation) -> output of every ReLU stage, network units.
        linear: the same for the stages without ReLU (the depthwise convolutions).
        max_pool: the input unit's 3x3 / stride-2 max pool, (N, H, W, C) -> (N, H/2, W/2, C).
    """

    relu: Callable[[jax.Array], jax.Array]
    linear: Callable[[jax.Array], jax.Array]
    max_pool: Callable[[jax.Array], jax.Array]


def software_activations(config: ShuffleNetConfig) -> Activations:
    """The clamped ReLU, the optional symmetric clamp and the 3x3 max pool of ``config``."""
    limit, clamp_linear = config.activation_limit, config.clamp_linear
    return Activations(
        relu=lambda y: activate(y, "relu", limit, clamp_linear),
        linear=lambda y: activate(y, "linear", limit, clamp_linear),
        max_pool=lambda x: conv.max_pool3x3(x, stride=2),
    )


class ConvBN(nnx.Module):
    """A convolution, its batch norm (or the bias it was folded into), and the activation.

    ``kind`` is "stem" (full 3x3), "depthwise" (3x3 per channel) or "pointwise" (1x1).
    ``activation`` "relu" is the clamped ReLU of the diode + limiter circuit; "linear" is
    clamped symmetrically when ``config.clamp_linear`` is set.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kind: Literal["stem", "depthwise", "pointwise"],
        stride: int,
        activation: Activation,
        config: ShuffleNetConfig,
        *,
        rngs: nnx.Rngs,
    ):
        self.kind, self.stride, self.activation = kind, stride, activation
        self.limit = config.activation_limit
        self.clamp_linear = config.clamp_linear
        self.folded = config.bn_mode == "folded"
        shape = {
            "stem": (3, 3, in_channels, out_channels),
            "depthwise": (3, 3, out_channels),
            "pointwise": (in_channels, out_channels),
        }[kind]
        # He initialisation; for a (3, 3, C) depthwise kernel the fan-in is 9, as intended.
        self.kernel = nnx.Param(_he_normal(rngs.params(), shape))
        if self.folded:
            self.bias = nnx.Param(jnp.zeros((out_channels,)))
        else:
            self.bn = nnx.BatchNorm(
                out_channels, momentum=config.bn_momentum, epsilon=1e-5, rngs=rngs
            )

    def linear(self, x: jax.Array) -> jax.Array:
        """The convolution alone (no BN, no activation)."""
        kernel = self.kernel[...]
        if self.kind == "depthwise":
            return conv.depthwise_conv3x3(x, kernel, self.stride)
        if self.kind == "stem":
            return conv.conv3x3(x, kernel, self.stride)
        return conv.pointwise_conv(x, kernel)

    def __call__(self, x: jax.Array, activations: Activations | None = None) -> jax.Array:
        y = self.linear(x)
        y = y + self.bias[...] if self.folded else self.bn(y)
        if activations is None:
            return activate(y, self.activation, self.limit, self.clamp_linear)
        return (activations.relu if self.activation == "relu" else activations.linear)(y)


def activate(y: jax.Array, activation: Activation, limit: float | None, clamp_linear: bool):
    """Clamped ReLU (diode ReLU + output limiter) or the optional symmetric clamp."""
    if activation == "relu":
        return jnp.clip(y, 0.0, limit) if limit is not None else jax.nn.relu(y)
    if clamp_linear and limit is not None:
        return jnp.clip(y, -limit, limit)
    return y


class InputUnit(nnx.Module):
    """3x3 convolution + BN + ReLU + 3x3/2 max pool."""

    def __init__(self, config: ShuffleNetConfig, *, rngs: nnx.Rngs):
        self.conv = ConvBN(
            1, config.stem_channels, "stem", config.stem_stride, "relu", config, rngs=rngs
        )

    def __call__(self, x, activations: Activations | None = None):
        y = self.conv(x, activations)
        if activations is None:
            return conv.max_pool3x3(y, stride=2)
        return activations.max_pool(y)


class BasicUnit(nnx.Module):
    """Stride-1 unit: channel split; 1x1, depthwise 3x3, 1x1 on one half; concat; shuffle."""

    def __init__(self, channels: int, config: ShuffleNetConfig, *, rngs: nnx.Rngs):
        half = channels // 2
        self.expand = ConvBN(half, half, "pointwise", 1, "relu", config, rngs=rngs)
        self.depthwise = ConvBN(half, half, "depthwise", 1, "linear", config, rngs=rngs)
        self.project = ConvBN(half, half, "pointwise", 1, "relu", config, rngs=rngs)
        if config.zero_init_branch and config.bn_mode == "separate":
            self.project.bn.scale[...] = jnp.zeros((half,))

    def __call__(self, x, activations: Activations | None = None):
        kept, branch = jnp.split(x, 2, axis=-1)
        for layer in (self.expand, self.depthwise, self.project):
            branch = layer(branch, activations)
        return conv.channel_shuffle(jnp.concatenate([kept, branch], axis=-1))


class DownsamplingUnit(nnx.Module):
    """Stride-2 unit: both branches see the whole input; concat doubles the channels; shuffle."""

    def __init__(self, in_channels: int, out_channels: int, config, *, rngs: nnx.Rngs):
        half = out_channels // 2
        self.left_depthwise = ConvBN(
            in_channels, in_channels, "depthwise", 2, "linear", config, rngs=rngs
        )
        self.left_project = ConvBN(in_channels, half, "pointwise", 1, "relu", config, rngs=rngs)
        self.right_expand = ConvBN(in_channels, half, "pointwise", 1, "relu", config, rngs=rngs)
        self.right_depthwise = ConvBN(half, half, "depthwise", 2, "linear", config, rngs=rngs)
        self.right_project = ConvBN(half, half, "pointwise", 1, "relu", config, rngs=rngs)

    def __call__(self, x, activations: Activations | None = None):
        left = self.left_project(self.left_depthwise(x, activations), activations)
        right = x
        for layer in (self.right_expand, self.right_depthwise, self.right_project):
            right = layer(right, activations)
        return conv.channel_shuffle(jnp.concatenate([left, right], axis=-1))


class OutputUnit(nnx.Module):
    """1x1 convolution + BN + ReLU + global average pool + fully connected layer."""

    def __init__(self, in_channels: int, config: ShuffleNetConfig, *, rngs: nnx.Rngs):
        features = config.stage_channels[3]
        self.conv = ConvBN(in_channels, features, "pointwise", 1, "relu", config, rngs=rngs)
        self.dropout = nnx.Dropout(config.dropout)
        self.fc = nnx.Linear(features, config.num_classes, rngs=rngs)

    def __call__(
        self, x, dropout_key: jax.Array | None = None, activations: Activations | None = None
    ):
        pooled = jnp.mean(self.conv(x, activations), axis=(1, 2))
        return self.fc(self.dropout(pooled, rngs=dropout_key))


class ShuffleNetV2(nnx.Module):
    """The whole network: gray levels (N, 48, 48) or (N, 48, 48, 1) in 0..255 to 7 logits."""

    def __init__(self, config: ShuffleNetConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.input_unit = InputUnit(config, rngs=rngs)
        units = []
        in_channels = config.stem_channels
        for repeats, out_channels in zip(config.stage_repeats, config.stage_channels[:3]):
            units.append(DownsamplingUnit(in_channels, out_channels, config, rngs=rngs))
            units.extend(BasicUnit(out_channels, config, rngs=rngs) for _ in range(repeats - 1))
            in_channels = out_channels
        self.units = nnx.List(units)
        self.output_unit = OutputUnit(in_channels, config, rngs=rngs)

    def scale_input(self, gray_levels: jax.Array) -> jax.Array:
        """Map gray levels 0..255 onto ``config.input_range``, NHWC with one channel."""
        x = jnp.asarray(gray_levels, jnp.float32)
        if x.ndim == 3:
            x = x[..., None]
        low, high = self.config.input_range
        return low + (high - low) * (x / 255.0)

    def __call__(
        self,
        gray_levels: jax.Array,
        dropout_key: jax.Array | None = None,
        activations: Activations | None = None,
    ) -> jax.Array:
        """Logits; ``dropout_key`` is needed in training mode only (``model.train()``);
        ``activations`` replaces the software nonlinearities (None: those of the config)."""
        x = self.input_unit(self.scale_input(gray_levels), activations)
        for unit in self.units:
            x = unit(x, activations)
        return self.output_unit(x, dropout_key, activations)


def build_model(config: ShuffleNetConfig, seed: int = 0) -> ShuffleNetV2:
    """A freshly initialised model in evaluation mode."""
    model = ShuffleNetV2(config, rngs=nnx.Rngs(params=seed))
    model.eval()
    return model

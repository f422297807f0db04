"""Convolution and pooling as plain JAX functions on NHWC arrays.

Shared by the digital network and, later, by the crossbar circuits evaluated in convolution form,
so these functions import nothing beyond JAX.

Why shifted multiply-adds: on 2 CPU cores XLA's grouped convolution for a depthwise 3x3 is about
6x slower than nine shifted multiply-adds over a padded input (measured for this project); the
same trick gives the 3x3 max pool and the 3x3 convolution of a one-channel input.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def _taps(x: Float[Array, "n h w c"], stride: int, pad_value: float):
    """The nine (i, j, window) views of a 3x3 'SAME'-padded input at the given stride."""
    n, h, w, c = x.shape
    out_h, out_w = -(-h // stride), -(-w // stride)
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=pad_value)
    for i in range(3):
        for j in range(3):
            window = jax.lax.slice(
                padded,
                (0, i, j, 0),
                (n, i + stride * (out_h - 1) + 1, j + stride * (out_w - 1) + 1, c),
                (1, stride, stride, 1),
            )
            yield i, j, window


def depthwise_conv3x3(
    x: Float[Array, "n h w c"], kernel: Float[Array, "3 3 c"], stride: int = 1
) -> Float[Array, "n ho wo c"]:
    """Depthwise 3x3 convolution with zero 'SAME' padding (PyTorch ``padding=1``)."""
    out = None
    for i, j, window in _taps(x, stride, 0.0):
        term = window * kernel[i, j]
        out = term if out is None else out + term
    return out


def conv3x3(
    x: Float[Array, "n h w ci"], kernel: Float[Array, "3 3 ci co"], stride: int = 1
) -> Float[Array, "n ho wo co"]:
    """Full 3x3 convolution with zero 'SAME' padding."""
    if x.shape[-1] == 1:
        return _one_channel_conv3x3(x, kernel, stride)
    return _xla_conv3x3(x, kernel, stride)


def _xla_conv3x3(x, kernel, stride):
    return jax.lax.conv_general_dilated(
        x, kernel, (stride, stride), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _one_channel_conv3x3(x, kernel, stride):
    """Nine shifted multiply-adds forward (2x faster than XLA's convolution at batch 256);
    derivatives as XLA's convolution, whose transposes are 4-7x faster than those of the
    shifted slices (1.0x stem, 2 CPU cores, gradient in input and kernel: 16 vs 100 ms at
    batch 64)."""
    out = None
    for i, j, window in _taps(x, stride, 0.0):
        term = window * kernel[i, j, 0]
        out = term if out is None else out + term
    return out


def _one_channel_conv3x3_jvp(stride, primals, tangents):
    # symbolic zeros: fine-tuning differentiates the kernel only, and an instantiated zero
    # input tangent would cost one more convolution in every forward pass
    x, kernel = primals
    dx, dkernel = tangents
    out = _one_channel_conv3x3(x, kernel, stride)
    terms = [
        _xla_conv3x3(a, b, stride)
        for a, b, zero in ((dx, kernel, dx), (x, dkernel, dkernel))
        if not isinstance(zero, jax.custom_derivatives.SymbolicZero)
    ]
    return out, sum(terms[1:], terms[0]) if terms else jnp.zeros_like(out)


_one_channel_conv3x3.defjvp(_one_channel_conv3x3_jvp, symbolic_zeros=True)


def pointwise_conv(
    x: Float[Array, "n h w ci"], kernel: Float[Array, "ci co"]
) -> Float[Array, "n h w co"]:
    """1x1 convolution: one matrix product over the channel axis."""
    return jnp.einsum("nhwc,cd->nhwd", x, kernel)


def max_pool3x3(x: Float[Array, "n h w c"], stride: int = 2) -> Float[Array, "n ho wo c"]:
    """3x3 max pooling with -inf 'SAME' padding (PyTorch ``MaxPool2d(3, stride, padding=1)``)."""
    out = None
    for _, _, window in _taps(x, stride, -jnp.inf):
        out = window if out is None else jnp.maximum(out, window)
    return out


def channel_shuffle(x: Float[Array, "n h w c"], groups: int = 2) -> Float[Array, "n h w c"]:
    """ShuffleNet channel shuffle: interleave the channels of ``groups`` equal groups."""
    n, h, w, c = x.shape
    return x.reshape(n, h, w, groups, c // groups).swapaxes(3, 4).reshape(n, h, w, c)

"""Weights <-> conductances for one crossbar kernel (differential pair with a bias row).

A kernel computes y = sum_i w_i v_i + b. On the (M+1)x2 pair, column + carries G+_i and
column - carries G-_i, both within [G_min, G_max], and the bias row is driven at V_b:

    y = k * (sum_i (G+_i - G-_i) v_i + (G+_b - G-_b) V_b)

with k (ohm) the transimpedance of the read-out (R_f times the gain of the difference stage).
The mapping puts every weight on one side (the other stays at G_min), and chooses k so that the
largest |w| (or |b| / V_b) uses the whole range G_max - G_min.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from memjax.devices.validation import require, require_ordered, require_positive


class KernelConductances(eqx.Module):
    """A mapped kernel.

    Attributes:
        positive: G+ of the M input rows and, last, the bias row, S; shape (..., M + 1).
        negative: G- likewise, S.
        transimpedance: k, ohm: the read-out gain that turns conductance difference into weight.
        bias_voltage: V_b driving the bias row, V.
    """

    positive: Float[Array, "... m1"]
    negative: Float[Array, "... m1"]
    transimpedance: Float[Array, ...]
    bias_voltage: float


class ConductanceMapping(eqx.Module):
    """How weights become conductances.

    Attributes:
        g_min: lowest programmable conductance, S (> 0): 1 / R_off of the device.
        g_max: highest programmable conductance, S: 1 / R_on.
        bias_voltage: voltage on the bias row, V (> 0); V_p in the paper's design.
        levels: number of programmable conductance levels (2^n for n bits), or 0 for a
            continuum. Ran et al. (IEEE TNNLS 2022) found 2^8 levels the best trade-off.
    """

    g_min: float
    g_max: float
    bias_voltage: float = 1.0
    levels: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        owner = "ConductanceMapping"
        require_positive(owner, "g_min", self.g_min)
        require_ordered(owner, "g_min", self.g_min, "g_max", self.g_max)
        require_positive(owner, "bias_voltage", self.bias_voltage)
        require(owner, "levels", self.levels, lambda n: (n == 0) | (n >= 2), "0 or >= 2")

    def quantize(self, g):
        """Round conductances to the nearest of ``levels`` equally spaced levels."""
        if not self.levels:
            return g
        step = (self.g_max - self.g_min) / (self.levels - 1)
        return self.g_min + jnp.round((g - self.g_min) / step) * step

    def to_conductances(self, weights: Float[Array, "... m"], bias: Float[Array, ...]):
        """Map ``weights`` (..., M) and ``bias`` (...) onto one kernel each."""
        weights, bias = jnp.asarray(weights), jnp.asarray(bias)
        signed = jnp.concatenate([weights, (bias / self.bias_voltage)[..., None]], axis=-1)
        span = self.g_max - self.g_min
        largest = jnp.max(jnp.abs(signed), axis=-1)
        transimpedance = jnp.where(largest > 0, largest / span, 1.0 / span)
        delta = signed / transimpedance[..., None]
        positive = self.quantize(self.g_min + jnp.maximum(delta, 0.0))
        negative = self.quantize(self.g_min + jnp.maximum(-delta, 0.0))
        return KernelConductances(positive, negative, transimpedance, self.bias_voltage)

    @staticmethod
    def to_weights(kernel: KernelConductances):
        """The (weights, bias) that a mapped kernel computes: the inverse of the mapping."""
        delta = (kernel.positive - kernel.negative) * kernel.transimpedance[..., None]
        return delta[..., :-1], delta[..., -1] * kernel.bias_voltage

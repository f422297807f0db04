"""Tabulated steady-state transfer curves of the one-input nonlinear stages.

A ReLU/limiter or a symmetric clamp has fixed parameters across a whole network, and its
steady-state output is a function of one voltage. Solving its node (a 40-step bracketed
Newton iteration per neuron, ``steady_output``) for every neuron of every image costs far more
than the crossbars; sampling the same exact solution once on a fine uniform grid and
interpolating linearly gives it at the price of a gather. The interpolation error is measured
when the table is built, at every interval's midpoint against the exact solution, and kept
with the table (:attr:`TransferTable.max_error`).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

TABLE_POINTS = 2**15 + 1
"""Grid points over the op-amp rails (153 uV apart over +-2.5 V): measured interpolation
error of the super-diode ReLU and the clamp well below 1e-4 V (see ``max_error``)."""


class TransferTable(eqx.Module):
    """A sampled function of one voltage, interpolated linearly; constant beyond the grid.

    Attributes:
        start: the first grid voltage, V.
        step: grid spacing, V.
        values: the function on the grid, V.
        slopes: ``values[i + 1] - values[i]`` (the last repeats the one before), V: the
            interpolation reads two tables at one index, which XLA on a CPU gathers in about
            half the time of one table at two indices (measured: 3.0 vs 5.6 ms for 4.2 M
            neurons).
        max_error: largest |interpolated - exact| at the interval midpoints, V.
    """

    start: float
    step: float
    values: Float[Array, " n"]
    slopes: Float[Array, " n"]
    max_error: float

    @classmethod
    def build(cls, exact: Callable, low: float, high: float, points: int = TABLE_POINTS):
        grid = np.linspace(low, high, points)
        midpoints = 0.5 * (grid[1:] + grid[:-1])
        # one compiled evaluation: op by op, the exact solver's iterations cost seconds
        both = np.asarray(eqx.filter_jit(exact)(jnp.asarray(np.concatenate([grid, midpoints]))))
        values, at_midpoints = both[:points], both[points:]
        error = np.max(np.abs(at_midpoints - 0.5 * (values[1:] + values[:-1])))
        slopes = np.append(np.diff(values), values[-1] - values[-2])
        step = float((high - low) / (points - 1))
        return cls(float(low), step, jnp.asarray(values), jnp.asarray(slopes), float(error))

    def __call__(self, v):
        position = jnp.clip((v - self.start) * (1.0 / self.step), 0.0, self.values.shape[0] - 1.0)
        index = jnp.minimum(jnp.floor(position), self.values.shape[0] - 2.0)
        fraction = position - index
        index = index.astype(jnp.int32)
        return self.values[index] + self.slopes[index] * fraction

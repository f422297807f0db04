"""Waveforms as piecewise cubic Hermite interpolants: samples and their time derivatives.

A transient stage's solver saves its outputs and their time derivatives at its accepted
steps; between them the cubic Hermite interpolant is accurate to O(h^4), the order of the
solver's own dense output; the next stage evaluates it wherever its own solver needs its input.
Knots may differ per channel (``ts`` of shape (S, C)), so that channels from different stages
can be concatenated as wiring. Time is in the caller's unit (ns in
``memjax.hardware.transient``).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class Waveform(eqx.Module):
    """Samples of a (tensor-valued) signal with their time derivatives.

    Attributes:
        ts: strictly increasing sample times, shape (S,).
        values: the signal at ``ts``, shape (S, ...).
        slopes: d(signal)/dt at ``ts``, same shape as ``values``.
    """

    ts: Float[Array, " s"]
    values: Float[Array, "s ..."]
    slopes: Float[Array, "s ..."]

    def at(self, t) -> tuple[Array, Array]:
        """(value, slope) at the scalar time ``t`` (clamped to the knots' range). With knots
        per channel (``ts`` of shape (S, C)), channel c of the last axis uses ``ts[:, c]``."""
        if self.ts.ndim == 1:
            return hermite(self.ts, self.values, self.slopes, t)
        per_channel = jax.vmap(hermite, in_axes=(1, -1, -1, None), out_axes=-1)
        return per_channel(self.ts, self.values, self.slopes, t)

    @property
    def final(self) -> Array:
        return self.values[-1]


def hermite(ts, values, slopes, t):
    """(value, slope) at the scalar time ``t`` of the cubic Hermite interpolant through
    ``values`` and ``slopes`` on the knots ``ts`` (first axis), clamped to their range."""
    i = jnp.clip(jnp.searchsorted(ts, t, side="right") - 1, 0, ts.shape[0] - 2)
    h = ts[i + 1] - ts[i]
    s = jnp.clip((t - ts[i]) / h, 0.0, 1.0)
    y0, y1 = values[i], values[i + 1]
    d0, d1 = slopes[i] * h, slopes[i + 1] * h
    s2 = s * s
    slope = (6 * s2 - 6 * s) * (y0 - y1) + (3 * s2 - 4 * s + 1) * d0 + (3 * s2 - 2 * s) * d1
    return hermite_segment(y0, d0, y1, d1, s), slope / h


def hermite_segment(y0, d0, y1, d1, s):
    """The cubic Hermite interpolant of one interval at the fraction ``s`` (0..1) of it, from
    its end values ``y0``, ``y1`` and their slopes times the interval, ``d0``, ``d1``."""
    s2, s3 = s * s, s * s * s
    value = (2 * s3 - 3 * s2 + 1) * y0 + (s3 - 2 * s2 + s) * d0 + (-2 * s3 + 3 * s2) * y1
    return value + (s3 - s2) * d1


def integral(ts, values, slopes):
    """Integral over [ts[0], ts[-1]] of the cubic Hermite interpolant, along the first axis:
    h (y0 + y1) / 2 + h^2 (d0 - d1) / 12 per interval."""
    h = jnp.diff(ts).reshape((-1,) + (1,) * (values.ndim - 1))
    parts = h * (values[1:] + values[:-1]) / 2 + h**2 * (slopes[:-1] - slopes[1:]) / 12
    return jnp.sum(parts, axis=0)


@eqx.filter_jit
def sample(wave: Waveform, ts: Float[Array, " r"]) -> Array:
    """The interpolant's values at the times ``ts``, shape (R, ...)."""
    return jax.vmap(lambda t: wave.at(t)[0])(ts)


@eqx.filter_jit
def _largest_deviation(wave: Waveform, reference, ts):
    values = jax.vmap(lambda t: wave.at(t)[0])(ts)
    return jnp.max(jnp.abs(values - reference).reshape(ts.shape[0], -1), axis=-1)


def last_time_outside(wave: Waveform, reference, band: float, points: int = 257) -> float:
    """The last time any component of ``wave`` lies farther than ``band`` from ``reference``:
    found among the knots, then inside the interval that follows on ``points`` samples of the
    interpolant, linearly interpolated to the band (0 if it never leaves the band)."""
    deviation = np.max(
        np.abs(np.asarray(wave.values) - np.asarray(reference)).reshape(wave.ts.shape[0], -1),
        axis=-1,
    )
    outside = deviation > band
    if not outside.any():
        return 0.0
    index = int(np.flatnonzero(outside)[-1])
    ts = np.asarray(wave.ts)
    if index == ts.shape[0] - 1:
        return float(ts[-1])
    grid = np.linspace(ts[index], ts[index + 1], points)
    inside = np.asarray(_largest_deviation(wave, reference, jnp.asarray(grid)))
    last = int(np.flatnonzero(inside > band)[-1]) if (inside > band).any() else 0
    if last == points - 1:
        return float(grid[-1])
    a, b = inside[last], inside[last + 1]
    fraction = np.clip((a - band) / max(a - b, 1e-30), 0.0, 1.0)
    return float(grid[last] + fraction * (grid[last + 1] - grid[last]))

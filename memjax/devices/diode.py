"""Junction diode: Shockley equation with emission coefficient and series resistance.

i = I_s (exp(v_j / (n V_T)) - 1), v = v_j + i R_s. With R_s > 0 the terminal current has the
closed form i = (n V_T / R_s) W(I_s R_s / (n V_T) exp((v + I_s R_s) / (n V_T))) - I_s, with W the
Lambert function, evaluated here in the log domain (Wright omega) so that no exponential
overflows at any bias.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from memjax.devices.validation import require_non_negative, require_positive
from memjax.units import thermal_voltage


def wright_omega(z):
    """omega(z) = W(exp(z)) for real z, by Newton's method from a safe start (float32/64).

    Below z = -20, W(u) = u - u^2 + ... with u = exp(z) < 2e-9 is used directly; the Newton
    branch only ever sees z >= -20, so neither branch can produce NaN (nor NaN gradients).
    """
    z = jnp.asarray(z)
    tiny = z < -20.0
    z_newton = jnp.where(tiny, 0.0, z)
    # Start: exp(z) for small z (W(u) ~ u), z - log(z) for large z.
    w = jnp.where(
        z_newton < 1.0,
        jnp.exp(jnp.minimum(z_newton, 1.0)),
        z_newton - jnp.log(jnp.maximum(z_newton, 1.0)),
    )
    for _ in range(6):  # quadratic convergence: six steps reach float64 precision
        f = w + jnp.log(w) - z_newton
        w = w - f / (1.0 + 1.0 / w)
    u = jnp.exp(jnp.where(tiny, z, -20.0))
    return jnp.where(tiny, u * (1.0 - u), w)


class Diode(eqx.Module):
    """Parameters of one diode.

    Attributes:
        saturation_current: I_s, A (> 0).
        emission_coefficient: n (> 0).
        series_resistance: R_s, ohm (>= 0).
        temperature: junction temperature, K (> 0); sets V_T = k_B T / q.
    """

    saturation_current: float = 2.52e-9
    emission_coefficient: float = 1.752
    series_resistance: float = 0.568
    temperature: float = 300.0

    def __check_init__(self):
        owner = "Diode"
        require_positive(owner, "saturation_current", self.saturation_current)
        require_positive(owner, "emission_coefficient", self.emission_coefficient)
        require_non_negative(owner, "series_resistance", self.series_resistance)
        require_positive(owner, "temperature", self.temperature)

    @classmethod
    def d1n4148(cls) -> Diode:
        """1N4148 small-signal diode, the common SPICE model: I_s = 2.52 nA, n = 1.752,
        R_s = 0.568 ohm (physics notes section 4)."""
        return cls()

    @property
    def n_vt(self):
        return self.emission_coefficient * thermal_voltage(self.temperature)

    def junction_current(self, v_junction):
        """Shockley current for the junction voltage alone (A)."""
        return self.saturation_current * jnp.expm1(v_junction / self.n_vt)

    def current(self, v):
        """Terminal current (A) for terminal voltage ``v`` (V), series resistance included."""
        if not self.series_resistance:
            return self.junction_current(v)
        i_s, r_s, n_vt = self.saturation_current, self.series_resistance, self.n_vt
        z = jnp.log(i_s * r_s / n_vt) + (v + i_s * r_s) / n_vt
        return n_vt / r_s * wright_omega(z) - i_s

    def power(self, v):
        """Power dissipated (W) at terminal voltage ``v``."""
        return self.current(v) * v

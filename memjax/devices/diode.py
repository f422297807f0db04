"""Junction diode: Shockley equation with emission coefficient and series resistance.

i = I_s (exp(v_j / (n V_T)) - 1), v = v_j + i R_s. With R_s > 0 the terminal current has the
closed form i = (n V_T / R_s) W(I_s R_s / (n V_T) exp((v + I_s R_s) / (n V_T))) - I_s, with W the
Lambert function, evaluated here in the log domain (Wright omega) so that no exponential
overflows at any bias.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from memjax.devices.validation import require_non_negative, require_positive
from memjax.units import thermal_voltage


@jax.custom_jvp
def wright_omega(z):
    """omega(z) = W(exp(z)) for real z, float32/64, with d omega / dz = omega / (1 + omega).

    A region-wise start (W(u) ~ u - u^2 below z = -2, a cubic about z = 1 up to z = 3,
    z - ln z + ln z / z above) and two fourth-order Fritsch-Shafer-Crowley steps reach a
    relative error below 3e-13 for every z (R. M. Corless and co., "On the Wright omega
    function", 2002; P. W. Lawrence et al., ACM TOMS 2012). This sits in the innermost loop of
    every diode node, which is why it is not a plain Newton iteration. Below z = -20 the start
    u (1 - u), u = exp(z) < 2e-9, is exact to float64 and is returned as is.
    """
    z = jnp.asarray(z)
    clipped = jnp.maximum(z, 1.0)
    large = clipped - jnp.log(clipped) + jnp.log(clipped) / clipped
    middle = 1.0 + (z - 1.0) / 2.0 + (z - 1.0) ** 2 / 16.0 - (z - 1.0) ** 3 / 192.0
    u = jnp.exp(jnp.minimum(z, 0.0))
    w = jnp.where(z < -2.0, u * (1.0 - u), jnp.where(z < 3.0, middle, large))
    for _ in range(2):
        w = _fritsch_step(w, z)
    return jnp.where(z < -20.0, u * (1.0 - u), w)


def _fritsch_step(w, z):
    """One Fritsch-Shafer-Crowley iteration for w + ln w = z (fourth order)."""
    safe = jnp.maximum(w, jnp.finfo(w.dtype).tiny)
    r = z - safe - jnp.log(safe)
    wp = 1.0 + safe
    q = wp * (wp + 2.0 * r / 3.0)
    return safe * (1.0 + r / wp * (q - r / 2.0) / (q - r))


@wright_omega.defjvp
def _wright_omega_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    w = wright_omega(z)
    return w, w / (1.0 + w) * dz


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

    @classmethod
    def integrated(cls) -> Diode:
        """A small junction diode on the chip: I_s = 1e-15 A, n = 1, R_s = 10 ohm. Integrated
        small-signal junctions have I_s of the order 1e-16..1e-14 A and n ~ 1 (Sedra and
        Smith, Microelectronic Circuits, the diode chapter: I_s ~ 1e-15 A for a small-signal
        diode; Gray, Hurst, Lewis and Meyer, Analysis and Design of Analog Integrated
        Circuits, ch. 1); R_s is a guess that matters little at the uA currents of a
        low-power chip. A discrete 1N4148 (:meth:`d1n4148`) leaks 2.5 nA, which through the
        MOhm loads of a low-power chip is mV of error at 0.1 V signals."""
        return cls(saturation_current=1e-15, emission_coefficient=1.0, series_resistance=10.0)

    @property
    def n_vt(self):
        return self.emission_coefficient * thermal_voltage(self.temperature)

    def junction_current(self, v_junction):
        """Shockley current for the junction voltage alone (A)."""
        return self.saturation_current * jnp.expm1(v_junction / self.n_vt)

    def current(self, v):
        """Terminal current (A) for terminal voltage ``v`` (V), series resistance included."""
        if isinstance(self.series_resistance, int | float) and not self.series_resistance:
            return self.junction_current(v)
        return self.current_through(v, 0.0)  # a traced R_s must be > 0

    def current_through(self, v, resistance):
        """Current (A) through the diode in series with an external ``resistance`` (ohm, may be
        traced; R_s + resistance must be > 0), for the voltage ``v`` (V) across both."""
        i_s, n_vt = self.saturation_current, self.n_vt
        r = self.series_resistance + resistance
        z = jnp.log(i_s * r / n_vt) + (v + i_s * r) / n_vt
        return n_vt / r * wright_omega(z) - i_s

    def voltage_at(self, current):
        """The forward voltage (V) that passes ``current`` (A, > -I_s): the inverse of
        :meth:`current`, in closed form."""
        return self.n_vt * jnp.log1p(current / self.saturation_current) + (
            current * self.series_resistance
        )

    def power(self, v):
        """Power dissipated (W) at terminal voltage ``v``."""
        return self.current(v) * v

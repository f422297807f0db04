"""Memristor models as state equations: dx/dt = f(x, v) and i = g(x, v).

Every model uses one normalised state x in [0, 1] with x = 1 the most conductive (ON) state,
and keeps its published switching polarity. Units are SI: volts, amperes, ohms, seconds (the
state rate is in 1/s).

- :class:`HPLinearDrift`: D. B. Strukov, G. S. Snider, D. R. Stewart, R. S. Williams, "The
  missing memristor found", Nature 453, 80-83 (2008); windows of Y. N. Joglekar and
  S. J. Wolf, Eur. J. Phys. 30, 661 (2009), and Z. Biolek, D. Biolek, V. Biolkova,
  Radioengineering 18(2), 210 (2009). No threshold.
- :class:`VTEAM`: S. Kvatinsky, M. Ramadan, E. G. Friedman, A. Kolodny, "VTEAM: A General Model
  for Voltage-Controlled Memristors", IEEE TCAS-II 62(8), 786-790 (2015). Voltage thresholds.
- :class:`Yakopcic`: C. Yakopcic, T. M. Taha, G. Subramanyam, R. E. Pino, S. Rogers, "A Memristor
  Device Model", IEEE EDL 32(10), 1436-1438 (2011). Thresholds V_p and V_n, sinh I-V.
"""

from __future__ import annotations

import abc
from typing import Literal

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from memjax.devices.validation import (
    require,
    require_choice,
    require_non_negative,
    require_ordered,
    require_positive,
)

Scalar = Float[ArrayLike, ""]


class Memristor(eqx.Module):
    """A memristor model: current, state rate, and its read conductance.

    Subclasses are final; parameters are fields, documented in each class.
    """

    @abc.abstractmethod
    def current(self, x: Scalar, v: Scalar) -> Array:
        """Current through the device (A) at state ``x`` and voltage ``v`` (V)."""

    @abc.abstractmethod
    def _raw_rate(self, x: Scalar, v: Scalar) -> Array:
        """dx/dt (1/s) before the state is held inside [0, 1]."""

    @abc.abstractmethod
    def conductance(self, x: Scalar) -> Array:
        """Small-signal conductance at v -> 0 (S): what a low read voltage sees."""

    @abc.abstractmethod
    def state_for_conductance(self, g: Scalar) -> Array:
        """The state whose read conductance is ``g`` (clipped to the device's range)."""

    @property
    @abc.abstractmethod
    def thresholds(self) -> tuple[float, float] | None:
        """(negative, positive) voltages between which the state cannot change, or None."""

    def state_rate(self, x: Scalar, v: Scalar) -> Array:
        """dx/dt (1/s), zero where it would push x out of [0, 1]."""
        rate = self._raw_rate(x, v)
        outward = ((x >= 1.0) & (rate > 0)) | ((x <= 0.0) & (rate < 0))
        return jnp.where(outward, 0.0, rate)

    def power(self, x: Scalar, v: Scalar) -> Array:
        """Instantaneous power dissipated in the device (W)."""
        return self.current(x, v) * v

    @property
    def conductance_range(self) -> tuple[Array, Array]:
        """(G_min, G_max) in S: the read conductance at x = 0 and x = 1."""
        return self.conductance(0.0), self.conductance(1.0)


def _window(kind: str, p: int, x, i):
    if kind == "none":
        return jnp.ones_like(x)
    if kind == "joglekar":
        return 1.0 - (2.0 * x - 1.0) ** (2 * p)
    # Biolek: the window closes only on the side the current drives the state towards.
    step = jnp.where(i <= 0, 1.0, 0.0)
    return 1.0 - (x - step) ** (2 * p)


class HPLinearDrift(Memristor):
    """HP TiO2 linear ion drift (Strukov et al. 2008), R(x) = R_on x + R_off (1 - x).

    dx/dt = mu_v R_on / D^2 * i * window(x, i); positive current moves the doped region out
    (x up, toward R_on).

    Attributes:
        r_on: resistance of the fully doped device, ohm (Strukov 2008: 100).
        r_off: resistance of the undoped device, ohm (Strukov 2008: 16e3).
        thickness: film thickness D, m (Strukov 2008: 10e-9).
        mobility: dopant mobility mu_v, m^2/(V s) (Strukov 2008: 1e-14).
        window: "joglekar", "biolek" or "none" (hard bounds only).
        window_p: window exponent p >= 1 (flatter window for larger p).
    """

    r_on: float = 100.0
    r_off: float = 16e3
    thickness: float = 10e-9
    mobility: float = 1e-14
    window: Literal["joglekar", "biolek", "none"] = eqx.field(static=True, default="joglekar")
    window_p: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        owner = "HPLinearDrift"
        require_positive(owner, "r_on", self.r_on)
        require_ordered(owner, "r_on", self.r_on, "r_off", self.r_off)
        require_positive(owner, "thickness", self.thickness)
        require_positive(owner, "mobility", self.mobility)
        require_choice(owner, "window", self.window, ("joglekar", "biolek", "none"))
        require(owner, "window_p", self.window_p, lambda p: p >= 1, "an integer >= 1")

    def resistance(self, x):
        return self.r_on * x + self.r_off * (1.0 - x)

    def current(self, x, v):
        return v / self.resistance(x)

    def _raw_rate(self, x, v):
        i = self.current(x, v)
        k = self.mobility * self.r_on / self.thickness**2
        return k * i * _window(self.window, self.window_p, x, i)

    def conductance(self, x):
        return 1.0 / self.resistance(jnp.asarray(x, float))

    def state_for_conductance(self, g):
        x = (1.0 / g - self.r_off) / (self.r_on - self.r_off)
        return jnp.clip(x, 0.0, 1.0)

    @property
    def thresholds(self):
        return None


class VTEAM(Memristor):
    """VTEAM (Kvatinsky et al. 2015) in a normalised state, x = 1 at R_on.

    dx/dt = -k_off (v/v_off - 1)^alpha_off   for v > v_off > 0   (towards OFF)
          = 0                               for v_on <= v <= v_off
          = -k_on (v/v_on - 1)^alpha_on     for v < v_on < 0    (k_on < 0: towards ON)
    times an optional Joglekar window. I-V linear, R = R_on x + R_off (1 - x), or exponential,
    R = R_on exp(ln(R_off/R_on) (1 - x)).

    Attributes:
        r_on: ON resistance, ohm.
        r_off: OFF resistance, ohm.
        k_off: OFF switching rate, 1/s, > 0 (Kvatinsky's k_off in m/s over the state range).
        k_on: ON switching rate, 1/s, < 0.
        v_off: OFF threshold, V, > 0.
        v_on: ON threshold, V, < 0.
        alpha_off: OFF non-linearity exponent, > 0.
        alpha_on: ON non-linearity exponent, > 0.
        iv: "linear" or "exponential" current-voltage relation.
        window_p: Joglekar window exponent, or 0 for hard bounds only.
    """

    r_on: float = 50.0
    r_off: float = 1e3
    k_off: float = 5e-4 / 3e-9
    k_on: float = -10.0 / 3e-9
    v_off: float = 0.02
    v_on: float = -0.2
    alpha_off: float = 1.0
    alpha_on: float = 3.0
    iv: Literal["linear", "exponential"] = eqx.field(static=True, default="linear")
    window_p: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        owner = "VTEAM"
        require_positive(owner, "r_on", self.r_on)
        require_ordered(owner, "r_on", self.r_on, "r_off", self.r_off)
        require_positive(owner, "k_off", self.k_off)
        require(owner, "k_on", self.k_on, lambda k: k < 0, "a negative value (ON direction)")
        require_positive(owner, "v_off", self.v_off)
        require(owner, "v_on", self.v_on, lambda v: v < 0, "a negative threshold")
        require_positive(owner, "alpha_off", self.alpha_off)
        require_positive(owner, "alpha_on", self.alpha_on)
        require_choice(owner, "iv", self.iv, ("linear", "exponential"))
        require_non_negative(owner, "window_p", self.window_p)

    @classmethod
    def kvatinsky2015(cls) -> VTEAM:
        """The fit used as VTEAM's default by MemTorch (Lammie et al., Neurocomputing 2022),
        after Kvatinsky et al. 2015: D = 3 nm, k_off = 5e-4 m/s, k_on = -10 m/s, v_off = 0.02 V,
        v_on = -0.2 V, alpha_off = 1, alpha_on = 3, R_on = 50 ohm, R_off = 1 kohm."""
        return cls()

    @classmethod
    def with_thresholds(cls, v_threshold: float, **fields) -> VTEAM:
        """Symmetric thresholds +-v_threshold: the reconstruction in which the output limiter at
        V_p protects every crossbar (physics notes section 3). Other fields as in
        :meth:`kvatinsky2015` unless given."""
        return cls(v_off=v_threshold, v_on=-v_threshold, **fields)

    def resistance(self, x):
        if self.iv == "linear":
            return self.r_on * x + self.r_off * (1.0 - x)
        return self.r_on * jnp.exp(jnp.log(self.r_off / self.r_on) * (1.0 - x))

    def current(self, x, v):
        return v / self.resistance(x)

    def _raw_rate(self, x, v):
        above = jnp.maximum(v / self.v_off - 1.0, 0.0)
        below = jnp.maximum(v / self.v_on - 1.0, 0.0)
        rate = -self.k_off * above**self.alpha_off - self.k_on * below**self.alpha_on
        if self.window_p:
            rate = rate * _window("joglekar", self.window_p, x, 0.0)
        return rate

    def conductance(self, x):
        return 1.0 / self.resistance(jnp.asarray(x, float))

    def state_for_conductance(self, g):
        r = 1.0 / g
        if self.iv == "linear":
            x = (r - self.r_off) / (self.r_on - self.r_off)
        else:
            x = 1.0 - jnp.log(r / self.r_on) / jnp.log(self.r_off / self.r_on)
        return jnp.clip(x, 0.0, 1.0)

    @property
    def thresholds(self):
        return (self.v_on, self.v_off)


class Yakopcic(Memristor):
    """Yakopcic et al. (2011) generalised memristor model.

    i = a1 x sinh(b v) for v >= 0, a2 x sinh(b v) for v < 0;
    dx/dt = eta g(v) f(x), g(v) = A_p (e^v - e^{V_p}) above V_p, -A_n (e^{-v} - e^{V_n}) below
    -V_n, 0 between (v in volts as in the paper's fit); f(x) the motion-limiting windows with
    x_p, x_n, alpha_p, alpha_n.

    Attributes:
        a1: current scale for v >= 0, A.
        a2: current scale for v < 0, A.
        b: I-V curvature, 1/V.
        v_p: positive threshold V_p, V (> 0).
        v_n: negative threshold magnitude V_n, V (> 0).
        a_p: positive switching rate A_p, 1/s.
        a_n: negative switching rate A_n, 1/s.
        x_p: state above which positive motion slows, in (0, 1).
        x_n: 1 - x_n is the state below which negative motion slows, x_n in (0, 1).
        alpha_p: positive window decay.
        alpha_n: negative window decay.
        eta: +1 or -1, direction of motion for positive voltage.
    """

    a1: float = 0.17
    a2: float = 0.17
    b: float = 0.05
    v_p: float = 0.16
    v_n: float = 0.15
    a_p: float = 4000.0
    a_n: float = 4000.0
    x_p: float = 0.3
    x_n: float = 0.5
    alpha_p: float = 1.0
    alpha_n: float = 5.0
    eta: float = 1.0

    def __check_init__(self):
        owner = "Yakopcic"
        for name in ("a1", "a2", "b", "v_p", "v_n"):
            require_positive(owner, name, getattr(self, name))
        for name in ("a_p", "a_n", "alpha_p", "alpha_n"):
            require_non_negative(owner, name, getattr(self, name))
        for name in ("x_p", "x_n"):
            require(
                owner, name, getattr(self, name), lambda v: (v > 0) & (v < 1), "a value in (0, 1)"
            )
        require(owner, "eta", self.eta, lambda e: (e == 1) | (e == -1), "+1 or -1")

    @classmethod
    def yakopcic2011(cls) -> Yakopcic:
        """The fit of Yakopcic et al. 2011 quoted in the physics notes: a1 = a2 = 0.17 A,
        b = 0.05/V, V_p = 0.16 V, V_n = 0.15 V, A_p = A_n = 4000/s, x_p = 0.3, x_n = 0.5,
        alpha_p = 1, alpha_n = 5."""
        return cls()

    def current(self, x, v):
        a = jnp.where(v >= 0, self.a1, self.a2)
        return a * x * jnp.sinh(self.b * v)

    def _drive(self, v):
        positive = self.a_p * (jnp.exp(v) - jnp.exp(self.v_p))
        negative = -self.a_n * (jnp.exp(-v) - jnp.exp(self.v_n))
        return jnp.where(v > self.v_p, positive, jnp.where(v < -self.v_n, negative, 0.0))

    def _motion(self, x, v):
        slow_up = jnp.exp(-self.alpha_p * (x - self.x_p)) * ((self.x_p - x) / (1 - self.x_p) + 1)
        slow_down = jnp.exp(self.alpha_n * (x + self.x_n - 1)) * (x / (1 - self.x_n))
        up = jnp.where(x >= self.x_p, slow_up, 1.0)
        down = jnp.where(x <= 1 - self.x_n, slow_down, 1.0)
        return jnp.where(self.eta * v > 0, up, down)

    def _raw_rate(self, x, v):
        return self.eta * self._drive(v) * self._motion(x, v)

    def conductance(self, x):
        return 0.5 * (self.a1 + self.a2) * self.b * jnp.asarray(x, float)

    def state_for_conductance(self, g):
        return jnp.clip(g / (0.5 * (self.a1 + self.a2) * self.b), 0.0, 1.0)

    @property
    def conductance_range(self):
        # x = 0 conducts nothing in this model; G_min is set by the mapping, not the device.
        return self.conductance(0.0), self.conductance(1.0)

    @property
    def thresholds(self):
        return (-self.v_n, self.v_p)

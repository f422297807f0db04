"""Operational amplifier: single-pole macromodel with slew limit and rails that do not wind up.

The state is the output voltage y itself. With v_d = v+ - v- the differential input,

    dy/dt = S tanh(((A0 v_d - y) / tau_p) / S) * h(y, direction)

- tau_p = A0 / (2 pi GBW): the dominant pole; the closed loop with feedback factor beta then has
  tau = tau_p / (1 + A0 beta) ~ 1 / (2 pi beta GBW) (physics notes, section 4).
- S: slew-rate limit (V/s), applied smoothly so that small signals are untouched.
- h: 1 while y is inside the rails; it falls to 0 as y approaches the rail it is driven
  towards (over ``rail_softness``) and turns negative beyond it, so y settles on the rail
  from either side and leaves it at once when the drive reverses: no wind-up.

At steady state y = A0 v_d inside the rails, else the rail: the ideal op-amp is the limit
A0 -> infinity, GBW -> infinity.

One op-amp of a chip may differ from the design (:class:`OpAmpErrors`): an input offset V_os
in series with v+ (v_d becomes v_d + V_os) and its own DC gain A0'. The spread of A0 is taken
as a spread of the DC gain at a held gain-bandwidth product: A0 = gm r_o varies through r_o
while GBW = gm / (2 pi C_c) stays, so the dominant pole moves with A0 (tau_p' = A0' / (2 pi
GBW)) and the linear rate is 2 pi GBW (v_d + V_os - y / A0'). The static residual and
:meth:`OpAmp.static_output` then have the same roots, whatever the errors.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from memjax.devices.validation import (
    require,
    require_non_negative,
    require_ordered,
    require_positive,
)
from memjax.errors import MemjaxError

RAIL_PENALTY = 1e6
"""Slope (V/V) of the input-referred static residual beyond a rail (see
:meth:`OpAmp.output_rate`)."""


class OpAmp(eqx.Module):
    """Parameters of one op-amp.

    Attributes:
        open_loop_gain: DC open-loop gain A0, V/V (> 1). Default 1e5 (100 dB), generic.
        gain_bandwidth: gain-bandwidth product GBW, Hz. Default 1 GHz: the order the paper's
            137 ns for a whole network implies (physics notes section 4; an assumption).
        slew_rate: maximum |dy/dt|, V/s; ``math.inf`` for none. Default 1e9 V/s (1 V/ns).
        rail_low: lowest output voltage, V.
        rail_high: highest output voltage, V.
        rail_softness: width over which the output slows before a rail, V (> 0).
        output_resistance: open-loop output resistance R_o, ohm (>= 0), between the
            internal output y and the terminal. Modelled in the super-diode ReLU and max pool
            (it adds to the diode branch); the linear blocks (crossbar kernels, summing
            amplifiers) reject R_o > 0 for now rather than ignore it.
        quiescent_power: static supply (bias) power of the op-amp, W (>= 0), or None for the
            estimate from its GBW (:attr:`bias_power`). Constant while the chip is powered, so
            it is reported on its own line (per op-amp, per neuron, per network, energy over
            an inference) rather than integrated in the blocks' transient power, which holds
            the signal path: memristors, resistors, diodes and the op-amps' output stages.
        bias_figure_of_merit: FOM_S = GBW C_L / I_q, Hz F / A, of the op-amp's design, which
            sets its supply current I_q for a GBW into the load C_L. Default 0.5 (500 MHz pF
            / mA): the middle of the 300-1000 MHz pF / mA that recent CMOS amplifiers reach
            (Assaad and Silva-Martinez, IEEE JSSC 44(9), 2535-2542, 2009: recycling folded
            cascode against the folded cascode's ~100-300). An assumption of the chip.
        bias_load_capacitance: C_L, F, the load the GBW is specified into: the next stage's
            crossbar row or op-amp input and the wiring. Default 50 fF (tens of crossbar cells
            at ~1 fF and a short wire): an assumption.
    """

    open_loop_gain: float = 1e5
    gain_bandwidth: float = 1e9
    slew_rate: float = 1e9
    rail_low: float = -2.5
    rail_high: float = 2.5
    rail_softness: float = 0.01
    output_resistance: float = 0.0
    quiescent_power: float | None = None
    bias_figure_of_merit: float = 0.5
    bias_load_capacitance: float = 50e-15

    def __check_init__(self):
        owner = "OpAmp"
        require(owner, "open_loop_gain", self.open_loop_gain, lambda a: a > 1, "a gain > 1")
        require_positive(owner, "gain_bandwidth", self.gain_bandwidth)
        require_positive(owner, "slew_rate", self.slew_rate)
        require_ordered(owner, "rail_low", self.rail_low, "rail_high", self.rail_high)
        require_positive(owner, "rail_softness", self.rail_softness)
        require_non_negative(owner, "output_resistance", self.output_resistance)
        if self.quiescent_power is not None:
            require_non_negative(owner, "quiescent_power", self.quiescent_power)
        require_positive(owner, "bias_figure_of_merit", self.bias_figure_of_merit)
        require_positive(owner, "bias_load_capacitance", self.bias_load_capacitance)

    @classmethod
    def ideal(cls, **fields) -> OpAmp:
        """A near-ideal op-amp for the ideal limit: A0 = 1e9, GBW = 1e15 Hz, no slew limit,
        no bias power (the ideal limit, not an estimate: at 1e15 Hz the estimate would be
        hundreds of watts)."""
        defaults = {
            "open_loop_gain": 1e9,
            "gain_bandwidth": 1e15,
            "slew_rate": math.inf,
            "quiescent_power": 0.0,
        }
        return cls(**{**defaults, **fields})

    @property
    def bias_power(self) -> float:
        """Static supply power of one op-amp, W: ``quiescent_power`` when given, else
        (rail_high - rail_low) I_q with I_q = GBW C_L / FOM_S (the fields' sources above).
        The default, 1 GHz into 50 fF at 500 MHz pF / mA: I_q = 100 uA, 0.5 mW at +-2.5 V.
        A two-stage Miller op-amp read through g_m / I_D ~ 15 / V in moderate inversion
        (Silveira, Flandre and Jespers, IEEE JSSC 31(9), 1996) gives the same order."""
        if self.quiescent_power is not None:
            return self.quiescent_power
        current = self.gain_bandwidth * self.bias_load_capacitance / self.bias_figure_of_merit
        return (self.rail_high - self.rail_low) * current

    @property
    def pole_time_constant(self) -> float:
        """tau_p = A0 / (2 pi GBW), s."""
        return self.open_loop_gain / (2 * math.pi * self.gain_bandwidth)

    def output_rate(self, y, v_diff, static: bool = False, offset=None, open_loop_gain=None):
        """dy/dt (V/s) of the output ``y`` for the differential input ``v_diff``.

        ``static=True`` gives the equilibrium residual instead, input-referred (V):
        v_diff - y / A0 - 1e6 * (distance of y beyond a rail). dy/dt vanishes where
        y = A0 v_diff inside the rails or y sits on a rail; the residual vanishes at the same
        points inside the rails, and within |v_diff| / 1e6 of the rail in saturation. Unlike
        the clipped form y = clip(A0 v_diff), it is monotone, so Newton's method cannot jump
        between the rails of a high-gain loop.

        ``offset`` (V) and ``open_loop_gain`` (V/V), broadcast against ``y``: this op-amp's
        own input offset voltage, in series with its non-inverting input (v_diff + offset),
        and its own DC gain A0', for a chip whose op-amps differ (:class:`OpAmpErrors`);
        None: no offset and this record's A0. The gain-bandwidth product stays this record's
        (module docstring): the linear rate is 2 pi GBW (v_diff + offset - y / A0'), the
        residual v_diff + offset - y / A0' - 1e6 * (beyond a rail), whose roots are those of
        :meth:`static_output` with the same ``offset`` and ``open_loop_gain``."""
        if offset is not None:
            v_diff = v_diff + offset
        if static:
            gain = self.open_loop_gain if open_loop_gain is None else open_loop_gain
            beyond = jax.nn.relu(y - self.rail_high) - jax.nn.relu(self.rail_low - y)
            return v_diff - y / gain - RAIL_PENALTY * beyond
        if open_loop_gain is None:
            linear = (self.open_loop_gain * v_diff - y) / self.pole_time_constant
        else:  # the own pole A0' / (2 pi GBW): GBW held while A0 spreads
            pole = open_loop_gain / (2 * math.pi * self.gain_bandwidth)
            linear = (open_loop_gain * v_diff - y) / pole
        if isinstance(self.slew_rate, int | float) and math.isinf(self.slew_rate):
            rate = linear  # no slew limit (the ideal limit)
        else:
            rate = self.slew_rate * jnp.tanh(linear / self.slew_rate)
        headroom_up = _headroom((self.rail_high - y) / self.rail_softness)
        headroom_down = _headroom((y - self.rail_low) / self.rail_softness)
        return rate * jnp.where(rate > 0, headroom_up, headroom_down)

    def static_output(self, alpha, beta, offset=None, open_loop_gain=None):
        """The root y of the static residual (``output_rate(..., static=True)``) when the
        feedback makes the differential input affine in the output, v_diff = alpha - beta y
        (beta >= 0): alpha / (beta + 1/A0) inside the rails, and beyond a rail the exact root
        of the residual's penalty branch. Closed form, elementwise: what a whole network of
        linear op-amp stages needs at steady state.

        ``offset`` (V) and ``open_loop_gain`` (V/V), broadcast against ``alpha`` and ``beta``,
        are one op-amp's own input offset voltage (in series with its non-inverting input:
        v_diff = alpha + offset - beta y) and A0, for a chip whose op-amps differ
        (:class:`OpAmpErrors`); None: this record's A0 and no offset.

        Written as ``clip(inside) + (inside - clip(inside)) * loop / (loop + penalty)``, the
        same root as ``(alpha + penalty * rail) / (loop + penalty)`` beyond a rail, with the
        divisions on ``beta``'s shape only: in a network ``beta`` is one value per kernel
        and ``alpha`` one per neuron, and per-neuron divisions cost more than the crossbars'
        multiply-adds on a CPU."""
        gain = self.open_loop_gain if open_loop_gain is None else open_loop_gain
        loop = beta + 1.0 / gain
        inside = (alpha if offset is None else alpha + offset) * (1.0 / loop)
        clipped = jnp.clip(inside, self.rail_low, self.rail_high)
        return clipped + (inside - clipped) * (loop / (loop + RAIL_PENALTY))

    def steady_output(self, v_diff):
        """The output at rest for ``v_diff``: A0 v_diff limited to the rails."""
        return jnp.clip(self.open_loop_gain * v_diff, self.rail_low, self.rail_high)


def _headroom(distance):
    """1 - exp(-d) inside the rail (d >= 0, distance in units of the rail softness), and its
    tangent d beyond it: once-differentiable, so a rail is an attracting equilibrium from
    both sides. A factor that stayed 0 beyond the rail (``1 - exp(-max(d, 0))``) made a
    continuum of equilibria with a zero Jacobian there, on which an implicit solver's Newton
    iterations stall and chatter (measured: >1000 steps for a super-diode layer)."""
    inside = -jnp.expm1(-jnp.maximum(distance, 0.0))
    return jnp.where(distance >= 0, inside, distance)


class OpAmpErrors(eqx.Module):
    """How the op-amps of one chip differ from their design, one entry per op-amp.

    The arrays have one entry per op-amp and equal shapes. The blocks that take them
    (:class:`~memjax.circuits.PairKernel`, :class:`~memjax.circuits.amplifiers.
    SummingAmplifier`) read their op-amps along the trailing axis; a chip's network keeps
    them per stage (``CrossbarStage.opamp_errors``, (K, 4)). Only the DC behaviour differs:
    GBW, slew rate and rails stay the design's (module docstring: the pole moves with A0).

    Attributes:
        offset: input offset voltage, V, in series with the non-inverting input. CMOS op-amps
            of minimum-size input pairs: sigma of a few mV (Pelgrom et al., IEEE JSSC 1989
            mismatch scaling; the value is an assumption of the chip, not of the paper).
        open_loop_gain: the op-amp's own DC open-loop gain A0, V/V (> 1).
    """

    offset: jax.Array
    open_loop_gain: jax.Array

    def __check_init__(self):
        owner = "OpAmpErrors"
        require(owner, "open_loop_gain", self.open_loop_gain, lambda a: a > 1, "gains > 1")
        if jnp.shape(self.offset) != jnp.shape(self.open_loop_gain):
            raise MemjaxError(
                f"{owner}: offset {jnp.shape(self.offset)} and open_loop_gain "
                f"{jnp.shape(self.open_loop_gain)} must have one entry per op-amp each"
            )

    def columns(self, count: int):
        """(offsets, gains), each a tuple of the first ``count`` op-amps along the trailing
        axis (V, V/V)."""
        shape = jnp.shape(self.offset)
        if not shape or shape[-1] < count:
            raise MemjaxError(
                f"OpAmpErrors: expected at least {count} op-amps on the trailing axis, got "
                f"arrays of shape {shape}"
            )
        offsets = tuple(self.offset[..., i] for i in range(count))
        return offsets, tuple(self.open_loop_gain[..., i] for i in range(count))

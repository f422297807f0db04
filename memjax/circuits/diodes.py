"""Diode circuits: ReLU with the output limiter at V_p, and max pooling.

Each block has one output node o loaded to ground by R_L and by the crossbar rows it drives
(``row_conductance``, bit lines at virtual ground). Its voltage is algebraic (KCL with
diodes, solved to machine precision at every evaluation by a bracketed Newton iteration, with
implicit differentiation) unless ``node_capacitance`` > 0 makes it a state.

- :class:`DiodeReLU`, plain variant: the input drives D1 and a series resistor into o; the
  limiter diode D2 from o to the reference ``clamp_reference`` caps o near clamp_reference + V_D.
  Output ~ max(v - V_D, 0) R_L / (R_L + R_s): the forward drop and a gain error are the price
  of having no op-amp.
- :class:`DiodeReLU`, super-diode variant (``super_diode=True``): op-amp U1 (v+ = v, v- = o)
  drives o through D1 and a series resistance, giving o = max(v, 0) without the forward drop; the
  active limiter U2 (v+ = clamp_reference, v- = o) sinks current through D2 when o exceeds it,
  so o <= clamp_reference = V_p. With ``diode_limiter=True`` the limiter is D2 alone, from o
  to the reference V_p - V_D, as in the plain variant: the paper's "output limiter implemented
  by diode" behind an active ReLU (physics notes, section 1).
- :class:`DiodeMaxPool`: diode-OR of the inputs (o ~ max v_i - V_D), or one super diode per
  input (o = max v_i).

These topologies are reconstructions (physics notes, section 2): the paper names diode ReLU,
an output limiter at V_p and max pooling, not their schematics.
"""

from __future__ import annotations

import abc
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from memjax.circuits.block import Block, Power, refuse_load
from memjax.circuits.crossbar import output_stage_power
from memjax.devices.diode import Diode
from memjax.devices.opamp import OpAmp
from memjax.devices.validation import require_non_negative, require_positive
from memjax.errors import MemjaxError

NODE_ITERATIONS = 40
"""At most this many bracketed Newton iterations for an algebraic diode node: Newton
converges in a few, and bisection alone would narrow a 10 V bracket to 1e-11 V."""

NODE_TOLERANCE = {4: 0.0, 8: 1e-11}
"""The iterations stop once a Newton step or the bracket is below this, V, by float size in
bytes. Float32 (the steady state) runs all iterations: near its resolution (~1e-7 V around
1 V) a stopping test on the step ended early, measured 3e-6 V off the root."""


PLAIN_POOL_ITERATIONS = 8
"""Bracketed Newton iterations for a plain diode-OR max pool's node, started from its largest
input's diode alone (:meth:`DiodeMaxPool.steady_output`). Measured 2026-12-07 over 600,000
windows of 9 (uniform in the rails; clusters within ~0.03 V of the largest, where several
diodes conduct; all within 0.1 V of 0), against float64 roots: in float32, 4 iterations
leave 2e-4 V, 6 and 8 the float32 resolution (2.8e-7 V at most), as 40 from the largest
input did (2.9e-7 V), in 0.96 s against 3.0 s on 2 cores; the main job's plain-diode
steady state spent ~20 s of 23 s per 384 images in this pool."""


def bracketed_newton(f, low, high, guess=None, iterations: int = NODE_ITERATIONS):
    """(root, iterations) of a decreasing ``f`` in [low, high]: Newton steps from ``guess``
    (default: the midpoint) that leave the bracket are replaced by bisection, until a Newton
    step or the bracket is below :data:`NODE_TOLERANCE`, at most ``iterations``.
    No gradients (see :func:`solve_node`)."""

    def step(carry):
        count, lo, hi, o, _ = carry
        value, slope = jax.value_and_grad(f)(o)
        lo = jnp.where(value > 0, o, lo)  # current still flows in: the root is above
        hi = jnp.where(value > 0, hi, o)
        newton = o - value / jnp.where(slope < 0, slope, -1.0)
        # inclusive: at the root o has just become a bracket end and Newton stays on it (a
        # strict test bisected away from the root and crawled back: up to 40 iterations)
        inside = (newton >= lo) & (newton <= hi)
        new = jnp.where(inside, newton, 0.5 * (lo + hi))
        tolerance = NODE_TOLERANCE[o.dtype.itemsize]
        done = (inside & (jnp.abs(new - o) < tolerance)) | (hi - lo < tolerance)
        return count + 1, lo, hi, new, done

    def going(carry):
        count, *_, done = carry
        return (count < iterations) & ~done

    start = 0.5 * (low + high) if guess is None else guess
    lo, hi, start = jnp.broadcast_arrays(low, high, start)
    count, _, _, root, _ = jax.lax.while_loop(going, step, (0, lo, hi, start, jnp.zeros((), bool)))
    return root, count


def solve_node(current_in, low, high, guess=None, iterations: int = NODE_ITERATIONS):
    """The voltage o in [low, high] at which ``current_in(o)`` (decreasing in o) is zero, by
    :func:`bracketed_newton` (at most ``iterations``); gradients with respect to whatever
    ``current_in`` closes over come from the implicit function theorem.
    """

    def solve(f, _):
        return bracketed_newton(f, low, high, guess, iterations)[0]

    def tangent_solve(g, y):
        return y / g(jnp.ones_like(y))  # a Python 1.0 is float64 after an enable_x64 block

    return jax.lax.custom_root(current_in, 0.5 * (low + high), solve, tangent_solve)


LIMITED_NODE_ITERATIONS = 4
"""Bound-tightening iterations of :func:`solve_limited_node`. Measured over 200,000 pairs of
driver voltages uniform in [-2.6, 2.6] V (1N4148, 1 kohm, 10 kohm) the bracket is at most
2e-7 V wide after 4 (its midpoint within 9e-8 V of the root) and 1e-14 V after 5; in the
states a ReLU actually visits it is far narrower. 2e-7 V is 2e-5 % of V_p = 1 V."""


@eqx.filter_jit
def solve_limited_node(source: Diode, limiter: Diode, load_resistance, anode, cathode):
    """The node o fed from ``anode`` through ``source``, loaded by ``load_resistance`` to
    ground and drained through ``limiter`` into ``cathode`` (the diode ReLU's output node).

    Each iteration keeps one diode exact and replaces the other by its tangent, which makes the
    node a single diode in series with a Thevenin source: a closed form. A diode's current is
    convex in o, so its tangent never exceeds it: with the limiter linearised the root is an
    upper bound, with the source linearised a lower bound. The two bounds, each linearised at
    the other, close in on the root quadratically and can never lose it, at about the cost of
    four diode evaluations per iteration (a bracketed Newton iteration on o from a wide
    bracket needed 40). Gradients come from the implicit function theorem.
    """
    load_conductance = 1.0 / load_resistance

    def net_current(o):
        return source.current(anode - o) - o * load_conductance - limiter.current(o - cathode)

    def tangent(diode, v):
        return jax.jvp(diode.current, (v,), (jnp.ones_like(v),))

    def bounds(lo, hi):
        # Upper bound: source exact, limiter linearised at lo (its current into its cathode).
        i2, g2 = tangent(limiter, lo - cathode)
        conductance = load_conductance + g2
        v_th, r_th = (g2 * lo - i2) / conductance, 1.0 / conductance
        upper = v_th + r_th * source.current_through(anode - v_th, r_th)
        # Lower bound: limiter exact, source linearised at hi (its current into the node).
        i1, g1 = tangent(source, anode - hi)
        conductance = load_conductance + g1
        v_th, r_th = (i1 + g1 * hi) / conductance, 1.0 / conductance
        lower = v_th - r_th * limiter.current_through(v_th - cathode, r_th)
        return lower, upper

    def solve(f, _):
        # Linearisation points for the first round: the node with either diode left out.
        alone = source.current_through(anode, load_resistance) * load_resistance
        drained = -limiter.current_through(-cathode, load_resistance) * load_resistance
        lo, hi = bounds(jnp.minimum(alone, drained), jnp.maximum(alone, drained))
        for _ in range(LIMITED_NODE_ITERATIONS - 1):
            lower, upper = bounds(lo, hi)
            lo, hi = jnp.maximum(lo, lower), jnp.minimum(hi, upper)
        return 0.5 * (lo + hi)

    guess = jnp.zeros_like(anode - cathode)
    return jax.lax.custom_root(net_current, guess, solve, lambda g, y: y / g(1.0))


def _check_diode_block(owner: str, block) -> None:
    require_positive(owner, "load_resistance", block.load_resistance)
    require_positive(owner, "series_resistance", block.series_resistance)
    require_non_negative(owner, "node_capacitance", block.node_capacitance)
    require_non_negative(owner, "row_conductance", block.row_conductance)
    if block.super_diode and block.opamp is None:
        raise MemjaxError(f"{owner}.opamp: the super-diode variant needs an op-amp")


def total_load_conductance(block):
    """Everything that loads a diode block's output node to ground, S: R_L and the rows it
    drives (``row_conductance``)."""
    return 1.0 / block.load_resistance + block.row_conductance


def _in_series(diode: Diode, resistance) -> Diode:
    """The diode with an external resistor in series: the series resistances add."""
    return eqx.tree_at(lambda d: d.series_resistance, diode, diode.series_resistance + resistance)


_PASSIVE = "its output node is passive; its load is its load_resistance and row_conductance"


class _DiodeNode(Block):
    """Read-outs shared by the blocks whose output is one diode node o: the output is o,
    the power follows from o and the state, and no memristor is involved."""

    @abc.abstractmethod
    def _node(self, y, inputs): ...

    @abc.abstractmethod
    def _power_at(self, o, y, inputs): ...

    @property
    def _r_out(self):
        """The op-amps' output resistance, in series with the diodes they drive (super-diode
        variants only)."""
        return self.opamp.output_resistance if self.super_diode else 0.0

    def outputs(self, y, inputs):
        return self._node(y, inputs)[None]

    def memristor_voltages(self, y, inputs):
        return jnp.zeros(0)

    @property
    def loads_inputs(self):
        return not self.super_diode  # super diodes present op-amp inputs

    @property
    def drives_loads(self):
        return False  # the load is the block's own R_L and rows

    def input_currents(self, y, inputs):
        if self.super_diode:
            return jnp.zeros_like(inputs)
        return self._input_currents_at(self._node(y, inputs), y, inputs)

    @abc.abstractmethod
    def _input_currents_at(self, o, y, inputs): ...

    def power(self, y, inputs, load=None):
        refuse_load(type(self).__name__, load, _PASSIVE)
        return self._power_at(self._node(y, inputs), y, inputs)

    def observe(self, y, inputs, load=None):
        refuse_load(type(self).__name__, load, _PASSIVE)
        o = self._node(y, inputs)
        currents = (
            jnp.zeros_like(inputs) if self.super_diode else self._input_currents_at(o, y, inputs)
        )
        return o[None], self._power_at(o, y, inputs), jnp.zeros(()), currents


class DiodeReLU(_DiodeNode):
    """ReLU by diode with the output limiter (plain or super-diode variant).

    Attributes:
        diode: D1 and D2.
        load_resistance: R_L from the output to ground, ohm (a resistor; the rows the output
            drives are ``row_conductance``).
        clamp_reference: reference of the limiter, V: V_p for the active limiter (U2),
            V_p - V_D for a diode limiter (its diode adds V_D).
        opamp: the op-amp of U1 and U2 (super-diode variant only; U1 on
            ``rectifier_rail_low`` when that is set).
        super_diode: False for the plain diode, True for the op-amp precision rectifier.
        series_resistance: resistance in series with D1, ohm: it limits the current when the
            limiter holds the output, so that the limiter diode, not D1, sets the level.
        node_capacitance: C of the output node to ground, F (0: algebraic node).
        diode_limiter: with ``super_diode``, the limiter is the diode D2 alone (no U2); the
            plain variant's limiter is always a diode.
        reference_buffer: the op-amp that holds a diode limiter's reference (a follower, one
            per chip), or None for an ideal source. The equations see an ideal source either
            way; with a buffer, the current D2 sends into the reference is sunk by its output
            stage, which dissipates (V_ref - rail_low) i2 (counted under op-amps): without it
            that power would be counted nowhere (0.35 mW of a 2.3 mW limiting neuron at
            1 V, 2026-12-05).
        row_conductance: the crossbar rows the output drives, S (scalar, or one per neuron
            under a vmap): each of their cells runs from the node to a bit line held at
            virtual ground, so they load the node in parallel with R_L; their dissipation is
            the next crossbar's memristors', counted there, not here (0: the rows are driven
            from elsewhere; ``HardwareConfig.row_drive``).
        rectifier_rail_low: U1's negative supply, V (None: ``opamp``'s ``rail_low``;
            super-diode variant only). While the input is negative U1 rests on this rail
            with D1 off, and when it turns positive U1 must swing from it to the node plus
            D1's drop before any current flows, open loop at 2 pi GBW v_in: the rectifier's
            dead zone. On 0 V (a single-supply op-amp) that swing is ~0.5 V instead of ~1.5 V
            from -1 V (``HardwareConfig.relu_low_rail``). It must lie in [``opamp``'s
            rail_low, 0] so that U1 can still turn D1 off.
    """

    diode: Diode
    load_resistance: float
    clamp_reference: float
    opamp: OpAmp | None = None
    super_diode: bool = eqx.field(static=True, default=False)
    series_resistance: float = 1e3
    node_capacitance: float = 0.0
    diode_limiter: bool = eqx.field(static=True, default=False)
    reference_buffer: OpAmp | None = None
    row_conductance: float | Array = 0.0
    rectifier_rail_low: float | None = None

    def __check_init__(self):
        _check_diode_block("DiodeReLU", self)
        if self.reference_buffer is not None and self.active_limiter:
            raise MemjaxError(
                "DiodeReLU.reference_buffer: the active limiter's U2 drives D2; a reference "
                "buffer belongs to a diode limiter"
            )
        low = self.rectifier_rail_low
        if low is not None:
            if not self.super_diode:
                raise MemjaxError(
                    "DiodeReLU.rectifier_rail_low: U1's supply; the plain variant has no U1"
                )
            if not self.opamp.rail_low <= low <= 0.0:
                raise MemjaxError(
                    f"DiodeReLU.rectifier_rail_low = {low} V: must lie in [{self.opamp.rail_low}"
                    ", 0] V (within the op-amp's rails, low enough to turn D1 off)"
                )

    @property
    def rectifier(self) -> OpAmp:
        """U1: ``opamp`` on ``rectifier_rail_low`` (its own rails when that is None)."""
        if self.rectifier_rail_low is None:
            return self.opamp
        return dataclasses.replace(self.opamp, rail_low=self.rectifier_rail_low)

    @property
    def active_limiter(self) -> bool:
        """Whether U2 drives the limiter diode (else D2 goes to the fixed reference)."""
        return self.super_diode and not self.diode_limiter

    @property
    def _d1(self):
        return _in_series(self.diode, self.series_resistance + self._r_out)

    @property
    def _d2(self):
        return _in_series(self.diode, self._r_out) if self.active_limiter else self.diode

    def _drivers(self, y, inputs):
        """(anode of D1, cathode of D2) for the state y."""
        anode = y[0] if self.super_diode else inputs[0]
        if self.active_limiter:
            return anode, y[1]
        return anode, jnp.asarray(self.clamp_reference, inputs.dtype)

    def _net_current(self, o, y, inputs):
        anode, cathode = self._drivers(y, inputs)
        return (
            self._d1.current(anode - o)
            - o * total_load_conductance(self)
            - self._d2.current(o - cathode)
        )

    def _node(self, y, inputs):
        if self.node_capacitance:
            return y[-1]
        anode, cathode = self._drivers(y, inputs)
        return solve_limited_node(
            self._d1, self._d2, 1.0 / total_load_conductance(self), anode, cathode
        )

    def initial_state(self):
        count = int(self.super_diode) + int(self.active_limiter) + int(bool(self.node_capacitance))
        return jnp.zeros(count)

    def steady_output(self, v, load_conductance=None):
        """The output at steady state for the input ``v`` (V), elementwise over any shape;
        ``load_conductance`` (S, broadcast against ``v``): the node's load to ground, R_L and
        rows together (None: this block's own).

        The same static equations as ``vector_field(..., static=True)``: each op-amp's
        output is its closed-form static root (:meth:`OpAmp.static_output`) for a given node
        voltage, which leaves one monotone KCL equation in the node: what a whole network of
        ReLUs needs at steady state without a Newton solve over every op-amp state.
        """
        v = jnp.asarray(v)
        g = total_load_conductance(self) if load_conductance is None else load_conductance
        if not self.super_diode:
            cathode = jnp.asarray(self.clamp_reference, v.dtype)
            return jnp.vectorize(
                lambda v, g: solve_limited_node(self._d1, self._d2, 1.0 / g, v, cathode)
            )(v, g)
        amp = self.opamp

        def node(v, g):
            def net(o):
                u = self.rectifier.static_output(v - o, 0.0)
                if self.active_limiter:
                    w = amp.static_output(self.clamp_reference - o, 0.0)
                else:
                    w = self.clamp_reference
                return self._d1.current(u - o) - o * g - self._d2.current(o - w)

            guess = jnp.clip(v, 0.0, self.clamp_reference)
            return solve_node(net, amp.rail_low, amp.rail_high, guess)

        return jnp.vectorize(node)(v, g)

    def steady_guess(self, inputs):
        """The exact steady state: the node from :meth:`steady_output`, each op-amp at its
        static root for it."""
        o = self.steady_output(inputs[0])
        state = []
        if self.super_diode:
            state += [self.rectifier.static_output(inputs[0] - o, 0.0)]
        if self.active_limiter:
            state += [self.opamp.static_output(self.clamp_reference - o, 0.0)]
        if self.node_capacitance:
            state.append(o)
        return jnp.stack(state) if state else jnp.zeros(0, jnp.result_type(inputs))

    def vector_field(self, t, y, inputs, static=False):
        o = self._node(y, inputs)
        rates = []
        if self.super_diode:
            rates.append(self.rectifier.output_rate(y[0], inputs[0] - o, static))
        if self.active_limiter:
            rates.append(self.opamp.output_rate(y[1], self.clamp_reference - o, static))
        if self.node_capacitance:
            current = self._net_current(o, y, inputs)
            scale = total_load_conductance(self) if static else self.node_capacitance
            rates.append(current / scale)
        return jnp.stack(rates) if rates else jnp.zeros(0)

    def _input_currents_at(self, o, y, inputs):
        return self._d1.current(inputs[0] - o)[None]

    def _power_at(self, o, y, inputs):
        anode, cathode = self._drivers(y, inputs)
        i1, i2 = self._d1.current(anode - o), self._d2.current(o - cathode)
        # The op-amps' terminals: their output resistance (inside the D models) is theirs.
        anode = anode - self._r_out * i1
        if self.active_limiter:
            cathode = cathode + self._r_out * i2
        diodes = i1 * (anode - o) + i2 * (o - cathode)
        zero = jnp.zeros(())
        opamps = zero
        # D1's series resistor is inside the D1 model: its power is counted with the diode.
        if self.super_diode:
            opamps = opamps + output_stage_power(self.rectifier, anode, i1)
        if self.active_limiter:
            opamps = opamps + output_stage_power(self.opamp, cathode, -i2)
        elif self.reference_buffer is not None:  # the follower sinks what D2 delivers
            opamps = opamps + output_stage_power(self.reference_buffer, cathode, -i2)
        return Power(zero, o**2 / self.load_resistance, diodes, opamps)

    @property
    def state_scale(self):
        return self.opamp.pole_time_constant if self.opamp is not None else 1e-9


class DiodeMaxPool(_DiodeNode):
    """Max pooling of N inputs by diode-OR or by N super diodes sharing the output node.

    Attributes:
        diode: the diodes.
        count: number of pooled inputs N.
        load_resistance: R_L from the output to ground, ohm.
        opamp: the op-amp of each super diode (super-diode variant only).
        super_diode: False for the diode-OR, True for super diodes.
        series_resistance: resistance in series with each super diode's diode, ohm.
        node_capacitance: C of the output node to ground, F (0: algebraic node).
        row_conductance: the crossbar rows the output drives, S (scalar, or one per neuron
            under a vmap): each of their cells runs from the node to a bit line held at
            virtual ground, so they load the node in parallel with R_L; their dissipation is
            the next crossbar's memristors', counted there, not here (0: the rows are driven
            from elsewhere; ``HardwareConfig.row_drive``).
    """

    diode: Diode
    count: int = eqx.field(static=True)
    load_resistance: float
    opamp: OpAmp | None = None
    super_diode: bool = eqx.field(static=True, default=False)
    series_resistance: float = 1e3
    node_capacitance: float = 0.0
    row_conductance: float | Array = 0.0

    def __check_init__(self):
        _check_diode_block("DiodeMaxPool", self)

    @property
    def _d(self):
        if not self.super_diode:
            return self.diode
        return _in_series(self.diode, self.series_resistance + self._r_out)

    def _anodes(self, y, inputs):
        return y[: self.count] if self.super_diode else inputs

    def _net_current(self, o, y, inputs):
        return jnp.sum(self._d.current(self._anodes(y, inputs) - o)) - o * total_load_conductance(
            self
        )

    def _node(self, y, inputs):
        if self.node_capacitance:
            return y[-1]
        return _pool_node(self, y, inputs)

    def initial_state(self):
        return jnp.zeros(
            (self.count if self.super_diode else 0) + (1 if self.node_capacitance else 0)
        )

    def steady_output(self, inputs, load_conductance=None):
        """The output at steady state for ``inputs`` (V) of shape (..., count): one monotone
        KCL equation in the node per output, the super diodes' op-amps at their closed-form
        static roots (see :meth:`DiodeReLU.steady_output`, also for ``load_conductance``)."""
        g = total_load_conductance(self) if load_conductance is None else load_conductance

        def node(v, g):
            if self.super_diode:
                amp = self.opamp
                low, high = amp.rail_low, amp.rail_high
                anodes = lambda o: amp.static_output(v - o, 0.0)  # noqa: E731
                guess, iterations = jnp.clip(jnp.max(v), low, high), NODE_ITERATIONS
            else:
                low = jnp.minimum(jnp.min(v), 0.0) - 1.0
                high = jnp.maximum(jnp.max(v), 0.0) + 1.0
                anodes = lambda o: v  # noqa: E731
                # the largest input's diode alone into the load: a closed form just below
                # the root (the others add current), from which Newton climbs monotonically
                # (the net current is convex and decreasing in o)
                largest = self._d.current_through(jnp.max(v), 1.0 / g) / g
                guess, iterations = jnp.clip(largest, low, high), PLAIN_POOL_ITERATIONS
            return solve_node(
                lambda o: jnp.sum(self._d.current(anodes(o) - o)) - o * g,
                low,
                high,
                guess,
                iterations,
            )

        return jnp.vectorize(node, signature="(n),()->()")(jnp.asarray(inputs), g)

    def steady_guess(self, inputs):
        """The exact steady state: the node from :meth:`steady_output`, each super diode's
        op-amp at its static root for it."""
        o = self.steady_output(inputs)
        state = []
        if self.super_diode:
            state.append(self.opamp.static_output(inputs - o, 0.0))
        if self.node_capacitance:
            state.append(o[None])
        return jnp.concatenate(state) if state else jnp.zeros(0, jnp.result_type(inputs))

    def vector_field(self, t, y, inputs, static=False):
        o = self._node(y, inputs)
        rates = []
        if self.super_diode:
            rates.append(self.opamp.output_rate(y[: self.count], inputs - o, static))
        if self.node_capacitance:
            current = self._net_current(o, y, inputs)
            scale = total_load_conductance(self) if static else self.node_capacitance
            rates.append((current / scale)[None])
        return jnp.concatenate(rates) if rates else jnp.zeros(0)

    def _input_currents_at(self, o, y, inputs):
        return self._d.current(inputs - o)

    def _power_at(self, o, y, inputs):
        anodes = self._anodes(y, inputs)
        currents = self._d.current(anodes - o)
        anodes = anodes - self._r_out * currents  # the op-amps' terminals
        zero = jnp.zeros(())
        opamps = (
            jnp.sum(output_stage_power(self.opamp, anodes, currents)) if self.super_diode else zero
        )
        return Power(zero, o**2 / self.load_resistance, jnp.sum(currents * (anodes - o)), opamps)

    @property
    def state_scale(self):
        return self.opamp.pole_time_constant if self.opamp is not None else 1e-9


class DiodeClamp(_DiodeNode):
    """Precision symmetric limiter: keeps a linear stage's output within +-V_p.

    U1 (v+ = v, v- = o) drives the output node o through ``series_resistance``; o has the
    load R_L to ground. The active limiters U2 (v+ = +V_p, v- = o; D2 from o into U2) and U3
    (v+ = -V_p, v- = o; D3 from U3 into o) hold o at +-V_p when v goes beyond, and draw no
    current between. So o = clip(v, -V_p, V_p) without the diodes' forward drops: what a
    linear (depthwise) stage needs before the next crossbar, whose memristors must not see
    more than V_p. A reconstruction in the manner of the ReLU's super diode (physics notes,
    section 2); the paper names only the ReLU's limiter.

    Attributes:
        diode: D2 and D3.
        load_resistance: R_L from the output to ground, ohm (a resistor; the rows the output
            drives are ``row_conductance``).
        clamp_reference: V_p, V (> 0).
        opamp: the op-amp of U1 (on +-``driver_swing`` when that is set), U2 and U3.
        series_resistance: from U1's output to o, ohm: it lets a limiter take over the node.
        row_conductance: the crossbar rows the output drives, S (scalar, or one per neuron
            under a vmap): each of their cells runs from the node to a bit line held at
            virtual ground, so they load the node in parallel with R_L; their dissipation is
            the next crossbar's memristors', counted there, not here (0: the rows are driven
            from elsewhere; ``HardwareConfig.row_drive``).
        driver_swing: U1's rails, +-V (None: ``opamp``'s): on a supply just above V_p U1
            cannot push more into a limiter than the node's load takes at V_p (U2 and U3
            stay on ``opamp``'s rails, which they need to pull their diodes a forward drop
            beyond +-V_p). Between ``clamp_reference`` and ``opamp``'s rails.
    """

    diode: Diode
    load_resistance: float
    clamp_reference: float
    opamp: OpAmp
    series_resistance: float = 1e3
    row_conductance: float | Array = 0.0
    driver_swing: float | None = None

    super_diode = True  # its op-amps' output resistance is in series with their branches

    def __check_init__(self):
        require_positive("DiodeClamp", "load_resistance", self.load_resistance)
        require_positive("DiodeClamp", "series_resistance", self.series_resistance)
        require_positive("DiodeClamp", "clamp_reference", self.clamp_reference)
        require_non_negative("DiodeClamp", "row_conductance", self.row_conductance)
        swing = self.driver_swing
        if swing is None:
            return
        rails = min(self.opamp.rail_high, -self.opamp.rail_low)
        if not self.clamp_reference < swing <= rails:
            raise MemjaxError(
                f"DiodeClamp.driver_swing = {swing} V: must lie above clamp_reference "
                f"({self.clamp_reference} V) and within the op-amp's rails (+-{rails} V)"
            )

    @property
    def driver(self) -> OpAmp:
        """U1: ``opamp`` on +-``driver_swing`` (its own rails when that is None)."""
        if self.driver_swing is None:
            return self.opamp
        return dataclasses.replace(
            self.opamp, rail_high=self.driver_swing, rail_low=-self.driver_swing
        )

    @property
    def _d(self):
        return _in_series(self.diode, self._r_out) if self._r_out else self.diode

    def _net_current(self, o, u, w, z, g=None):
        g = total_load_conductance(self) if g is None else g
        return (
            (u - o) / (self.series_resistance + self._r_out)
            - o * g
            - self._d.current(o - w)
            + self._d.current(z - o)
        )

    def _solve(self, u, w, z):
        return _clamp_node(self, u, w, z)

    def _one_diode_node(self, u, w, z):
        """The node in closed form with U1's branch and R_L as a Thevenin source and each
        limiter diode's correction taken alone (at most one conducts; the other leaks ~I_s):
        a Newton start microvolts from the root."""
        r_s, r_l = self.series_resistance + self._r_out, 1.0 / total_load_conductance(self)
        r_th = r_s * r_l / (r_s + r_l)
        v_th = u * r_l / (r_s + r_l)
        drained = self._d.current_through(v_th - w, r_th)
        fed = self._d.current_through(z - v_th, r_th)
        return v_th + r_th * (fed - drained)

    def _node(self, y, inputs):
        return self._solve(y[0], y[1], y[2])

    def initial_state(self):
        return jnp.zeros(3)

    def vector_field(self, t, y, inputs, static=False):
        o = self._node(y, inputs)
        amp, v_p = self.opamp, self.clamp_reference
        return jnp.stack(
            [
                self.driver.output_rate(y[0], inputs[0] - o, static),
                amp.output_rate(y[1], v_p - o, static),
                amp.output_rate(y[2], -v_p - o, static),
            ]
        )

    def steady_output(self, v, load_conductance=None):
        """The output at steady state for the input ``v`` (V), elementwise: the op-amps at
        their closed-form static roots, one monotone KCL equation in the node
        (``load_conductance``: see :meth:`DiodeReLU.steady_output`)."""
        amp, v_p = self.opamp, self.clamp_reference
        g = total_load_conductance(self) if load_conductance is None else load_conductance

        def node(v, g):
            def net(o):
                u = self.driver.static_output(v - o, 0.0)
                w = amp.static_output(v_p - o, 0.0)
                z = amp.static_output(-v_p - o, 0.0)
                return self._net_current(o, u, w, z, g)

            guess = jnp.clip(v, -v_p, v_p)
            return solve_node(net, amp.rail_low, amp.rail_high, guess)

        return jnp.vectorize(node)(jnp.asarray(v), g)

    def steady_guess(self, inputs):
        """The exact steady state: the node from :meth:`steady_output`, each op-amp at its
        static root for it (Newton on the full state from rest does not converge when U1 and
        U3 sit on opposite rails)."""
        amp, v_p = self.opamp, self.clamp_reference
        o = self.steady_output(inputs[0])
        return jnp.stack(
            [
                self.driver.static_output(inputs[0] - o, 0.0),
                amp.static_output(v_p - o, 0.0),
                amp.static_output(-v_p - o, 0.0),
            ]
        )

    def _input_currents_at(self, o, y, inputs):
        return jnp.zeros_like(inputs)

    def _power_at(self, o, y, inputs):
        r_s = self.series_resistance + self._r_out
        i_1 = (y[0] - o) / r_s
        i_2, i_3 = self._d.current(o - y[1]), self._d.current(y[2] - o)
        # the op-amps' terminals: their output resistance is theirs
        t_1 = y[0] - self._r_out * i_1
        t_2, t_3 = y[1] + self._r_out * i_2, y[2] - self._r_out * i_3
        resistors = i_1 * (t_1 - o) + o**2 / self.load_resistance
        diodes = i_2 * (o - t_2) + i_3 * (t_3 - o)
        opamps = (
            output_stage_power(self.driver, t_1, i_1)
            + output_stage_power(self.opamp, t_2, -i_2)
            + output_stage_power(self.opamp, t_3, i_3)
        )
        return Power(jnp.zeros(()), resistors, diodes, opamps)

    @property
    def state_scale(self):
        return self.opamp.pole_time_constant


# The algebraic node solves, compiled as functions of their own: a stage's program traces a
# block's equations several times (its rate in the Rodas4 stages, its Jacobian, its read-outs,
# under vmaps and JVPs), and a jitted function is traced once per shape and transformed from
# its cached form. Shared steps on a pointwise stage of the shipped model (plain diodes, whose
# ReLU is solve_limited_node; 2026-12-07): tracing and lowering 4.3 -> 1.7 s, XLA's compile
# 5.4 -> 3.8 s, the stem's step 89 -> 72 ms (the same arithmetic; XLA inlines the calls).


@eqx.filter_jit
def _clamp_node(clamp: DiodeClamp, u, w, z):
    amp = clamp.opamp
    low, high = amp.rail_low, amp.rail_high
    guess = jnp.clip(clamp._one_diode_node(u, w, z), low, high)
    return solve_node(lambda o: clamp._net_current(o, u, w, z), low, high, guess)


@eqx.filter_jit
def _pool_node(pool: DiodeMaxPool, y, inputs):
    anodes = pool._anodes(y, inputs)
    low = jnp.minimum(jnp.min(anodes), 0.0) - 1.0
    high = jnp.maximum(jnp.max(anodes), 0.0) + 1.0
    # the largest input alone carrying the load current: a few Newton steps from the root
    largest = jnp.max(anodes)
    drop = pool._d.voltage_at(jnp.maximum(largest, 0.0) * total_load_conductance(pool))
    guess = jnp.clip(largest - drop, low, high)
    return solve_node(lambda o: pool._net_current(o, y, inputs), low, high, guess)

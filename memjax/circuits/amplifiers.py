"""Inverting summing amplifier and the blocks built from it.

One op-amp with its non-inverting input grounded, inputs v_i through conductances G_i and a bias
V_b through G_b into the summing node, feedback G_f:

    y = -(sum_i G_i v_i + G_b V_b) / G_f          (ideal op-amp)

- transimpedance amplifier: the crossbar columns of ``crossbar.py`` use this node equation;
- inverter: one input, G_1 = G_f;
- MBN, memristive batch norm (Wang et al. 2021): inference BN y = a x + c with memristors as
  input, feedback and bias elements, gain -G_1/G_f and offset -G_b V_b / G_f, so it realises
  a <= 0; a positive a is realised with the sign moved into the preceding crossbar (the
  reconstruction in the physics notes, section 2);
- global average pooling: N equal inputs G_f / N (an MFC column with uniform weights).

The summing node is algebraic unless ``node_capacitance`` > 0 makes it a state. A chip's op-amp
may have its own input offset and DC gain (``SummingAmplifier.opamp_errors``), taken by the
vector field, the closed-form steady guess and :func:`summing_amplifier_dc` alike.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from memjax.circuits.block import Block, Power
from memjax.circuits.crossbar import output_stage_power
from memjax.devices.opamp import OpAmp, OpAmpErrors
from memjax.devices.validation import (
    require,
    require_ideal_output,
    require_non_negative,
    require_positive,
)
from memjax.errors import MemjaxError


class SummingAmplifier(Block):
    """Inverting summing amplifier.

    Attributes:
        input_conductances: G_i of the N inputs, S (> 0).
        feedback_conductance: G_f, S (> 0).
        opamp: the op-amp.
        bias_conductance: G_b, S (>= 0; 0 for no bias input).
        bias_voltage: V_b driving G_b, V.
        memristive: whether G_i, G_f and G_b are memristors (MBN, GAP on a crossbar) or fixed
            resistors; decides where their power is counted.
        node_capacitance: C of the summing node to ground, F (0: algebraic node).
        opamp_errors: the op-amp as built on a chip, or None (as ``opamp``): arrays (..., 1),
            the leading axes those of ``feedback_conductance`` (none for one amplifier, (K,)
            for a layer of them); its input offset in V in series with v+, its own DC gain in
            V/V. GBW, slew rate and rails stay ``opamp``'s
            (:class:`~memjax.devices.opamp.OpAmpErrors`).
    """

    input_conductances: Float[Array, " n"]
    feedback_conductance: Float[Array, ""]
    opamp: OpAmp
    bias_conductance: Float[Array, ""] = 0.0
    bias_voltage: float = 1.0
    memristive: bool = eqx.field(static=True, default=False)
    node_capacitance: float = 0.0
    opamp_errors: OpAmpErrors | None = None

    def __check_init__(self):
        owner = "SummingAmplifier"
        require_ideal_output(owner, self.opamp)
        require(
            owner,
            "input_conductances",
            self.input_conductances,
            lambda g: g > 0,
            "conductances > 0",
        )
        require_positive(owner, "feedback_conductance", self.feedback_conductance)
        require_non_negative(owner, "bias_conductance", self.bias_conductance)
        require_non_negative(owner, "node_capacitance", self.node_capacitance)
        if self.opamp_errors is not None and jnp.shape(self.opamp_errors.offset)[-1:] != (1,):
            raise MemjaxError(
                f"{owner}.opamp_errors: arrays (..., 1) expected (one op-amp), got "
                f"{jnp.shape(self.opamp_errors.offset)}"
            )

    def _own_opamp(self):
        """(offset, gain) of this amplifier's op-amp as built; (None, None) as designed."""
        if self.opamp_errors is None:
            return None, None
        (offset,), (gain,) = self.opamp_errors.columns(1)
        return offset, gain

    def _all(self, inputs):
        g = jnp.append(jnp.asarray(self.input_conductances), self.bias_conductance)
        v = jnp.append(jnp.asarray(inputs), self.bias_voltage)
        return g, v

    def _node(self, y, inputs):
        if self.node_capacitance:
            return y[1]
        g, v = self._all(inputs)
        return (jnp.sum(g * v) + self.feedback_conductance * y[0]) / (
            jnp.sum(g) + self.feedback_conductance
        )

    def initial_state(self):
        return jnp.zeros(2 if self.node_capacitance else 1)

    def steady_guess(self, inputs):
        """The exact steady state in closed form (:meth:`OpAmp.static_output`)."""
        g, v = self._all(inputs)
        total = jnp.sum(g) + self.feedback_conductance
        y = self.opamp.static_output(
            -jnp.sum(g * v) / total, self.feedback_conductance / total, *self._own_opamp()
        )
        if not self.node_capacitance:
            return y[None]
        return jnp.stack([y, (jnp.sum(g * v) + self.feedback_conductance * y) / total])

    def vector_field(self, t, y, inputs, static=False):
        node = self._node(y, inputs)
        rates = [self.opamp.output_rate(y[0], -node, static, *self._own_opamp())]
        if self.node_capacitance:
            g, v = self._all(inputs)
            current = jnp.sum(g * (v - node)) + self.feedback_conductance * (y[0] - node)
            scale = jnp.sum(g) + self.feedback_conductance if static else self.node_capacitance
            rates.append(current / scale)
        return jnp.stack(rates)

    def outputs(self, y, inputs):
        return y[0:1]

    def memristor_voltages(self, y, inputs):
        if not self.memristive:
            return jnp.zeros(0)
        node = self._node(y, inputs)
        g, v = self._all(inputs)
        # a bias input of G_b = 0 is no device (until 2026-12-06 the average pool, which has
        # none, reported its unused 1 V bias reference as a memristor's voltage)
        return jnp.append(jnp.where(g > 0, v - node, 0.0), y[0] - node)

    @property
    def loads_inputs(self):
        return True

    def input_currents(self, y, inputs):
        node = self._node(y, inputs)
        return jnp.asarray(self.input_conductances) * (jnp.asarray(inputs) - node)

    def power(self, y, inputs, load=None):
        node = self._node(y, inputs)
        g, v = self._all(inputs)
        elements = jnp.sum(g * (v - node) ** 2) + self.feedback_conductance * (y[0] - node) ** 2
        i_out = self.feedback_conductance * (y[0] - node) + (0.0 if load is None else load[0])
        opamps = output_stage_power(self.opamp, y[0], i_out)
        zero = jnp.zeros(())
        if self.memristive:
            return Power(elements, zero, zero, opamps)
        return Power(zero, elements, zero, opamps)

    @property
    def state_scale(self):
        return self.opamp.pole_time_constant


def summing_amplifier_dc(block: SummingAmplifier, weighted_sum, offset=None, open_loop_gain=None):
    """Steady-state output of summing amplifiers from their weighted input sums
    ``sum_i G_i v_i``, elementwise (the conductances broadcast against ``weighted_sum``; the
    inputs along the last axis of ``input_conductances``): the static equations of
    :meth:`SummingAmplifier.vector_field` in closed form (:meth:`OpAmp.static_output`).
    ``offset``, ``open_loop_gain``: each op-amp's own, for a chip (:class:`OpAmpErrors`);
    both None: the block's own (``block.opamp_errors``; None there too: the design's)."""
    if offset is None and open_loop_gain is None:
        offset, open_loop_gain = block._own_opamp()
    g = jnp.asarray(block.input_conductances)
    total = jnp.sum(g, -1) + block.bias_conductance + block.feedback_conductance
    drive = weighted_sum + block.bias_conductance * jnp.asarray(block.bias_voltage)
    return block.opamp.static_output(
        drive * (-1.0 / total), block.feedback_conductance / total, offset, open_loop_gain
    )


def inverter(opamp: OpAmp, resistance: float = 10e3) -> SummingAmplifier:
    """Unity-gain inverting amplifier: y = -v (input and feedback resistance ``resistance``)."""
    g = 1.0 / resistance
    return SummingAmplifier(jnp.array([g]), jnp.asarray(g), opamp)


def memristive_batch_norm(
    scale: float, shift: float, opamp: OpAmp, g_min: float, g_max: float, bias_voltage: float
) -> SummingAmplifier:
    """MBN realising y = -|scale| x + shift with memristors within [g_min, g_max].

    The gain |scale| = G_1 / G_f and the offset shift = -G_b V_b / G_f (so V_b carries the
    sign: pass a negative ``bias_voltage`` reference for a positive shift). The largest of
    G_1, G_b is placed at g_max; a ratio that needs a conductance below g_min is an error.
    """
    gain, offset = abs(scale), -shift / bias_voltage
    if offset < 0:
        raise MemjaxError(
            f"MBN: shift {shift} and bias_voltage {bias_voltage} must have opposite signs "
            "(y = -G_1/G_f x - G_b V_b / G_f)"
        )
    g_f = g_max / max(gain, offset, 1.0)
    g_1, g_b = gain * g_f, offset * g_f
    for name, g in (("input", g_1), ("feedback", g_f)):
        if g < g_min:
            raise MemjaxError(f"MBN {name} conductance {g:.3g} S is below g_min = {g_min:.3g} S")
    return SummingAmplifier(
        jnp.array([g_1]), jnp.asarray(g_f), opamp, jnp.asarray(g_b), bias_voltage, memristive=True
    )


def global_average_pool(count: int, feedback_conductance: float, opamp: OpAmp, memristive=True):
    """y = -mean(v) over ``count`` inputs: equal input conductances G_f / count."""
    g = feedback_conductance / count
    return SummingAmplifier(
        jnp.full((count,), g), jnp.asarray(feedback_conductance), opamp, memristive=memristive
    )

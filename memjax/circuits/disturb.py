"""Memristor states that move while a crossbar computes: read disturb and write pulses.

:class:`DynamicCrossbar` adds the state x of every crossbar memristor to a kernel's state:
the kernel sees conductances device.conductance(x), and each device integrates
dx/dt = device.state_rate(x, v) with v the voltage across it (row minus bit line). With a
threshold device and every |v| below threshold, dx/dt is exactly zero and the weights keep
their values however long the circuit runs; above threshold they drift.

The kernel's node equations use the read conductance G(x) = i / v at small v, exact for the
linear I-V of HP and VTEAM; for Yakopcic's sinh I-V it is the small-signal approximation.

:class:`WriteCircuit` is the programming case: a voltage pulse through a series resistor onto
one memristor, with its nonlinear current i(x, v) solved exactly at every instant.

:func:`state_change_per_inference` and :func:`drift_over_inferences` take the voltage an
inference puts across the cells from a recorded waveform (e.g. a stage's output in the
whole-network transient) and integrate the cells' state equation through it: once, and
over many repetitions of the same inference.
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from memjax.circuits.block import Block, Power, refuse_load
from memjax.circuits.crossbar import PairKernel
from memjax.circuits.diodes import solve_node
from memjax.circuits.waveform import Waveform
from memjax.devices.memristor import Memristor
from memjax.devices.validation import require_positive
from memjax.errors import MemjaxError


class DynamicCrossbar(Block):
    """A :class:`PairKernel` whose memristors follow their state equation.

    Attributes:
        kernel: the kernel; its programmed conductances set the initial states.
        device: the memristor model of every crossbar cell.
    """

    kernel: PairKernel
    device: Memristor

    @property
    def _cells(self) -> int:
        return self.kernel.conductances.positive.shape[-1]

    def _kernel_at(self, x):
        cells = self._cells
        positive = self.device.conductance(x[:cells])
        negative = self.device.conductance(x[cells:])
        return eqx.tree_at(
            lambda k: (k.conductances.positive, k.conductances.negative),
            self.kernel,
            (positive, negative),
        )

    def _split(self, y):
        n = self.kernel.initial_state().shape[0]
        return y[:n], y[n:]

    def initial_state(self):
        c = self.kernel.conductances
        states = jnp.concatenate(
            [
                self.device.state_for_conductance(c.positive),
                self.device.state_for_conductance(c.negative),
            ]
        )
        return jnp.concatenate([self.kernel.initial_state(), states])

    def vector_field(self, t, y, inputs, static=False):
        circuit, x = self._split(y)
        kernel = self._kernel_at(x)
        d_circuit = kernel.vector_field(t, circuit, inputs, static)
        if static:  # the weights at rest are the ones programmed: states are held
            return jnp.concatenate([d_circuit, jnp.zeros_like(x)])
        voltages = kernel.memristor_voltages(circuit, inputs)
        return jnp.concatenate([d_circuit, self.device.state_rate(x, voltages)])

    def outputs(self, y, inputs):
        circuit, x = self._split(y)
        return self._kernel_at(x).outputs(circuit, inputs)

    def memristor_voltages(self, y, inputs):
        circuit, x = self._split(y)
        return self._kernel_at(x).memristor_voltages(circuit, inputs)

    @property
    def loads_inputs(self):
        return True

    def input_currents(self, y, inputs):
        circuit, x = self._split(y)
        return self._kernel_at(x).input_currents(circuit, inputs)

    def power(self, y, inputs, load=None):
        circuit, x = self._split(y)
        return self._kernel_at(x).power(circuit, inputs, load)

    def states(self, y):
        """The memristor states (G+ cells, then G- cells)."""
        return self._split(y)[1]

    @property
    def state_scale(self):
        return self.kernel.state_scale


class WriteCircuit(Block):
    """A pulse source v_s(t) through a series resistor R_s onto one memristor.

    The input is the source voltage; the state is x; the output is x (to compare trajectories).

    Attributes:
        device: the memristor.
        series_resistance: R_s, ohm (> 0): the source and access resistance.
        initial: the state before the pulse.
    """

    device: Memristor
    series_resistance: float
    initial: float = 0.0

    def __check_init__(self):
        require_positive("WriteCircuit", "series_resistance", self.series_resistance)

    def device_voltage(self, x, v_source):
        """v across the memristor: KCL (v_s - v) / R_s = i(x, v), solved exactly."""
        low = jnp.minimum(v_source, 0.0) - 1e-3
        high = jnp.maximum(v_source, 0.0) + 1e-3
        return solve_node(
            lambda v: (v_source - v) / self.series_resistance - self.device.current(x, v),
            low,
            high,
        )

    def initial_state(self):
        return jnp.array([self.initial])

    def vector_field(self, t, y, inputs, static=False):
        if static:
            return jnp.zeros_like(y)
        v = self.device_voltage(y[0], inputs[0])
        return self.device.state_rate(y[0], v)[None]

    def outputs(self, y, inputs):
        return y[0:1]

    def memristor_voltages(self, y, inputs):
        return self.device_voltage(y[0], inputs[0])[None]

    @property
    def loads_inputs(self):
        return True

    @property
    def drives_loads(self):
        return False  # its output is the memristor's state, not a voltage

    def input_currents(self, y, inputs):
        v = self.device_voltage(y[0], inputs[0])
        return ((inputs[0] - v) / self.series_resistance)[None]

    def power(self, y, inputs, load=None):
        refuse_load("WriteCircuit", load, "its output is the memristor's state, not a voltage")
        v = self.device_voltage(y[0], inputs[0])
        i = self.device.current(y[0], v)
        zero = jnp.zeros(())
        return Power(i * v, (inputs[0] - v) ** 2 / self.series_resistance, zero, zero)

    @property
    def state_scale(self):
        return 1e-9


def pulse(amplitude: float, start: float, width: float, rise: float) -> Callable:
    """A trapezoidal pulse (V) as a function of t (s): SPICE's PULSE(0 A start rise rise w)."""

    def drive(t):
        up = jnp.clip((t - start) / rise, 0.0, 1.0)
        down = jnp.clip((t - start - rise - width) / rise, 0.0, 1.0)
        return jnp.array([amplitude * (up - down)])

    return drive


def state_change_per_inference(
    device: Memristor,
    voltage: Waveform,
    states,
    time_unit: float = 1.0,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    max_steps: int = 100_000,
):
    """x(t_end) - x(t_0) of memristors in ``states`` while ``voltage`` (one value per
    memristor, broadcast against ``states``; times in ``time_unit`` s) lies across them:
    dx/dt = device.state_rate(x, v(t)), integrated adaptively (Tsit5, stopping at every
    knot of the waveform, where its interpolant's derivatives jump, and at least
    :data:`SAMPLES_PER_KNOT` times between). With a threshold
    device and |v| below threshold throughout, exactly zero."""
    states = jnp.asarray(states, voltage.values.dtype)
    solution = _through(_traced(device), voltage, states, time_unit, rtol, atol, max_steps)
    return solution - states


def drift_over_inferences(
    device: Memristor,
    voltage: Waveform,
    states,
    inferences,
    time_unit: float = 1.0,
    rtol: float = 1e-6,
    atol: float = 1e-12,
    max_steps: int = 10_000,
):
    """The states after each count in ``inferences`` (increasing, >= 0) of the same inference
    repeated, its voltage ``voltage`` as in :func:`state_change_per_inference`.

    The inference-averaged drift: the states follow dx/dn = P(x) - x in the inference count
    n, P the one-inference map, integrated in n on each memristor's own adaptive implicit
    steps (Kvaerno3: stiff near a bound). Exact where P(x) - x does not depend on x (a
    threshold device without a window, away from its bounds: then the drift after n
    inferences is n times one's); otherwise its error per inference is second order in one
    inference's change (tests/test_disturb.py holds it to the inferences done one by one).
    States are normalised to [0, 1] (:class:`Memristor`) and the result is held there: a
    step may cross a bound by its own error. Returns shape (len(inferences),) +
    states.shape."""
    inferences = jnp.asarray(inferences, voltage.values.dtype)
    if inferences.ndim != 1 or not bool(jnp.all(inferences >= 0)):
        raise MemjaxError("drift_over_inferences: inferences must be a 1-D array of counts >= 0")
    if not bool(jnp.all(jnp.diff(inferences) > 0)):
        raise MemjaxError("drift_over_inferences: inferences must be increasing")
    states = jnp.asarray(states, voltage.values.dtype)
    return _averaged(_traced(device), voltage, states, inferences, time_unit, rtol, atol, max_steps)


@eqx.filter_jit
def _averaged(device, voltage, states, inferences, time_unit, rtol, atol, max_steps):
    """:func:`drift_over_inferences` once its arguments are checked: each memristor on its
    own implicit steps in n (vectorised). Near a bound dx/dn -> -x at a rate of one per
    inference, stiff over 10^6 inferences for an explicit solver (it took ~3 inferences per
    step); an implicit one steps over it, and per memristor its Jacobian is a scalar."""
    values = jnp.broadcast_to(voltage.values, voltage.values.shape[:1] + states.shape)
    slopes = jnp.broadcast_to(voltage.slopes, values.shape)
    shape = states.shape

    def one(x0, values, slopes):
        wave = Waveform(voltage.ts, values, slopes)

        def per_inference(n, x, args):
            held = jnp.clip(x, 0.0, 1.0)  # past a bound (a step's error) no further out
            return _through(device, wave, held, time_unit, 1e-8, 1e-12, 100_000) - held

        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(per_inference),
            diffrax.Kvaerno3(),
            t0=0.0,
            t1=inferences[-1],
            dt0=jnp.minimum(1.0, inferences[-1]),
            y0=x0,
            saveat=diffrax.SaveAt(ts=inferences),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=max_steps,
        )
        return solution.ys

    flat = jax.vmap(one, in_axes=(0, 1, 1), out_axes=1)(
        states.reshape(-1), values.reshape(values.shape[0], -1), slopes.reshape(values.shape[0], -1)
    )
    return jnp.clip(flat.reshape(inferences.shape + shape), 0.0, 1.0)  # a step's error


SAMPLES_PER_KNOT = 8
"""The read-disturb solves step at least this often per interval of the voltage's knots."""


def _traced(device: Memristor) -> Memristor:
    """``device`` with its float parameters as arrays: one compiled solve serves every value
    of them (a threshold or rate study), where floats would be compile-time constants."""
    return jax.tree.map(lambda x: jnp.asarray(x) if isinstance(x, float) else x, device)


@eqx.filter_jit
def _through(device, voltage: Waveform, states, time_unit, rtol, atol, max_steps):
    """The states after the waveform's span (see :func:`state_change_per_inference`)."""

    def rate(t, x, args):
        v = jnp.broadcast_to(voltage.at(t)[0], x.shape)
        return device.state_rate(x, v) * time_unit

    knots = voltage.ts
    # steps end at every eighth of a knot interval at least: above a threshold the rate is
    # zero, so a step whose stages all fall below it would pass over a short excursion
    # (seen: 40 % of one inference's change missed at 0.1 % above threshold)
    fractions = jnp.arange(SAMPLES_PER_KNOT) / SAMPLES_PER_KNOT
    within = knots[:-1, None] + fractions * jnp.diff(knots)[:, None]
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(rate),
        diffrax.Tsit5(),
        t0=knots[0],
        t1=knots[-1],
        dt0=(knots[1] - knots[0]) / SAMPLES_PER_KNOT,
        y0=states,
        stepsize_controller=diffrax.PIDController(
            rtol=rtol, atol=atol, step_ts=within.reshape(-1), jump_ts=knots
        ),
        max_steps=max_steps,
        adjoint=diffrax.ForwardMode(),  # the implicit drift solve differentiates through it
    )
    return jnp.clip(solution.ys[-1], 0.0, 1.0)  # a step may cross a bound by its error

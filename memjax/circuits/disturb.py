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
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp

from memjax.circuits.block import Block, Power, refuse_load
from memjax.circuits.crossbar import PairKernel
from memjax.circuits.diodes import solve_node
from memjax.devices.memristor import Memristor
from memjax.devices.validation import require_positive


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

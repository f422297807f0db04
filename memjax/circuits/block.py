"""The interface every circuit block implements: one physical description, two solvers.

A block is a pure vector field ``dy/dt = vector_field(t, y, inputs)`` over its state y (op-amp
outputs, and node voltages where a capacitance makes them dynamic), plus algebraic read-outs:
the output voltages, the power split into memristors / resistors / diodes / op-amps, and the
voltage across every memristor. The transient integrates the vector field with diffrax; the
steady state solves vector_field = 0 for the same equations (``memjax.simulation``).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from memjax.errors import MemjaxError


def refuse_load(owner: str, load, reason: str) -> None:
    """Blocks whose outputs cannot supply a load current reject one, saying why."""
    if load is not None:
        raise MemjaxError(f"{owner}: cannot drive a load: {reason}")


class Power(eqx.Module):
    """Instantaneous power of a block, W, by kind of component: the signal path.

    ``opamps`` is the op-amps' class-B output stages; their static bias power
    (:attr:`~memjax.devices.opamp.OpAmp.bias_power`) is constant and reported apart."""

    memristors: Float[Array, ""]
    resistors: Float[Array, ""]
    diodes: Float[Array, ""]
    opamps: Float[Array, ""]

    @property
    def total(self):
        return self.memristors + self.resistors + self.diodes + self.opamps

    @classmethod
    def sum(cls, powers) -> Power:
        """The kind-by-kind sum of several blocks' powers."""
        return cls(*(sum(getattr(p, k) for p in powers) for k in cls.__dataclass_fields__))


class Block(eqx.Module):
    """An analog circuit block driven by input voltages (V)."""

    @abc.abstractmethod
    def initial_state(self) -> Float[Array, " n"]:
        """The state at t = 0 (all op-amp outputs at 0 V: the circuit starts at rest)."""

    def steady_guess(self, inputs: Float[Array, " m"]) -> Float[Array, " n"]:
        """Where Newton's method starts looking for the steady state (default: at rest)."""
        return self.initial_state()

    @abc.abstractmethod
    def vector_field(
        self, t, y: Float[Array, " n"], inputs: Float[Array, " m"], static: bool = False
    ) -> Array:
        """dy/dt (V/s) for the state ``y`` and the input voltages at time ``t``.

        With ``static=True`` the same equations return their equilibrium residual instead (in
        volts): zero exactly where dy/dt is zero, but without the slew limit's flat regions, so
        that Newton's method finds the steady state."""

    @abc.abstractmethod
    def outputs(self, y: Float[Array, " n"], inputs: Float[Array, " m"]) -> Array:
        """The block's output voltages (V)."""

    @abc.abstractmethod
    def power(self, y: Float[Array, " n"], inputs: Float[Array, " m"], load=None) -> Power:
        """Instantaneous power by kind (W).

        ``load``: the currents (A) that whatever the outputs drive draws from them (None:
        unloaded). An op-amp output supplies it, which adds to its output-stage dissipation;
        blocks whose outputs are passive nodes model their load as a resistor and accept none.
        """

    @property
    def loads_inputs(self) -> bool:
        """Whether the block draws current from its inputs (rows, resistors, diodes) instead of
        presenting op-amp inputs; blocks that do override :meth:`input_currents`."""
        return False

    @property
    def drives_loads(self) -> bool:
        """Whether the outputs are op-amp outputs, which hold their voltage whatever they
        drive (passive output nodes model their load as a resistor instead)."""
        return True

    def input_currents(self, y: Float[Array, " n"], inputs: Float[Array, " m"]) -> Array:
        """Current drawn from each input terminal, A."""
        return jnp.zeros_like(inputs)

    @abc.abstractmethod
    def memristor_voltages(self, y: Float[Array, " n"], inputs: Float[Array, " m"]) -> Array:
        """Voltage across every memristor (V), for the read-disturb check."""

    def peak_memristor_voltage(self, y: Float[Array, " n"], inputs: Float[Array, " m"]):
        """The largest |V| across any of the block's memristors (0 V without any), V."""
        return jnp.max(jnp.abs(self.memristor_voltages(y, inputs)), initial=0.0)

    def observe(self, y: Float[Array, " n"], inputs: Float[Array, " m"], load=None):
        """(outputs, power, peak memristor |V|, input currents) at once: the read-outs of a
        transient. Blocks whose read-outs share an expensive solve (a diode node, a resistive
        bit line) override it to solve once; under ``jax.jit`` what the caller does not use
        is never computed."""
        return (
            self.outputs(y, inputs),
            self.power(y, inputs, load),
            self.peak_memristor_voltage(y, inputs),
            self.input_currents(y, inputs),
        )

    @property
    @abc.abstractmethod
    def state_scale(self) -> float:
        """A time scale (s) of the block, used to scale the steady-state residual."""

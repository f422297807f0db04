"""MFC, the memristive fully connected layer of Wang et al. (IEEE TCAD 2021).

One crossbar with M + 1 rows (the M inputs and the bias row V_b) and 2K columns: output k is
read by its own pair of columns, two transimpedance amplifiers and a difference stage, exactly
the (M+1)x2 read-out of :class:`~memjax.circuits.crossbar.PairKernel`, whose equations it reuses
for every output at once (``jax.vmap`` over the outputs). The word lines are driven by ideal
sources (the previous stage's op-amp outputs), so the K read-outs share their inputs and
nothing else.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from memjax.circuits.block import Block, Power
from memjax.circuits.crossbar import PairKernel
from memjax.circuits.mapping import ConductanceMapping, KernelConductances
from memjax.devices.opamp import OpAmp
from memjax.errors import MemjaxError


class FullyConnected(Block):
    """K outputs y = W v + b on one crossbar, each read out by a (M+1)x2 pair.

    Attributes:
        kernels: a :class:`PairKernel` whose conductances carry a leading output axis:
            ``positive`` and ``negative`` (K, M + 1), ``transimpedance`` (K,). Its op-amp,
            difference stage, bit-line capacitance and wire resistance apply to every output.
    """

    kernels: PairKernel

    def __check_init__(self):
        c = self.kernels.conductances
        if jnp.ndim(c.positive) != 2 or jnp.ndim(c.transimpedance) != 1:
            raise MemjaxError(
                "FullyConnected.kernels: expected conductances of shape (K, M + 1) and a "
                f"transimpedance of shape (K,), got {jnp.shape(c.positive)} and "
                f"{jnp.shape(c.transimpedance)}"
            )

    @classmethod
    def from_weights(cls, weights, bias, mapping: ConductanceMapping, opamp: OpAmp, **options):
        """Map ``weights`` (K, M) and ``bias`` (K,) with ``mapping``; ``options`` go to the
        :class:`PairKernel` read-outs (difference_gain, wire_resistance, ...)."""
        weights = jnp.asarray(weights)
        if weights.ndim != 2:
            raise MemjaxError(f"FullyConnected weights: expected (K, M), got {weights.shape}")
        return cls(PairKernel(mapping.to_conductances(weights, bias), opamp, **options))

    @property
    def count(self) -> int:
        return self.kernels.conductances.positive.shape[0]

    @property
    def _per_output(self) -> int:
        return 5 if self.kernels.dynamic_nodes else 3

    def _each(self, fn, y, *per_output):
        """``fn(kernel_k, y_k, *per_output_k)`` for every output k, stacked along a leading
        axis."""
        c = self.kernels.conductances

        def one(positive, negative, transimpedance, state, *extra):
            conductances = KernelConductances(positive, negative, transimpedance, c.bias_voltage)
            kernel = eqx.tree_at(lambda k: k.conductances, self.kernels, conductances)
            return fn(kernel, state, *extra)

        states = y.reshape(self.count, self._per_output)
        return jax.vmap(one)(c.positive, c.negative, c.transimpedance, states, *per_output)

    def initial_state(self):
        return jnp.zeros(self.count * self._per_output)

    def vector_field(self, t, y, inputs, static=False):
        return self._each(lambda k, s: k.vector_field(t, s, inputs, static), y).reshape(-1)

    def outputs(self, y, inputs):
        return self._each(lambda k, s: k.outputs(s, inputs), y)[:, 0]

    @property
    def loads_inputs(self):
        return True

    def input_currents(self, y, inputs):
        return jnp.sum(self._each(lambda k, s: k.input_currents(s, inputs), y), axis=0)

    def power(self, y, inputs, load=None):
        if load is None:
            each = self._each(lambda k, s: k.power(s, inputs), y)
        else:
            each = self._each(lambda k, s, i: k.power(s, inputs, i[None]), y, load)
        return Power(*(jnp.sum(getattr(each, k)) for k in Power.__dataclass_fields__))

    def memristor_voltages(self, y, inputs):
        return self._each(lambda k, s: k.memristor_voltages(s, inputs), y).reshape(-1)

    def peak_memristor_voltage(self, y, inputs):
        return jnp.max(self._each(lambda k, s: k.peak_memristor_voltage(s, inputs), y))

    @property
    def state_scale(self):
        return self.kernels.state_scale

"""A chain of blocks: the outputs of each block drive the inputs of the next.

Every block's output is an op-amp output or a node that the next block reads without loading it
(its inputs are op-amp inputs or the load it already models), so a chain is the concatenation of
the blocks' states with their vector fields evaluated in order.
"""

from __future__ import annotations

import jax.numpy as jnp

from memjax.circuits.block import Block, Power


class Chain(Block):
    """Blocks in series.

    Attributes:
        blocks: the blocks, first driven by the chain's inputs, last giving its outputs.
    """

    blocks: tuple[Block, ...]

    def _split(self, y):
        parts, start = [], 0
        for block in self.blocks:
            size = block.initial_state().shape[0]
            parts.append(y[start : start + size])
            start += size
        return parts

    def _walk(self, y, inputs):
        for block, state in zip(self.blocks, self._split(y), strict=True):
            yield block, state, inputs
            inputs = block.outputs(state, inputs)

    def initial_state(self):
        return jnp.concatenate([block.initial_state() for block in self.blocks])

    def vector_field(self, t, y, inputs, static=False):
        return jnp.concatenate(
            [block.vector_field(t, state, v, static) for block, state, v in self._walk(y, inputs)]
        )

    def outputs(self, y, inputs):
        *_, (block, state, v) = self._walk(y, inputs)
        return block.outputs(state, v)

    def memristor_voltages(self, y, inputs):
        return jnp.concatenate(
            [block.memristor_voltages(state, v) for block, state, v in self._walk(y, inputs)]
        )

    def power(self, y, inputs):
        return Power.sum([block.power(state, v) for block, state, v in self._walk(y, inputs)])

    def observe(self, y, inputs):
        powers, voltages = [], []
        for block, state in zip(self.blocks, self._split(y), strict=True):
            inputs, power, memristor_voltages = block.observe(state, inputs)
            powers.append(power)
            voltages.append(memristor_voltages)
        return inputs, Power.sum(powers), jnp.concatenate(voltages)

    def stage_outputs(self, y, inputs):
        """The outputs of every block, in order (for per-stage settling times)."""
        return [block.outputs(state, v) for block, state, v in self._walk(y, inputs)]

    @property
    def state_scale(self):
        return min(block.state_scale for block in self.blocks)

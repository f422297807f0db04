"""A chain of blocks: the outputs of each block drive the inputs of the next.

Every block's output is either an op-amp output, which holds its voltage whatever the next block
draws (that current only adds to the op-amp's output-stage dissipation, which the chain passes
on as the block's ``load``), or a passive node whose load is already modelled (a diode block's
R_L and rows) and which the next block reads through op-amp inputs. So a chain is the
concatenation of the blocks' states with their vector fields evaluated in order; a passive node
driving a block that draws current would need a joint node solve and is refused at
construction.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from memjax.circuits.block import Block, Power
from memjax.errors import MemjaxError


class Chain(Block):
    """Blocks in series.

    Attributes:
        blocks: the blocks, first driven by the chain's inputs, last giving its outputs.
    """

    blocks: tuple[Block, ...]

    def __check_init__(self):
        for index, (driver, driven) in enumerate(zip(self.blocks, self.blocks[1:])):
            if driven.loads_inputs and not driver.drives_loads:
                raise MemjaxError(
                    f"Chain.blocks[{index + 1}] ({type(driven).__name__}) draws current from "
                    f"its inputs, but blocks[{index}] ({type(driver).__name__}) has a passive "
                    "output node whose load is its own (R_L and rows); put an op-amp stage "
                    "(a super-diode variant or a buffer) between them"
                )

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

    def steady_guess(self, inputs):
        """Each block's steady guess in signal order, each driven by the outputs of the one
        before: the chain's exact steady state where every block's guess is exact (crossbar
        kernels, summing amplifiers, diode blocks: their closed-form static roots)."""
        states = []
        for block in self.blocks:
            state = block.steady_guess(inputs)
            states.append(state)
            inputs = block.outputs(state, inputs)
        return jnp.concatenate(states)

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

    @property
    def loads_inputs(self):
        return self.blocks[0].loads_inputs

    @property
    def drives_loads(self):
        return self.blocks[-1].drives_loads

    def input_currents(self, y, inputs):
        return self.blocks[0].input_currents(self._split(y)[0], inputs)

    def power(self, y, inputs, load=None):
        return self.observe(y, inputs, load)[1]

    def observe(self, y, inputs, load=None):
        """Every block observed once. Forward, the stage inputs: an op-amp output is read
        from the state, a passive node (which nothing after it loads) from its observation.
        Backward, the observations, each block with the input currents of the next as its
        load."""
        states = self._split(y)
        stage_inputs, observations = [], [None] * len(self.blocks)
        for index, (block, state) in enumerate(zip(self.blocks, states, strict=True)):
            stage_inputs.append(inputs)
            if block.drives_loads:
                inputs = block.outputs(state, inputs)
            else:
                last = index + 1 == len(self.blocks)
                observations[index] = block.observe(state, inputs, load if last else None)
                inputs = observations[index][0]
        for index in reversed(range(len(self.blocks))):
            if observations[index] is not None:
                continue
            if index + 1 == len(self.blocks):
                block_load = load
            elif self.blocks[index + 1].loads_inputs:
                block_load = observations[index + 1][3]
            else:
                block_load = None
            observations[index] = self.blocks[index].observe(
                states[index], stage_inputs[index], block_load
            )
        return (
            observations[-1][0],
            Power.sum([o[1] for o in observations]),
            jnp.max(jnp.stack([o[2] for o in observations])),
            observations[0][3],
        )

    def stage_outputs(self, y, inputs):
        """The outputs of every block, in order (for per-stage settling times)."""
        return [block.outputs(state, v) for block, state, v in self._walk(y, inputs)]

    @property
    def state_scale(self):
        return min(block.state_scale for block in self.blocks)


class ConstantInputs(Block):
    """A block with some inputs tied to fixed voltages (references, bias rails): the
    wrapper's inputs are the block's first inputs, ``constants`` (V) follow them.

    Attributes:
        block: the wrapped block.
        constants: the voltages of its last inputs, V.
    """

    block: Block
    constants: Float[Array, " k"]

    def _all(self, inputs):
        return jnp.concatenate([inputs, jnp.asarray(self.constants, inputs.dtype)])

    def initial_state(self):
        return self.block.initial_state()

    def steady_guess(self, inputs):
        return self.block.steady_guess(self._all(inputs))

    def vector_field(self, t, y, inputs, static=False):
        return self.block.vector_field(t, y, self._all(inputs), static)

    def outputs(self, y, inputs):
        return self.block.outputs(y, self._all(inputs))

    def power(self, y, inputs, load=None):
        return self.block.power(y, self._all(inputs), load)

    def memristor_voltages(self, y, inputs):
        return self.block.memristor_voltages(y, self._all(inputs))

    def peak_memristor_voltage(self, y, inputs):
        return self.block.peak_memristor_voltage(y, self._all(inputs))

    @property
    def loads_inputs(self):
        return self.block.loads_inputs

    @property
    def drives_loads(self):
        return self.block.drives_loads

    def input_currents(self, y, inputs):
        return self.block.input_currents(y, self._all(inputs))[: inputs.shape[0]]

    def observe(self, y, inputs, load=None):
        outputs, power, peak, currents = self.block.observe(y, self._all(inputs), load)
        return outputs, power, peak, currents[: inputs.shape[0]]

    @property
    def state_scale(self):
        return self.block.state_scale

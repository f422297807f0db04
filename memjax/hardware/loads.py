"""What every activation node of the network drives: the rows of the crossbars that read it.

A node (one channel at one position of a stage's output) drives one row in every kernel copy
that reads it: in the proposed (M+1)x2 topology each row holds a G+ and a G- cell per kernel,
each from the row to a bit line held at virtual ground. Its load is the sum of those cells:
over the kernels of a 1x1 (or fully connected) stage; over the taps of a depthwise or stem
kernel that cover its position (nine in the interior at stride 1, fewer at a border, 1, 2 or 4
at stride 2); one input cell of the global average pool. Where the wiring passes a node on
unchanged (the kept half of a basic unit, concat, shuffle) its rows are those of every stage
it reaches; a down-sampling unit's input feeds both branches.

Per consumer the load is the transpose of its convolution applied to ones (the derivative of
its row currents, sum G (v - 0), in the node voltages), so borders and strides are exact.
Nodes are followed through the wiring by labels: every stage's output gets one integer per
node, the wiring moves the labels as it moves voltages, and each consumer adds its rows to the
labels it reads.

Not a row load: a super-diode max pool presents op-amp inputs; a plain diode-OR max pool draws
its diodes' current from the stem's ReLUs, a nonlinear load that the blocks do not carry (the
stem's ReLUs keep R_L alone).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from memjax import convolution as conv
from memjax.errors import MemjaxError
from memjax.hardware.graph import propagate


def consumer_rows(role: str, stage, shape: tuple[int, ...]) -> jax.Array:
    """The conductance (S) that each node of an input of ``shape`` sees into the rows of
    ``stage`` (a step of ``MemristiveShuffleNet.steps``), bit lines at virtual ground."""
    if role == "max_pool":
        return jnp.zeros(shape)
    if role == "pool":  # one input cell per position of the last map
        if stage.input_conductances.shape[0] != shape[1] * shape[2]:
            raise MemjaxError(
                f"average_pool.input_conductances: built for {stage.input_conductances.shape[0]} "
                f"positions, the last map has {shape[1] * shape[2]} (with_pool_inputs)"
            )
        cells = stage.input_conductances.reshape((1, shape[1], shape[2], 1))
        return jnp.broadcast_to(cells, shape)
    c = stage.kernel.conductances
    both = c.positive + c.negative  # _convolve leaves the bias row (last column) out
    zeros = jnp.zeros(shape, both.dtype)
    out, transpose = jax.vjp(lambda v: stage._convolve(v, both), zeros)
    return transpose(jnp.ones_like(out))[0]


def _output_shape(role: str, stage, shape: tuple[int, ...]) -> tuple[int, ...]:
    if role == "max_pool":
        return (1, -(-shape[1] // 2), -(-shape[2] // 2), shape[3])
    if role == "pool":
        return (1, shape[3])
    c = stage.kernel.conductances.positive
    return jax.eval_shape(
        lambda v: stage._convolve(v, c), jax.ShapeDtypeStruct(shape, c.dtype)
    ).shape


def row_loads(steps: list, input_shape: tuple[int, int]) -> dict[str, jax.Array]:
    """Per stage name, the rows each of its output nodes drives, S, shape (1, *output) (a
    batch axis of one, broadcast over images): for the input image (height, width) of
    ``input_shape`` and the conductances the steps hold now (a chip's, a fine-tuned one's)."""
    consumers: list[tuple[np.ndarray, jax.Array]] = []
    ranges: dict[str, tuple[int, tuple[int, ...]]] = {}
    count = 0

    def labels(shape):
        nonlocal count
        size = int(np.prod(shape))
        out = np.arange(count, count + size).reshape(shape)
        count += size
        return out

    roles = {step[0]: step[3] for step in steps}

    def run(name, kind, stage, read):
        role = roles[name]
        consumers.append((read, consumer_rows(role, stage, read.shape)))
        shape = _output_shape(role, stage, read.shape)
        ranges[name] = (count, shape)
        return labels(shape)

    image = labels((1, *input_shape, 1))
    propagate(
        steps,
        image,
        run,
        lambda x: np.split(x, 2, axis=-1),
        lambda a, b: np.concatenate([a, b], axis=-1),
        lambda x: np.asarray(conv.channel_shuffle(x)),
    )
    dtype = consumers[0][1].dtype
    total = jnp.zeros(count, dtype)
    for read, rows in consumers:
        total = total.at[read.ravel()].add(rows.ravel())
    return {
        name: total[start : start + int(np.prod(shape))].reshape(shape)
        for name, (start, shape) in ranges.items()
    }


def heaviest_row_load(net, input_shape: tuple[int, int]) -> float:
    """The largest row load (S) of any node a ReLU or a linear stage's clamp drives, for an
    input image of ``input_shape``: what the bounded supplies must hold at V_p besides R_L
    (``HardwareConfig.supply_load_conductance``). The max pool is left out: its super
    diodes have no limiter for a supply to spare."""
    steps = net.steps()
    driven = {
        step[0]
        for step in steps
        if getattr(step[4], "relu", None) is not None or getattr(step[4], "clamp", None) is not None
    }
    if not driven:
        raise MemjaxError("heaviest_row_load: the network has no ReLU or clamp stage")
    loads = row_loads(steps, input_shape)
    return max(float(jnp.max(loads[name])) for name in driven)

"""Every analog stage of the memristive network as one neuron's circuit and a linear drive.

A crossbar stage at one output position and channel is a :class:`~memjax.circuits.Chain` of the
same blocks the circuits layer validates against closed forms and ngspice: its (M+1)x2 kernel,
its MBN, its diode ReLU or clamp. Only two things are rewritten for a whole layer at once:

- *the drive*: a kernel's bit-line node depends on its rows only through the weighted sums
  ``sum_i G_i v_i`` and the totals ``sum_i G_i``, so the kernel is replaced by an equivalent
  one with one row per bit line (conductance ``S = sum_i G_i`` at the weighted mean voltage
  ``m = sum_i G_i v_i / S``) and the sums come from a convolution over the whole layer. The
  node voltages, op-amp dynamics, currents and every power but one are identical;
- *the memristor spread*: ``sum_i G_i (v_i - n)^2 = S (m - n)^2 + (sum_i G_i v_i^2 - S m^2)``;
  the bracket, independent of the node, is added from a second convolution over ``v^2``.

The largest memristor voltage likewise uses the extremes of the rows each kernel sees (its
receptive field and the bias row) against its bit-line voltages.

Per-channel parameters (conductances, MBN, a chip's op-amp errors) are arrays with the channel
on their first axis; every other parameter is a Python float shared by all neurons.

A chip's op-amp errors (``CrossbarStage.opamp_errors``, ``MemristiveShuffleNet.
average_pool_errors``) go onto the blocks whose op-amps they describe: the kernel's line and
difference op-amps, the MBN's, the average pool's; each neuron's block then holds its own
(channel's) offsets and gains, so the transient solves the equations of the steady state.
The op-amps of super-diode ReLUs, clamps and the max pool keep the design's
(``ChipVariation``).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from memjax import convolution as conv
from memjax.circuits import Chain, KernelConductances
from memjax.circuits.amplifiers import SummingAmplifier
from memjax.circuits.block import Block
from memjax.circuits.chain import ConstantInputs
from memjax.circuits.diodes import DiodeClamp, DiodeMaxPool, DiodeReLU, _DiodeNode
from memjax.devices.opamp import OpAmpErrors
from memjax.errors import MemjaxError
from memjax.hardware.loads import row_loads
from memjax.hardware.memristive import CrossbarStage, MemristiveShuffleNet
from memjax.hardware.transfer import TransferTable

KINDS = ("memristors", "resistors", "diodes", "opamps")
"""The kinds of component a stage's power is split into, in the order of its arrays."""


class NeuronStage(eqx.Module):
    """One layer of neurons: the per-neuron circuit and how the layer's input drives it.

    Attributes:
        block: one neuron's circuit; arrays carry the channel on their first axis.
        kind: "stem", "pointwise", "depthwise", "fully_connected" (crossbars),
            "max_pool" or "average_pool".
        crossbar: the crossbar stage (crossbar kinds), for the convolutions.
        stride: the stage's stride (convolutions and pooling).
        bias_voltage: the bias row's voltage, V (crossbar kinds).
        pool_conductance: each input conductance of the average pool, S.
        rows: the conductance of the rows each output node drives, S, shape (1, *output)
            (``HardwareConfig.row_drive`` "direct", :mod:`memjax.hardware.loads`), or None.
    """

    block: Block
    crossbar: CrossbarStage | None
    kind: str = eqx.field(static=True)
    stride: int = eqx.field(static=True, default=1)
    bias_voltage: float = 0.0
    pool_conductance: float = 0.0
    rows: Array | None = None

    @property
    def is_crossbar(self) -> bool:
        return self.crossbar is not None

    def drive(self, v: Array) -> Array:
        """The inputs of every neuron, shape (..., K, inputs), for the layer input ``v``."""
        if self.kind == "max_pool":
            return jnp.stack([w for _, _, w in conv._taps(v, self.stride, 0.0)], axis=-1)
        if self.kind == "average_pool":
            return jnp.mean(v, axis=(1, 2))[..., None]
        c = self.crossbar.kernel.conductances
        totals = self._totals()
        sum_a = self.crossbar._convolve(v, c.positive)
        sum_b = self.crossbar._convolve(v, c.negative)
        return jnp.stack([sum_a / totals[0], sum_b / totals[1]], axis=-1)

    def _totals(self):
        c = self.crossbar.kernel.conductances
        return jnp.sum(c.positive[:, :-1], -1), jnp.sum(c.negative[:, :-1], -1)

    def spread(self, v: Array, drive: Array) -> Array:
        """Memristor power the equivalent rows do not see, per neuron, W."""
        if self.kind == "max_pool":
            return jnp.zeros(drive.shape[:-1])
        if self.kind == "average_pool":
            count = v.shape[1] * v.shape[2]
            squares = self.pool_conductance * jnp.sum(v**2, axis=(1, 2))
            return squares - count * self.pool_conductance * drive[..., 0] ** 2
        c = self.crossbar.kernel.conductances
        both = c.positive + c.negative
        squares = self.crossbar._convolve(v**2, both)
        s_a, s_b = self._totals()
        return squares - s_a * drive[..., 0] ** 2 - s_b * drive[..., 1] ** 2

    def row_extremes(self, v: Array) -> tuple[Array, Array]:
        """(highest, lowest) row voltage each neuron's memristors see, broadcastable to
        (..., K): the receptive field, 0 V padding and the bias row."""
        if self.kind == "max_pool":
            raise ValueError("a max pool has no memristors")
        if self.kind == "average_pool":
            return jnp.max(v, axis=(1, 2)), jnp.min(v, axis=(1, 2))
        if self.kind in ("pointwise", "fully_connected"):
            high, low = jnp.max(v, -1, keepdims=True), jnp.min(v, -1, keepdims=True)
        else:
            windows = [w for _, _, w in conv._taps(v, self.stride, 0.0)]
            high = functools.reduce(jnp.maximum, windows)
            low = functools.reduce(jnp.minimum, windows)
            if self.kind == "stem":
                high, low = high[..., :1], low[..., :1]
        b = self.bias_voltage
        return jnp.maximum(high, b), jnp.minimum(low, b)


def rows_against_bit_lines(block, y, inputs, high, low):
    """The largest |V| across a crossbar neuron's cells from its rows' extremes: ``high`` and
    ``low`` (:meth:`NeuronStage.row_extremes`) against its kernel's bit-line voltages; ``block``
    is the neuron's chain (kernel first), ``y`` its state. The equivalent kernel has one row
    per line, so its own memristor read-out does not see the receptive field's extremes."""
    kernel = block.blocks[0]
    nodes = kernel.bit_line_voltages(block._split(y)[0], inputs)
    return jnp.max(jnp.stack([jnp.maximum(high - n, n - low) for n in nodes]))


def with_rows(block: Block, rows) -> Block:
    """One neuron's ``block`` with the rows its output drives (S): a diode node (ReLU, clamp,
    max pool) carries them in its node equation; an op-amp output holds its voltage whatever
    it drives, so the block is unchanged (:func:`observe` adds the rows' current)."""
    chain = isinstance(block, Chain)
    last = block.blocks[-1] if chain else block
    if not isinstance(last, _DiodeNode):
        return block
    if not isinstance(last, DiodeReLU | DiodeClamp | DiodeMaxPool):
        raise MemjaxError(
            f"with_rows: a {type(last).__name__} reads its node from a table for R_L alone; "
            "rows need the node solved (HardwareConfig.dc_transfer='exact')"
        )
    if chain:
        return eqx.tree_at(lambda b: b.blocks[-1].row_conductance, block, rows)
    return eqx.tree_at(lambda b: b.row_conductance, block, rows)


def observe(block: Block, y, inputs, rows=None):
    """``block.observe(y, inputs)`` for one neuron that drives ``rows`` (S, or None): an
    op-amp output supplies their current, rows times its voltage (each cell ends on a bit
    line at virtual ground), in its output stage; a diode node already carries them
    (:func:`with_rows`)."""
    if rows is None or not block.drives_loads:
        return block.observe(y, inputs)
    return block.observe(y, inputs, rows * block.outputs(y, inputs))


def neuron_readouts(block, crossbar: bool, y, u, dy, du, rows, extras, envelopes=False):
    """What a transient records of one neuron at one time: (output, its slope, power by
    kind (:data:`KINDS`), its slope, the neuron's total power, its largest memristor |V|,
    that peak's slope). ``dy``, ``du``: the state's and the drive's time derivatives;
    ``extras``: (highest row, lowest row, memristor power its equivalent rows do not see) of
    the neuron (``NeuronStage.row_extremes``, ``NeuronStage.spread``). The peak's slope only
    with ``envelopes`` (zero without: only an envelope waveform needs it); the row extremes'
    slopes are not tracked, so it is the bit line's part."""
    high, low, spread = extras[0], extras[1], extras[2]

    def quantities(y, u, high, low):
        out, power, peak, _ = observe(block, y, u, rows)
        kinds = jnp.stack([getattr(power, k) for k in KINDS])
        if crossbar:
            peak = jnp.maximum(peak, rows_against_bit_lines(block, y, u, high, low))
        return out[0], kinds, peak

    zero = jnp.zeros_like(high)
    if envelopes:
        (out, kinds, peak), (dout, dkinds, dpeak) = jax.jvp(
            quantities, (y, u, high, low), (dy, du, zero, zero)
        )
    else:  # the peak as a by-product, outside the linearisation

        def split(y, u):
            out, kinds, peak = quantities(y, u, high, low)
            return (out, kinds), peak

        (out, kinds), (dout, dkinds), peak = jax.jvp(split, (y, u), (dy, du), has_aux=True)
        dpeak = jnp.zeros_like(peak)
    return out, dout, kinds, dkinds, jnp.sum(kinds) + spread, peak, dpeak


def is_per_channel(a) -> bool:
    """Arrays with a leading channel (or neuron) axis; floats and 0-d arrays (a traced
    parameter such as an op-amp's GBW) are shared by all neurons."""
    return eqx.is_array(a) and a.ndim > 0


def _is_table(x) -> bool:
    """Transfer tables are one curve shared by all neurons, whatever their arrays' shapes."""
    return isinstance(x, TransferTable)


def map_per_channel(fn, tree):
    """``fn`` on every per-channel array of ``tree``; shared values and transfer tables
    unchanged."""
    return jax.tree.map(
        lambda x: x if _is_table(x) or not is_per_channel(x) else fn(x), tree, is_leaf=_is_table
    )


def channel_axes(tree):
    """vmap axes of a per-channel block: 0 for per-channel arrays, None for shared values
    and transfer tables."""
    return jax.tree.map(
        lambda x: None if _is_table(x) or not is_per_channel(x) else 0, tree, is_leaf=_is_table
    )


def per_neuron(method):
    """``method(block, y, inputs)`` over all neurons: y (P, K, n), inputs (P, K, m)."""
    over_channels = lambda block, y, u: jax.vmap(method, in_axes=(channel_axes(block), 0, 0))(  # noqa: E731
        block, y, u
    )
    return jax.vmap(over_channels, in_axes=(None, 0, 0))


class TabulatedReLU(_DiodeNode):
    """A plain diode ReLU without node capacitance (a stateless block: its node is an
    algebraic function of its one input) whose node is read from the stage's steady-state
    transfer table instead of solved; power and input current follow from that node exactly
    as the ReLU's own. The transient's read-outs at every knot of every neuron are where
    its time goes, and the node solve was over half of them (benchmarks/README.md).

    Attributes:
        relu: the plain ReLU.
        table: its node voltage against its input, within ``table.max_error`` (V).
    """

    relu: DiodeReLU
    table: TransferTable

    super_diode = False

    def __check_init__(self):
        if self.relu.super_diode or self.relu.node_capacitance:
            raise ValueError("TabulatedReLU: only a stateless plain ReLU reads from a table")

    def _node(self, y, inputs):
        return self.table(inputs[0])

    def _power_at(self, o, y, inputs):
        return self.relu._power_at(o, y, inputs)

    def _input_currents_at(self, o, y, inputs):
        return self.relu._input_currents_at(o, y, inputs)

    def initial_state(self):
        return self.relu.initial_state()

    def steady_guess(self, inputs):
        return self.relu.steady_guess(inputs)

    def vector_field(self, t, y, inputs, static=False):
        return self.relu.vector_field(t, y, inputs, static)

    @property
    def state_scale(self):
        return self.relu.state_scale


def crossbar_stage(stage: CrossbarStage) -> NeuronStage:
    """A crossbar layer's neuron: equivalent kernel, MBN, ReLU or clamp; a chip's op-amp
    errors (columns 0-2 of ``stage.opamp_errors``) on the kernel, column 3 on the MBN."""
    c = stage.kernel.conductances
    s_a, s_b = jnp.sum(c.positive[:, :-1], -1), jnp.sum(c.negative[:, :-1], -1)
    zero = jnp.zeros_like(s_a)
    equivalent = KernelConductances(
        jnp.stack([s_a, zero, c.positive[:, -1]], -1),
        jnp.stack([zero, s_b, c.negative[:, -1]], -1),
        c.transimpedance,
        c.bias_voltage,
    )
    kernel = eqx.tree_at(lambda k: k.conductances, stage.kernel, equivalent)
    mbn = stage.mbn
    errors = stage.opamp_errors
    if errors is not None:  # (K, 4): per kernel, its three op-amps, then its MBN's
        kernel = _with_errors(kernel, errors, slice(0, 3))
        if mbn is not None:
            mbn = _with_errors(mbn, errors, slice(3, 4))
    blocks: list[Block] = [kernel]
    if mbn is not None:
        k = mbn.input_conductances.shape[0]
        v_b = mbn.bias_voltage
        references = jnp.tile(jnp.array([v_b, -v_b]), (k, 1))
        blocks.append(ConstantInputs(mbn, references))
    if stage.relu is not None:
        plain = not stage.relu.super_diode and not stage.relu.node_capacitance
        if plain and stage.transfer is not None:
            blocks.append(TabulatedReLU(stage.relu, stage.transfer))
        else:
            blocks.append(stage.relu)
    elif stage.clamp is not None:
        blocks.append(stage.clamp)
    return NeuronStage(Chain(tuple(blocks)), stage, stage.kind, stage.stride, float(c.bias_voltage))


def _with_errors(block, errors: OpAmpErrors, columns: slice):
    """``block`` with its op-amps' errors: the ``columns`` of the stage's arrays."""
    own = OpAmpErrors(errors.offset[:, columns], errors.open_loop_gain[:, columns])
    return eqx.tree_at(lambda b: b.opamp_errors, block, own, is_leaf=lambda x: x is None)


def max_pool_stage(net: MemristiveShuffleNet) -> NeuronStage:
    return NeuronStage(net.max_pool, None, "max_pool", 2)


def average_pool_stage(net: MemristiveShuffleNet, channels: int) -> NeuronStage:
    """The global average pool as one input of conductance G_f (the sum of its count equal
    inputs) at the mean voltage, per channel. Each channel's op-amp has a chip's errors
    where the network has them (``net.average_pool_errors``, (C, 1), else the pool's own, as
    the steady state reads them), broadcast so that every channel holds its own."""
    pool = net.average_pool
    g_f = pool.feedback_conductance
    errors = net.average_pool_errors if net.average_pool_errors is not None else pool.opamp_errors
    if errors is not None:
        errors = OpAmpErrors(
            jnp.broadcast_to(errors.offset, (channels, 1)),
            jnp.broadcast_to(errors.open_loop_gain, (channels, 1)),
        )
    equivalent = SummingAmplifier(
        jnp.full((channels, 1), g_f),
        jnp.full((channels,), g_f),
        pool.opamp,
        memristive=True,
        node_capacitance=pool.node_capacitance,
        opamp_errors=errors,
    )
    return NeuronStage(
        equivalent,
        None,
        "average_pool",
        1,
        pool_conductance=float(pool.input_conductances[0]),
    )


def plan(net: MemristiveShuffleNet, input_shape: tuple[int, int] | None = None) -> list:
    """The stages in signal order with their wiring (:meth:`MemristiveShuffleNet.steps`),
    each as a :class:`NeuronStage`; with ``row_drive`` "direct", each with the rows its
    outputs drive for inputs of ``input_shape`` (height, width)."""
    channels = net.output_stage.kernel.conductances.positive.shape[0]
    convert = {
        "max_pool": lambda _: max_pool_stage(net),
        "pool": lambda _: average_pool_stage(net, channels),
    }
    steps = net.steps()
    rows = {}
    if net.hardware.row_drive == "direct":
        if input_shape is None:
            raise MemjaxError("plan: row_drive='direct' needs the input's (height, width)")
        rows = row_loads(steps, input_shape)
    planned = []
    for name, kind, unit, role, stage in steps:
        neurons = convert.get(role, crossbar_stage)(stage)
        if name in rows:
            neurons = eqx.tree_at(
                lambda s: s.rows, neurons, rows[name], is_leaf=lambda x: x is None
            )
        planned.append((name, kind, unit, role, neurons))
    return planned

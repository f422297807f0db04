"""Crossbar kernels in both topologies of Wang et al. (IEEE TCAD 2021).

*Proposed, (M+1)x2* (:class:`PairKernel`): rows carry the inputs v_1..v_M and the bias V_b; two
bit lines (G+ and G-) are held at virtual ground by two transimpedance amplifiers (feedback
R_f = k / g); one difference stage of gain g (an op-amp with R_d at its inputs and g R_d in its
feedback and to ground) behind them gives

    v_out = g (v_B - v_A) = k (sum_i (G+_i - G-_i) v_i + (G+_b - G-_b) V_b).

A gain g > 1 keeps each column's TIA within its rails when the column sums are large (many
inputs), at the price of amplifying their difference's error.

*Original, (2M+1)x1* (:class:`ColumnKernel`): an inverting amplifier per input provides -v_i;
one bit line carries G-_i on the v_i row and G+_i on the -v_i row, and the bias row, driven at
-sign(dG_b) V_b, carries |G+_b - G-_b|; one transimpedance amplifier gives the same v_out.

Which op-amp does what is a reconstruction (physics notes, section 2): only the row and
inverter counts are published.

Bit lines are algebraic nodes (Kirchhoff's current law solved exactly) unless
``bitline_capacitance`` > 0 makes them states: C dV_n/dt = sum_i G_i (v_i - V_n) + G_f (y - V_n).
The algebraic form keeps the closed loop non-stiff: its time constant is ~1 / (2 pi beta GBW)
with beta = G_f / (G_f + sum G).

A chip's op-amps differ from the design (``PairKernel.opamp_errors``: each op-amp's input offset
and DC gain): the vector field, the closed-form steady guess and :func:`pair_kernel_dc` all
take them, so the transient settles where the convolution-form steady state says.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from memjax.circuits.block import Block, Power
from memjax.circuits.mapping import KernelConductances
from memjax.devices.opamp import OpAmp, OpAmpErrors
from memjax.devices.validation import require_ideal_output, require_non_negative, require_positive
from memjax.errors import MemjaxError


def output_stage_power(amp: OpAmp, y, i_out):
    """Class-B output-stage dissipation, supplies at the rails (W).

    Sourcing current i_out > 0 dissipates (rail_high - y) i_out; sinking, (y - rail_low) |i_out|.
    The op-amp's static bias power (:attr:`OpAmp.bias_power`) is constant and reported apart.
    A state pressed against a rail sits microvolts beyond it (the static residual's penalty
    branch, :data:`~memjax.devices.opamp.RAIL_PENALTY`), where the stage has no headroom:
    none is counted, not a negative one (measured -2.6e-15 W on a super-diode max pool's
    idle op-amp at its low rail, sinking its diode's leakage, 2026-12-06). The rails are the
    output's limits (no saturation voltage is modelled), so an output on its rail that still
    sources or sinks current dissipates nothing in its stage here; a real stage keeps a few
    hundred mV of headroom there.
    """
    high = jnp.maximum(amp.rail_high - y, 0.0)
    low = jnp.maximum(y - amp.rail_low, 0.0)
    return jnp.where(i_out > 0, high * i_out, low * -i_out)


def _load(load):
    """The load current of a block's single output (0 when unloaded)."""
    return 0.0 if load is None else load[0]


def pair_kernel_dc(kernel: PairKernel, sum_a, sum_b, errors: OpAmpErrors | None = None):
    """Steady-state output of (M+1)x2 kernels from their bit-line sums, elementwise.

    ``sum_a`` = sum_i G+_i v_i over the rows of line A (bias row included), ``sum_b`` likewise;
    the total line conductances come from ``kernel.conductances`` (trailing axis: rows). The
    same static equations as :meth:`PairKernel.vector_field` with ``static=True`` (algebraic
    bit lines, no wire resistance), solved in closed form by :meth:`OpAmp.static_output`, so
    that a crossbar layer can be evaluated in convolution form. ``errors``: per kernel, the
    offsets and gains of its three op-amps (line A, line B, difference stage: the first three
    entries of the trailing axis, e.g. arrays (K, >= 3)), or None for the kernel's own
    (``kernel.opamp_errors``; None there too: the design's op-amp).
    """
    errors = _errors(kernel, errors)
    c, amp, g = kernel.conductances, kernel.opamp, kernel.difference_gain
    g_f = kernel.g_f
    total_a = jnp.sum(c.positive, -1) + g_f
    total_b = jnp.sum(c.negative, -1) + g_f
    offset, gain = _columns(errors)
    # per-kernel factors first: one multiply per neuron instead of a division
    y_a = amp.static_output(sum_a * (-1.0 / total_a), g_f / total_a, offset[0], gain[0])
    y_b = amp.static_output(sum_b * (-1.0 / total_b), g_f / total_b, offset[1], gain[1])
    out = kernel.difference_opamp
    return out.static_output((y_b - y_a) * (g / (1 + g)), 1.0 / (1 + g), offset[2], gain[2])


def pair_kernel_line_nodes(kernel: PairKernel, sum_a, sum_b, errors: OpAmpErrors | None = None):
    """(node_a, node_b), V: the bit lines' voltages at steady state, from the same sums and
    closed forms as :func:`pair_kernel_dc`: KCL at each line, (sum + g_f y) / total, which is
    ~0 (virtual ground, within |y| / A0) while its amplifier is inside the rails and moves off
    ground when it sits on one. A cell of row i then sees v_i - node."""
    errors = _errors(kernel, errors)
    c, amp, g_f = kernel.conductances, kernel.opamp, kernel.g_f
    total_a = jnp.sum(c.positive, -1) + g_f
    total_b = jnp.sum(c.negative, -1) + g_f
    offset, gain = _columns(errors)
    y_a = amp.static_output(sum_a * (-1.0 / total_a), g_f / total_a, offset[0], gain[0])
    y_b = amp.static_output(sum_b * (-1.0 / total_b), g_f / total_b, offset[1], gain[1])
    return (sum_a + g_f * y_a) / total_a, (sum_b + g_f * y_b) / total_b


def _errors(kernel: PairKernel, errors: OpAmpErrors | None) -> OpAmpErrors | None:
    """The errors a closed form uses: those given, else the kernel's own."""
    return kernel.opamp_errors if errors is None else errors


def _columns(errors: OpAmpErrors | None):
    """(offsets, gains) of the line A, line B and difference op-amps; None each without."""
    if errors is None:
        return (None,) * 3, (None,) * 3
    return errors.columns(3)


def pair_kernel_line_gains(kernel: PairKernel, errors: OpAmpErrors | None = None):
    """(kappa_a, kappa_b), S^-1: a line amplifier inside its rails outputs
    -kappa * sum_i G_i v_i (bias row included) + its offset term (:func:`pair_kernel_line_offsets`).
    From :meth:`OpAmp.static_output` with v_diff = -sum / total - y g_f / total:
    kappa = 1 / (g_f + total / A0), total = sum of the line's conductances + g_f. ``errors``
    as for :func:`pair_kernel_dc`."""
    c, g_f = kernel.conductances, kernel.g_f
    gain = _columns(_errors(kernel, errors))[1]
    gain_a = kernel.opamp.open_loop_gain if gain[0] is None else gain[0]
    gain_b = kernel.opamp.open_loop_gain if gain[1] is None else gain[1]
    total_a = jnp.sum(c.positive, -1) + g_f
    total_b = jnp.sum(c.negative, -1) + g_f
    return 1.0 / (g_f + total_a / gain_a), 1.0 / (g_f + total_b / gain_b)


def pair_kernel_line_offsets(kernel: PairKernel, errors: OpAmpErrors | None):
    """(o_a, o_b), V: what each line amplifier's input offset adds to its output inside the
    rails, kappa * total * V_os (0 without errors). ``errors`` as for :func:`pair_kernel_dc`."""
    errors = _errors(kernel, errors)
    if errors is None:
        return 0.0, 0.0
    c, g_f = kernel.conductances, kernel.g_f
    kappa_a, kappa_b = pair_kernel_line_gains(kernel, errors)
    total_a = jnp.sum(c.positive, -1) + g_f
    total_b = jnp.sum(c.negative, -1) + g_f
    offset = _columns(errors)[0]
    return kappa_a * total_a * offset[0], kappa_b * total_b * offset[1]


def pair_kernel_dc_unsaturated(kernel: PairKernel, difference, errors: OpAmpErrors | None = None):
    """:func:`pair_kernel_dc` when neither line amplifier is at a rail, from ``difference`` =
    y_b - y_a = kappa_a sum_a - kappa_b sum_b + o_b - o_a (:func:`pair_kernel_line_gains`,
    :func:`pair_kernel_line_offsets`): one sum per neuron instead of two, so a layer takes one
    convolution with the kernel kappa_a G+ - kappa_b G-. Only the difference stage can then
    reach its rails. ``errors`` as for :func:`pair_kernel_dc`."""
    g = kernel.difference_gain
    offset, gain = _columns(_errors(kernel, errors))
    return kernel.difference_opamp.static_output(
        difference * (g / (1 + g)), 1.0 / (1 + g), offset[2], gain[2]
    )


def wire_effective_conductances(g_cells, g_f, wire_resistance: float):
    """Conductances that give an ideal-wire bit line the static behaviour of one with
    ``wire_resistance`` between neighbouring cells (the layout of :func:`_resistive_bitline`:
    the last row, the bias row, nearest the TIA).

    The resistive line is linear in its row voltages and the TIA output y, so its TIA node is
    n_T = sum_i G_i w_i v_i + g_f w_T y with w = A^-1 e_T (A the line's symmetric KCL matrix),
    and sum_i G_i w_i + g_f w_T = 1 (all sources at 1 V give all nodes 1 V). An ideal line with
    G'_i = G_i w_i / w_T and the same g_f has exactly this node: :func:`pair_kernel_dc` and the
    one-convolution read-out then hold unchanged. One tridiagonal solve per line; ``g_cells``
    (..., rows), ``g_f`` broadcast against its leading axes."""
    g_cells = jnp.asarray(g_cells)
    k = g_cells.shape[-1]
    g_w = 1.0 / wire_resistance
    g_f = jnp.broadcast_to(jnp.asarray(g_f, g_cells.dtype), g_cells.shape[:-1])
    degree = jnp.full((k,), 2.0, g_cells.dtype).at[0].set(1.0)
    diagonal = jnp.concatenate([g_cells + g_w * degree, (g_w + g_f)[..., None]], -1)
    off = jnp.full(g_cells.shape[:-1] + (k,), -g_w, g_cells.dtype)
    zero = jnp.zeros(g_cells.shape[:-1] + (1,), g_cells.dtype)
    lower = jnp.concatenate([zero, off], -1)
    upper = jnp.concatenate([off, zero], -1)
    unit = jnp.zeros(g_cells.shape[:-1] + (k + 1, 1), g_cells.dtype).at[..., k, 0].set(1.0)
    w = jax.lax.linalg.tridiagonal_solve(lower, diagonal, upper, unit)[..., 0]
    return g_cells * w[..., :k] / w[..., k:]


def _peak_difference(rows, cells):
    """max |rows - cells|; for one bit-line voltage without the |rows| x 1 intermediate."""
    if jnp.ndim(cells) == 0:
        return jnp.maximum(jnp.max(rows) - cells, cells - jnp.min(rows))
    return jnp.max(jnp.abs(rows - cells))


def _node(g_rows, v_rows, g_f, y):
    """Voltage of an algebraic summing node: KCL with rows and a feedback conductance."""
    return (jnp.sum(g_rows * v_rows, -1) + g_f * y) / (jnp.sum(g_rows, -1) + g_f)


def _check_bit_lines(owner: str, kernel) -> None:
    """Checks shared by both kernel topologies: bit-line options and the read-out op-amp."""
    require_non_negative(owner, "bitline_capacitance", kernel.bitline_capacitance)
    require_non_negative(owner, "wire_resistance", kernel.wire_resistance)
    if kernel.bitline_capacitance and kernel.wire_resistance:
        raise MemjaxError(
            f"{owner}: bitline_capacitance with wire_resistance (a distributed RC line) "
            "is not modelled; set one of them to 0"
        )
    require_ideal_output(owner, kernel.opamp)


class PairKernel(Block):
    """The proposed (M+1)x2 kernel: two TIAs and one difference stage.

    Attributes:
        conductances: the mapped kernel (G+, G-, k, V_b); R_f = k / difference_gain.
        opamp: the op-amp model of all three amplifiers (the difference stage's on its own
            rails when ``output_swing`` is set).
        difference_resistance: R_d, the input resistors of the difference stage, ohm.
        difference_gain: g, the difference stage's gain (its other resistors are g R_d).
        bitline_capacitance: C of each bit line to ground, F (0: algebraic nodes).
        wire_resistance: bit-line resistance between adjacent cells and from the last cell to
            the TIA, ohm (0: ideal wires). The cells then sit at different bit-line voltages
            (IR drop), found by a tridiagonal solve; the bias row is nearest the TIA.
        opamp_errors: the three op-amps as built on a chip, or None (all three are
            ``opamp``): arrays (..., 3), the trailing axis line A, line B, difference stage,
            the leading axes those of the conductances (none for one kernel, (K,) for a
            layer); offsets in V in series with each v+, own DC gains in V/V. GBW, slew rate
            and rails stay ``opamp``'s, the difference stage's rails ``output_swing``'s
            (:class:`~memjax.devices.opamp.OpAmpErrors`). Used by the vector field (dynamic
            and static), :meth:`steady_guess` and :func:`pair_kernel_dc`, which therefore
            keep the same roots.
        output_swing: the difference stage's rails, +-V (None: ``opamp``'s): its output, the
            kernel's, cannot leave +-output_swing (``HardwareConfig.preactivation_supply``).
            The two TIAs keep ``opamp``'s rails; the swing lies within them.
    """

    conductances: KernelConductances
    opamp: OpAmp
    difference_resistance: float = 10e3
    difference_gain: float = 1.0
    bitline_capacitance: float = 0.0
    wire_resistance: float = 0.0
    opamp_errors: OpAmpErrors | None = None
    output_swing: float | None = None

    def __check_init__(self):
        require_positive("PairKernel", "difference_resistance", self.difference_resistance)
        require_positive("PairKernel", "difference_gain", self.difference_gain)
        _check_bit_lines("PairKernel", self)
        if self.opamp_errors is not None and jnp.shape(self.opamp_errors.offset)[-1:] != (3,):
            raise MemjaxError(
                "PairKernel.opamp_errors: arrays (..., 3) expected (line A, line B, "
                f"difference op-amps), got {jnp.shape(self.opamp_errors.offset)}"
            )
        swing = self.output_swing
        if swing is not None:
            rails = min(self.opamp.rail_high, -self.opamp.rail_low)
            if not 0.0 < swing <= rails:
                raise MemjaxError(
                    f"PairKernel.output_swing = {swing} V: must lie above 0 V and within the "
                    f"op-amp's rails (+-{rails} V)"
                )

    @property
    def difference_opamp(self) -> OpAmp:
        """The difference stage's op-amp: ``opamp`` on +-``output_swing`` (its own rails
        when that is None)."""
        if self.output_swing is None:
            return self.opamp
        return dataclasses.replace(
            self.opamp, rail_high=self.output_swing, rail_low=-self.output_swing
        )

    @property
    def dynamic_nodes(self) -> bool:
        return bool(self.bitline_capacitance)

    def rows(self, inputs):
        return jnp.concatenate([inputs, jnp.full((1,), self.conductances.bias_voltage)])

    @property
    def g_f(self):
        return self.difference_gain / self.conductances.transimpedance

    def initial_state(self):
        return jnp.zeros(5 if self.dynamic_nodes else 3)

    def steady_guess(self, inputs):
        """The exact steady state in closed form for ideal bit lines (the static roots of
        :func:`pair_kernel_dc`; with bit-line capacitance, the nodes at their KCL voltages);
        from rest with resistive wires."""
        if self.wire_resistance:
            return self.initial_state()
        c, amp, g = self.conductances, self.opamp, self.difference_gain
        offset, gain = _columns(self.opamp_errors)
        rows = self.rows(inputs)
        total_a, total_b = jnp.sum(c.positive) + self.g_f, jnp.sum(c.negative) + self.g_f
        y_a = amp.static_output(
            -jnp.sum(c.positive * rows) / total_a, self.g_f / total_a, offset[0], gain[0]
        )
        y_b = amp.static_output(
            -jnp.sum(c.negative * rows) / total_b, self.g_f / total_b, offset[1], gain[1]
        )
        y_d = self.difference_opamp.static_output(
            g * (y_b - y_a) / (1 + g), 1.0 / (1 + g), offset[2], gain[2]
        )
        if not self.dynamic_nodes:
            return jnp.stack([y_a, y_b, y_d])
        node_a = _node(c.positive, rows, self.g_f, y_a)
        node_b = _node(c.negative, rows, self.g_f, y_b)
        return jnp.stack([y_a, y_b, y_d, node_a, node_b])

    def _nodes(self, y, rows):
        """(cells_a, tia_a, cells_b, tia_b): bit-line voltage at every cell and at each TIA."""
        if self.dynamic_nodes:
            return y[3], y[3], y[4], y[4]
        c = self.conductances
        if self.wire_resistance:
            cells_a, tia_a = _resistive_bitline(
                c.positive, rows, self.g_f, y[0], 1.0 / self.wire_resistance
            )
            cells_b, tia_b = _resistive_bitline(
                c.negative, rows, self.g_f, y[1], 1.0 / self.wire_resistance
            )
            return cells_a, tia_a, cells_b, tia_b
        node_a = _node(c.positive, rows, self.g_f, y[0])
        node_b = _node(c.negative, rows, self.g_f, y[1])
        return node_a, node_a, node_b, node_b

    def _wire_power(self, cells_a, tia_a, cells_b, tia_b):
        if not self.wire_resistance:
            return jnp.zeros(())
        total = 0.0
        for cells, tia in ((cells_a, tia_a), (cells_b, tia_b)):
            line = jnp.append(cells, tia)
            total = total + jnp.sum(jnp.diff(line) ** 2) / self.wire_resistance
        return total

    def _difference_inputs(self, y):
        g = self.difference_gain
        v_plus = y[1] * g / (1 + g)  # R_d from v_B, g R_d to ground
        v_minus = (g * y[0] + y[2]) / (1 + g)  # R_d from v_A, g R_d feedback from the output
        return v_plus, v_minus

    def vector_field(self, t, y, inputs, static=False):
        rows = self.rows(inputs)
        _, node_a, _, node_b = self._nodes(y, rows)
        amp = self.opamp
        offset, gain = _columns(self.opamp_errors)
        v_plus, v_minus = self._difference_inputs(y)
        rates = [
            amp.output_rate(y[0], -node_a, static, offset[0], gain[0]),
            amp.output_rate(y[1], -node_b, static, offset[1], gain[1]),
            self.difference_opamp.output_rate(y[2], v_plus - v_minus, static, offset[2], gain[2]),
        ]
        if self.dynamic_nodes:
            c = self.conductances
            for g, node, out in ((c.positive, node_a, y[0]), (c.negative, node_b, y[1])):
                current = jnp.sum(g * (rows - node)) + self.g_f * (out - node)
                scale = self.bitline_capacitance if not static else jnp.sum(g) + self.g_f
                rates.append(current / scale)
        return jnp.stack(rates)

    def outputs(self, y, inputs):
        return y[2:3]

    def bit_line_voltages(self, y, inputs):
        """(line A, line B) voltages at their TIAs, V."""
        _, node_a, _, node_b = self._nodes(y, self.rows(inputs))
        return node_a, node_b

    def memristor_voltages(self, y, inputs):
        rows = self.rows(inputs)
        cells_a, _, cells_b, _ = self._nodes(y, rows)
        return jnp.concatenate([rows - cells_a, rows - cells_b])

    def peak_memristor_voltage(self, y, inputs):
        rows = self.rows(inputs)
        cells_a, _, cells_b, _ = self._nodes(y, rows)
        return jnp.maximum(_peak_difference(rows, cells_a), _peak_difference(rows, cells_b))

    @property
    def loads_inputs(self):
        return True

    def input_currents(self, y, inputs):
        rows = self.rows(inputs)
        cells_a, _, cells_b, _ = self._nodes(y, rows)
        c = self.conductances
        return (c.positive * (rows - cells_a) + c.negative * (rows - cells_b))[:-1]

    def power(self, y, inputs, load=None):
        rows = self.rows(inputs)
        cells_a, node_a, cells_b, node_b = self._nodes(y, rows)
        c, g_d = self.conductances, 1.0 / self.difference_resistance
        g_g = g_d / self.difference_gain
        memristors = jnp.sum(c.positive * (rows - cells_a) ** 2) + jnp.sum(
            c.negative * (rows - cells_b) ** 2
        )
        v_plus, v_minus = self._difference_inputs(y)
        feedback = self.g_f * ((y[0] - node_a) ** 2 + (y[1] - node_b) ** 2)
        difference = g_d * (y[0] - v_minus) ** 2 + g_g * (y[2] - v_minus) ** 2
        difference += g_d * (y[1] - v_plus) ** 2 + g_g * v_plus**2
        i_a = self.g_f * (y[0] - node_a) + g_d * (y[0] - v_minus)
        i_b = self.g_f * (y[1] - node_b) + g_d * (y[1] - v_plus)
        i_out = g_g * (y[2] - v_minus) + _load(load)
        opamps = sum(
            output_stage_power(amp, out, i)
            for amp, out, i in (
                (self.opamp, y[0], i_a),
                (self.opamp, y[1], i_b),
                (self.difference_opamp, y[2], i_out),
            )
        )
        wires = self._wire_power(cells_a, node_a, cells_b, node_b)
        return Power(memristors, feedback + difference + wires, jnp.zeros(()), opamps)

    @property
    def state_scale(self):
        return self.opamp.pole_time_constant


def _resistive_bitline(g_cells, rows, g_f, y, g_w):
    """Cell voltages n_1..n_K (farthest from the TIA first) and the TIA node n_T of a bit line
    with conductance g_w between neighbours: KCL is tridiagonal,
    (G_j + g_w deg_j) n_j - g_w (n_{j-1} + n_{j+1}) = G_j v_j, (g_w + G_f) n_T - g_w n_K = G_f y.
    """
    k = g_cells.shape[-1]
    degree = jnp.full((k,), 2.0).at[0].set(1.0)
    diagonal = jnp.append(g_cells + g_w * degree, g_w + g_f)
    off = jnp.full((k,), -g_w)
    lower = jnp.concatenate([jnp.zeros(1), off])
    upper = jnp.concatenate([off, jnp.zeros(1)])
    rhs = jnp.append(g_cells * rows, g_f * y)[:, None]
    nodes = jax.lax.linalg.tridiagonal_solve(lower, diagonal, upper, rhs)[:, 0]
    return nodes[:k], nodes[k]


class ColumnKernel(Block):
    """The original (2M+1)x1 kernel: an inverting amplifier per input and one TIA.

    Attributes:
        conductances: the mapped kernel (G+, G-, k, V_b); R_f = k.
        opamp: the op-amp model of the TIA and of every input inverter.
        inverter_resistance: input and feedback resistance of each inverter, ohm.
        bitline_capacitance: C of the bit line to ground, F (0: algebraic node).
        wire_resistance: bit-line resistance between adjacent cells and from the last cell to
            the TIA, ohm (0: ideal wire). Cells in row order, the first farthest from the TIA:
            the M v_i rows, the M -v_i rows, then the bias row nearest the TIA.
    """

    conductances: KernelConductances
    opamp: OpAmp
    inverter_resistance: float = 10e3
    bitline_capacitance: float = 0.0
    wire_resistance: float = 0.0

    def __check_init__(self):
        require_positive("ColumnKernel", "inverter_resistance", self.inverter_resistance)
        _check_bit_lines("ColumnKernel", self)

    @property
    def size(self) -> int:
        return self.conductances.positive.shape[-1] - 1

    @property
    def g_f(self):
        return 1.0 / self.conductances.transimpedance

    def row_conductances(self):
        """Conductances of the 2M+1 rows: G-_i on v_i, G+_i on -v_i, |dG_b| on the bias."""
        c = self.conductances
        bias = jnp.abs(c.positive[-1] - c.negative[-1])
        return jnp.concatenate([c.negative[:-1], c.positive[:-1], bias[None]])

    def rows(self, y, inputs):
        c = self.conductances
        sign = jnp.sign(c.positive[-1] - c.negative[-1])
        bias = -sign * c.bias_voltage
        inverted = y[1 : 1 + self.size]
        return jnp.concatenate([inputs, inverted, bias[None]])

    def initial_state(self):
        return jnp.zeros(1 + self.size + (1 if self.bitline_capacitance else 0))

    def _cells_and_node(self, y, rows):
        """Bit-line voltage at every cell, and at the TIA."""
        if self.bitline_capacitance:
            return y[-1], y[-1]
        if self.wire_resistance:
            return _resistive_bitline(
                self.row_conductances(), rows, self.g_f, y[0], 1.0 / self.wire_resistance
            )
        node = _node(self.row_conductances(), rows, self.g_f, y[0])
        return node, node

    def vector_field(self, t, y, inputs, static=False):
        rows = self.rows(y, inputs)
        _, node = self._cells_and_node(y, rows)
        amp = self.opamp
        inverted = y[1 : 1 + self.size]
        inverter_minus = 0.5 * (inputs + inverted)
        rates = [
            amp.output_rate(y[0], -node, static)[None],
            amp.output_rate(inverted, -inverter_minus, static),
        ]
        if self.bitline_capacitance:
            g = self.row_conductances()
            current = jnp.sum(g * (rows - node)) + self.g_f * (y[0] - node)
            scale = self.bitline_capacitance if not static else jnp.sum(g) + self.g_f
            rates.append((current / scale)[None])
        return jnp.concatenate(rates)

    def outputs(self, y, inputs):
        return y[0:1]

    def memristor_voltages(self, y, inputs):
        rows = self.rows(y, inputs)
        return rows - self._cells_and_node(y, rows)[0]

    @property
    def loads_inputs(self):
        return True

    def input_currents(self, y, inputs):
        rows = self.rows(y, inputs)
        cells, _ = self._cells_and_node(y, rows)
        g = self.row_conductances()
        inverted = y[1 : 1 + self.size]
        to_rows = (g * (rows - cells))[: self.size]  # input i drives row i directly
        return to_rows + (inputs - 0.5 * (inputs + inverted)) / self.inverter_resistance

    def power(self, y, inputs, load=None):
        rows = self.rows(y, inputs)
        cells, node = self._cells_and_node(y, rows)
        g = self.row_conductances()
        memristors = jnp.sum(g * (rows - cells) ** 2)
        inverted = y[1 : 1 + self.size]
        inverter_minus = 0.5 * (inputs + inverted)
        g_i = 1.0 / self.inverter_resistance
        resistors = self.g_f * (y[0] - node) ** 2
        if self.wire_resistance:
            line = jnp.append(cells, node)
            resistors += jnp.sum(jnp.diff(line) ** 2) / self.wire_resistance
        resistors += g_i * jnp.sum(
            (inputs - inverter_minus) ** 2 + (inverted - inverter_minus) ** 2
        )
        i_tia = self.g_f * (y[0] - node) + _load(load)
        # each inverter output feeds its feedback resistor and its crossbar row
        g_rows = self.conductances.positive[:-1]
        cells_inverted = cells[self.size : 2 * self.size] if self.wire_resistance else cells
        i_inv = g_i * (inverted - inverter_minus) + g_rows * (inverted - cells_inverted)
        opamps = output_stage_power(self.opamp, y[0], i_tia) + jnp.sum(
            output_stage_power(self.opamp, inverted, i_inv)
        )
        return Power(memristors, resistors, jnp.zeros(()), opamps)

    @property
    def state_scale(self):
        return self.opamp.pole_time_constant

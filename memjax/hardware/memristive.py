"""The trained ShuffleNetV2 as memristive circuits, and its steady state in convolution form.

:func:`convert` maps every convolution and the fully connected layer onto (M+1)x2 crossbar
kernels (:class:`~memjax.circuits.PairKernel`), each batch norm onto an MBN stage (or folds it
into the kernels), every ReLU onto the diode ReLU with its limiter at V_p, the input unit's
max pool onto a diode max pool and the global average pool onto a summing amplifier; channel
split, shuffle and concat stay wiring. :meth:`MemristiveShuffleNet.steady_logits` evaluates
the whole network at steady state, every stage from the same static equations as its block's
vector field (``pair_kernel_dc``, ``summing_amplifier_dc``, ``steady_output``), the crossbars
as convolutions over conductances.

Signal scaling: an activation of x network units is x * V_p / activation_limit volts, so the
limiter at V_p is the software clamp. Gray levels 0..255 drive the first crossbar's word lines
at 0..V_p.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from memjax import convolution as conv
from memjax.circuits import PairKernel
from memjax.circuits.amplifiers import SummingAmplifier, summing_amplifier_dc
from memjax.circuits.crossbar import (
    pair_kernel_dc,
    pair_kernel_dc_unsaturated,
    pair_kernel_line_gains,
    pair_kernel_line_nodes,
    pair_kernel_line_offsets,
)
from memjax.circuits.diodes import DiodeClamp, DiodeMaxPool, DiodeReLU, total_load_conductance
from memjax.devices import OpAmp
from memjax.devices.opamp import OpAmpErrors
from memjax.errors import MemjaxError
from memjax.hardware.config import HardwareConfig
from memjax.hardware.graph import UNIT_ROLES, propagate, run_unit
from memjax.hardware.layers import network_layers
from memjax.hardware.loads import row_loads
from memjax.hardware.transfer import TransferTable
from memjax.network.folding import fold_batchnorm
from memjax.network.shufflenet import BasicUnit, ConvBN, DownsamplingUnit, ShuffleNetV2


class CrossbarStage(eqx.Module):
    """One crossbar layer: K kernels on (M+1)x2 pairs, then its MBN and diode ReLU.

    Attributes:
        kernel: the kernels; conductances of shape (K, M+1), the bias row last.
        mbn: per-channel MBN, or None (folded BN, or none): input conductances (K, 3) on
            the kernel output, +V_b and -V_b (a differential bias pair, as the crossbar's
            columns, so that small shifts need no conductance below g_min).
        relu: the diode ReLU with limiter, or None (linear stage).
        clamp: the symmetric +-V_p limiter of a linear stage, or None.
        transfer: the ReLU's or clamp's steady-state curve tabulated (``HardwareConfig.
            dc_transfer == "table"``), or None to solve its node for every neuron.
        kind: "stem", "depthwise", "pointwise" or "fully_connected".
        weight_shape: shape of the software kernel the conductances are laid out as.
        stride: convolution stride.
        opamp_errors: a chip's op-amps as built, arrays (K, 4): per kernel its line A, line B
            and difference op-amps, then its MBN's (ignored without MBN); None: as designed.
    """

    kernel: PairKernel
    mbn: SummingAmplifier | None
    relu: DiodeReLU | None
    clamp: DiodeClamp | None
    transfer: TransferTable | None
    kind: str = eqx.field(static=True)
    weight_shape: tuple[int, ...] = eqx.field(static=True)
    stride: int = eqx.field(static=True, default=1)
    opamp_errors: OpAmpErrors | None = None

    def _convolve(self, v, conductances):
        g = conductances[:, :-1]
        if self.kind == "fully_connected":
            return v @ g.T
        g = g.T.reshape(self.weight_shape)
        if self.kind == "stem":
            return conv.conv3x3(v, g, self.stride)
        if self.kind == "depthwise":
            return conv.depthwise_conv3x3(v, g, self.stride)
        return conv.pointwise_conv(v, g)

    def steady(self, v: Float[Array, "n ... c"]) -> Array:
        """Output voltages at steady state for input voltages ``v`` (NHWC or (N, C))."""
        return self.steady_with_peak(v)[0]

    def steady_with_peak(self, v: Float[Array, "n ... c"], rows=None) -> tuple[Array, Array]:
        """(output voltages, the largest |V| across any memristor of the stage) at steady
        state. A crossbar cell sees its row's voltage (an input, or V_b on the bias row) less
        its bit line's; an MBN cell its terminal's (the kernel output, +-V_b, or the MBN
        output) less the summing node's. Both nodes come from KCL with the closed-form
        op-amp outputs: at virtual ground while the op-amp is inside its rails, off it when
        the op-amp sits on one (where the largest voltages are). The crossbar's peak takes,
        for every neuron, the batch's largest and smallest input against its lines' nodes:
        exact while the lines are at ground, an upper bound when a line amplifier is on a
        rail (its own inputs may not reach the batch's extremes). ``rows``: the conductance
        of the rows each output node drives, S, broadcast against the outputs
        (``HardwareConfig.row_drive`` "direct"), or None."""
        if self.kind != "stem":  # the stem's lines use up to ~40 % of their swing: no proof
            y = jax.lax.cond(
                self.lines_cannot_saturate(v),
                lambda x: self._unsaturated_readout(x),
                lambda x: self._readout(x),
                v,
            )
        else:
            y = self._readout(v)
        peak = self._crossbar_peak(v)
        if self.mbn is not None:
            g = self.mbn.input_conductances
            v_b = self.mbn.bias_voltage
            drive = g[:, 0] * y + (g[:, 1] - g[:, 2]) * v_b
            errors = self.opamp_errors
            kernel_output = y
            y = summing_amplifier_dc(
                self.mbn,
                drive,
                None if errors is None else errors.offset[:, 3],
                None if errors is None else errors.open_loop_gain[:, 3],
            )
            g_f = self.mbn.feedback_conductance
            total = jnp.sum(g, -1) + self.mbn.bias_conductance + g_f
            node = (drive + self.mbn.bias_conductance * v_b + g_f * y) / total
            for terminal in (kernel_output, v_b, -v_b, y):  # input, bias pair, feedback
                peak = jnp.maximum(peak, jnp.max(jnp.abs(terminal - node)))
        node = self.relu if self.relu is not None else self.clamp
        if node is None:
            return y, peak  # an op-amp output: its voltage does not depend on its load
        if self.transfer is not None:
            if rows is not None:  # HardwareConfig refuses the combination; so does this
                raise MemjaxError("a transfer table holds R_L alone: rows need dc_transfer='exact'")
            return self.transfer(y), peak
        load = None if rows is None else total_load_conductance(node) + rows
        return node.steady_output(y, load), peak

    def _crossbar_peak(self, v):
        """The largest |V| across the stage's crossbar cells (:meth:`steady_with_peak`)."""
        c = self.kernel.conductances
        sum_a = self._convolve(v, c.positive) + c.positive[:, -1] * c.bias_voltage
        sum_b = self._convolve(v, c.negative) + c.negative[:, -1] * c.bias_voltage
        node_a, node_b = pair_kernel_line_nodes(self.kernel, sum_a, sum_b, self.opamp_errors)
        rows = (jnp.max(v), jnp.min(v), jnp.asarray(c.bias_voltage, v.dtype))
        return functools.reduce(
            jnp.maximum, (jnp.max(jnp.abs(row - node)) for row in rows for node in (node_a, node_b))
        )

    def _readout(self, v):
        """Both bit-line sums, each through its line amplifier and its rails."""
        c = self.kernel.conductances
        sums = (self._convolve(v, c.positive), self._convolve(v, c.negative))
        if self.kind in ("pointwise", "fully_connected"):
            # keeps XLA from fusing the read-out arithmetic into the matrix products:
            # measured on 2 CPU cores, 1.5x faster for a 1x1 stage at batch 32
            sums = jax.lax.optimization_barrier(sums)
        sum_a, sum_b = sums
        sum_a = sum_a + c.positive[:, -1] * c.bias_voltage
        sum_b = sum_b + c.negative[:, -1] * c.bias_voltage
        return pair_kernel_dc(self.kernel, sum_a, sum_b, self.opamp_errors)

    def _unsaturated_readout(self, v):
        """The same when no line amplifier is at a rail: one convolution."""
        c = self.kernel.conductances
        kappa_a, kappa_b = pair_kernel_line_gains(self.kernel, self.opamp_errors)
        offset_a, offset_b = pair_kernel_line_offsets(self.kernel, self.opamp_errors)
        w = kappa_a[:, None] * c.positive - kappa_b[:, None] * c.negative
        difference = self._convolve(v, w) + (w[:, -1] * c.bias_voltage + offset_b - offset_a)
        return pair_kernel_dc_unsaturated(self.kernel, difference, self.opamp_errors)

    def lines_cannot_saturate(self, v) -> Array:
        """True when, for the inputs ``v`` (the whole batch), no bit-line amplifier of this
        stage can reach a rail, proved by a bound on every line's sum plus its bias row:
        Cauchy-Schwarz, |sum_i G_i v_i| <= |G|_2 max |v|_2 over the positions, for a 1x1
        stage; |G|_1 max |v| over its own channel for a depthwise kernel. One reduction of
        the inputs each (measured: three norms, not fused, cost 0.35 ms per 1x1 stage at
        batch 32, a third of its convolution). Then :meth:`_unsaturated_readout` is exact;
        measured on FER2013 the lines of the shipped model use at most ~20 % of their swing
        outside the stem, so the bound holds with a margin.
        """
        c, amp = self.kernel.conductances, self.kernel.opamp
        if self.kind == "depthwise":
            largest = jnp.max(jnp.abs(v), axis=tuple(range(v.ndim - 1)))
            norm = lambda rows: jnp.sum(jnp.abs(rows), -1)  # noqa: E731
        else:
            largest = jnp.sqrt(jnp.max(jnp.sum(v * v, -1)))
            norm = lambda rows: jnp.sqrt(jnp.sum(rows * rows, -1))  # noqa: E731
        headroom = jnp.minimum(-jnp.asarray(amp.rail_low), jnp.asarray(amp.rail_high))
        holds = jnp.asarray(True)
        lines = zip(
            (c.positive, c.negative),
            pair_kernel_line_gains(self.kernel, self.opamp_errors),
            pair_kernel_line_offsets(self.kernel, self.opamp_errors),
        )
        for g, kappa, offset in lines:
            bound = norm(g[:, :-1]) * largest + jnp.abs(g[:, -1] * c.bias_voltage)
            holds = holds & jnp.all(kappa * bound + jnp.abs(offset) < headroom)
        return holds


class MemristiveShuffleNet(eqx.Module):
    """The whole memristive network.

    Attributes:
        stages: the crossbar stages in signal order, grouped as the software units are:
            the input unit's convolution, then per unit its stages, then the output unit's
            convolution and the fully connected crossbar.
        unit_kinds: "basic" or "downsampling" for every unit between.
        max_pool: the input unit's 3x3 max pool (nine inputs).
        max_pool_transfer: with super diodes and ``dc_transfer == "table"``, the pool's output
            tabulated against its largest input (the other op-amps at their low rail, their
            diodes leaking I_s backwards): measured within 1e-6 V of the exact solve on windows
            of ReLU outputs with zeros and ties (tests/test_memristive.py); else None.
        average_pool: the global average pool (inverting summing amplifier).
        volts_per_unit: V_p / activation_limit, V.
        hardware: the physical description it was built from.
        average_pool_errors: a chip's average-pool op-amps as built, arrays (C, 1); None:
            as designed.
    """

    input_stage: CrossbarStage
    max_pool: DiodeMaxPool
    max_pool_transfer: TransferTable | None
    units: tuple[tuple[CrossbarStage, ...], ...]
    unit_kinds: tuple[str, ...] = eqx.field(static=True)
    output_stage: CrossbarStage
    average_pool: SummingAmplifier
    fully_connected: CrossbarStage
    volts_per_unit: float
    hardware: HardwareConfig = eqx.field(static=True)
    average_pool_errors: OpAmpErrors | None = None

    def input_voltages(self, gray_levels) -> Array:
        """Word-line voltages of the first crossbar: gray levels 0..255 onto 0..V_p."""
        x = jnp.asarray(gray_levels, jnp.result_type(float))
        x = x[..., None] if x.ndim == 3 else x
        return x * (self.hardware.v_p / 255.0)

    def steady_logits(self, gray_levels) -> Array:
        """Logits (network units) of the circuit at steady state, for (N, 48, 48) images."""
        return self.steady_state(gray_levels)[0]

    def steps(self) -> list:
        """The stages in signal order with their wiring, as :func:`~memjax.hardware.graph.
        propagate` walks them: (name, unit kind, unit index, role, stage), the stage a
        :class:`CrossbarStage`, the max pool or the average pool (unit index -1 outside the
        units; the roles of a unit are :data:`~memjax.hardware.graph.UNIT_ROLES`)."""
        steps = [
            ("input.conv", "input", -1, "stem", self.input_stage),
            ("input.max_pool", "input", -1, "max_pool", self.max_pool),
        ]
        for index, (kind, stages) in enumerate(zip(self.unit_kinds, self.units, strict=True)):
            for role, stage in zip(UNIT_ROLES[kind], stages, strict=True):
                steps.append((f"unit{index}.{role}", kind, index, role, stage))
        steps.append(("output.conv", "output", -1, "output_conv", self.output_stage))
        steps.append(("output.average_pool", "output", -1, "pool", self.average_pool))
        steps.append(("output.fc", "output", -1, "fc", self.fully_connected))
        return steps

    def steady_state(self, gray_levels) -> tuple[Array, dict[str, Array]]:
        """(logits, the largest |V| across any memristor at steady state, V, by unit kind:
        "input", "basic", "downsampling", "output") for (N, 48, 48) images. Under ``jax.jit``
        the peaks cost nothing where the caller drops them.

        Each stretch of consecutive basic units (3, 7 and 3 in the 1.0x network) runs as one
        ``lax.scan`` over its units' stacked stages: the same equations (the same logits bit
        for bit) in a program with one basic unit per stretch, traced and compiled in 11.4,
        13.9 and 12.9 s against 15.5, 19.8 and 19.4 s unit by unit (``paper``,
        ``paper_plain_diode_relu``, ``near_ideal``, batch 128, 2 CPU cores, 2026-12-07).
        With ``row_drive`` "direct" (each stage's own row loads) the units run one after
        the other."""
        x = self.input_voltages(gray_levels)
        steps = self.steps()
        rows = row_loads(steps, x.shape[1:3]) if self.hardware.row_drive == "direct" else None
        peaks: dict[str, Array] = {}
        run = self._steady_run(peaks, rows)
        wiring = (
            lambda x: jnp.split(x, 2, axis=-1),
            lambda a, b: jnp.concatenate([a, b], axis=-1),
            conv.channel_shuffle,
        )

        def repeat(units, x):
            parts = [eqx.partition(tuple(step[4] for step in unit), eqx.is_array) for unit in units]
            arrays, fixed = zip(*parts, strict=True)
            if rows is not None or not _stackable(arrays, fixed):
                for unit in units:
                    x = run_unit(unit, x, run, *wiring)
                return x

            def body(carry, unit_arrays):
                x, peak = carry
                stages = eqx.combine(unit_arrays, fixed[0])
                unit = [step[:4] + (stage,) for step, stage in zip(units[0], stages, strict=True)]
                inner: dict[str, Array] = {}
                x = run_unit(unit, x, self._steady_run(inner, None), *wiring)
                return (x, jnp.maximum(peak, inner["basic"].astype(peak.dtype))), None

            stacked = jax.tree.map(lambda *a: jnp.stack(a), *arrays)
            (x, peak), _ = jax.lax.scan(body, (x, jnp.zeros((), x.dtype)), stacked)
            peaks["basic"] = jnp.maximum(peaks.get("basic", 0.0), peak)
            return x

        logits = propagate(steps, x, run, *wiring, repeat=repeat)
        return logits / self.volts_per_unit, peaks

    def _steady_run(self, peaks: dict, rows: dict | None):
        """``run`` for :func:`~memjax.hardware.graph.propagate`: a stage's steady-state
        output, its largest memristor |V| kept in ``peaks`` by unit kind."""

        def run(name, kind, stage, v):
            if name == "input.max_pool":
                return self._max_pool_steady(v, None if rows is None else rows[name])
            if name == "output.average_pool":
                pooled = self._average_pool_steady(v)
                # the pool's cells see its inputs and (feedback) its output
                pool_peak = jnp.maximum(jnp.max(jnp.abs(v)), jnp.max(jnp.abs(pooled)))
                peaks[kind] = jnp.maximum(peaks[kind], pool_peak)
                return pooled
            out, peak = stage.steady_with_peak(v, None if rows is None else rows[name])
            peaks[kind] = jnp.maximum(peaks.get(kind, 0.0), peak)
            return out

        return run

    def _max_pool_steady(self, x, rows):
        if self.max_pool_transfer is not None:  # the largest of each window, 0 V padding
            largest = functools.reduce(jnp.maximum, (w for _, _, w in conv._taps(x, 2, 0.0)))
            return self.max_pool_transfer(largest)
        windows = jnp.stack([w for _, _, w in conv._taps(x, 2, 0.0)], axis=-1)
        load = None if rows is None else total_load_conductance(self.max_pool) + rows
        return self.max_pool.steady_output(windows, load)

    def _average_pool_steady(self, x):
        count = x.shape[1] * x.shape[2]
        if count != self.average_pool.input_conductances.shape[0]:
            raise MemjaxError(f"average pool built for a different map size than {count}")
        g = self.average_pool.input_conductances[0]
        errors = self.average_pool_errors
        return summing_amplifier_dc(
            self.average_pool,
            g * jnp.sum(x, axis=(1, 2)),
            None if errors is None else errors.offset[:, 0],
            None if errors is None else errors.open_loop_gain[:, 0],
        )


def _stackable(arrays, fixed) -> bool:
    """Whether units' stages (split into ``arrays`` and ``fixed`` non-array parts) stack into
    one scan: the same arrays' shapes and dtypes, and equal fixed parts."""
    shapes = [[(a.shape, a.dtype) for a in jax.tree.leaves(tree)] for tree in arrays]
    same_arrays = all(
        jax.tree.structure(tree) == jax.tree.structure(arrays[0]) and shape == shapes[0]
        for tree, shape in zip(arrays, shapes, strict=True)
    )
    return same_arrays and all(eqx.tree_equal(part, fixed[0]) is True for part in fixed)


def with_pool_inputs(net: MemristiveShuffleNet, count: int) -> MemristiveShuffleNet:
    """``net`` for inputs of another size: its global average pool rebuilt for a last feature
    map of ``count`` positions (input conductances feedback / count, as :func:`convert` builds
    it for 48x48). Every crossbar is convolutional and unchanged; an 8x8 input leaves a 1x1
    map, which makes whole-network transients cheap enough for tests."""
    pool = net.average_pool
    feedback = pool.feedback_conductance
    inputs = jnp.full((count,), 1.0, feedback.dtype) * feedback / count
    return eqx.tree_at(lambda n: n.average_pool.input_conductances, net, inputs)


def compile_steady_logits(net: MemristiveShuffleNet) -> Callable[[Array], Array]:
    """``net.steady_logits`` compiled for this one network: its conductances and every other
    array are constants of the program, as a programmed chip's are during inference.

    With the network as an argument (``eqx.filter_jit(lambda n, x: n.steady_logits(x))``),
    every call derives again from the conductances what the read-outs use (transposed
    kernels, the one-convolution kernel kappa_a G+ - kappa_b G-, the saturation bounds'
    norms: passes over all 2.5 M conductances of the 1.0x network) and flattens the network's
    ~2,800 leaves; closed over, XLA folds the derived arrays once when it compiles. Measured
    on 2 CPU cores (near_ideal, 1.0x, batch 32): 33 against 48-58 ms per batch
    (``benchmarks/bench_memristive.py``). Same equations, so the same logits up to float
    rounding (tests/test_memristive.py). Compiles once per network: for many chips, or to
    differentiate in the conductances, pass the network as an argument instead.
    """
    return jax.jit(lambda gray_levels: net.steady_logits(gray_levels))


@eqx.filter_jit
def _steady_state_program(net: MemristiveShuffleNet, gray_levels):
    return net.steady_state(gray_levels)


def steady_state_in_batches(
    net: MemristiveShuffleNet, gray_levels, batch_size: int = 128
) -> tuple[np.ndarray, dict[str, float]]:
    """(logits, the largest memristor |V| by unit kind over all images) of
    :meth:`MemristiveShuffleNet.steady_state` in fixed batches (the last padded with black
    images, which join the peaks: a black image is an input the chip can see).

    Compiled with the network as an argument, so networks of one structure share the
    program: the main job's preset on the shipped and on its circuit-trained model, and its
    transient's check. Compiling it took ~18 s a network on 2 cores (2026-12-07), closed
    over (:func:`compile_steady_logits`) or not; closed over it runs faster per batch, which
    384 images do not notice."""
    compiled = functools.partial(_steady_state_program, net)
    logits, peaks = [], {}
    for start in range(0, len(gray_levels), batch_size):
        chunk = np.asarray(gray_levels[start : start + batch_size])
        valid = len(chunk)
        if valid < batch_size:
            chunk = np.concatenate(
                [chunk, np.zeros((batch_size - valid, *chunk.shape[1:]), chunk.dtype)]
            )
        out, chunk_peaks = compiled(chunk)
        logits.append(np.asarray(out)[:valid])
        for kind, value in chunk_peaks.items():
            peaks[kind] = max(peaks.get(kind, 0.0), float(value))
    return np.concatenate(logits), peaks


def convert(model: ShuffleNetV2, hardware: HardwareConfig) -> MemristiveShuffleNet:
    """Map a trained model (evaluation mode) onto circuits under ``hardware``. With
    ``hardware.batch_norm == "folded"`` a model with separate batch norm is folded first
    (the same function: :func:`~memjax.network.folding.fold_batchnorm`)."""
    if hardware.batch_norm == "folded":
        model = fold_batchnorm(model)
    elif model.config.bn_mode == "folded":
        raise MemjaxError(
            "HardwareConfig.batch_norm: 'separate' MBN stages need a model with separate batch "
            "norm; this model's is folded into its convolutions (use batch_norm='folded')"
        )
    config = model.config
    if config.activation_limit is None:
        raise MemjaxError(
            "the model has no activation_limit: the limiter at V_p needs a clamped ReLU "
            "(train with an activation limit)"
        )
    if config.input_range[0] != 0.0:
        raise MemjaxError(
            f"input_range {config.input_range}: zero padding at 0 V needs a range starting at 0"
        )
    if hardware.topology != "proposed":
        raise MemjaxError(
            "simulating the original (2M+1)x1 topology over a whole network is not built yet; "
            "its resources are counted by memjax.hardware.resources"
        )
    if hardware.wire_resistance:
        raise MemjaxError(
            "HardwareConfig.wire_resistance: a whole network with resistive bit lines is "
            "built per chip (ChipVariation.wire_resistance), not by convert; leave it 0 here"
        )
    scale = hardware.v_p / config.activation_limit
    builder = _Builder(hardware, scale, config.bn_mode == "folded", config.clamp_linear)
    stem_gain = config.input_range[1] / config.activation_limit
    input_stage = builder.conv(model.input_unit.conv, "stem", stem_gain)
    units, kinds = [], []
    for unit in model.units:
        if isinstance(unit, BasicUnit):
            layers = [(unit.expand, "pointwise"), (unit.depthwise, "depthwise")]
            layers.append((unit.project, "pointwise"))
            kinds.append("basic")
        elif isinstance(unit, DownsamplingUnit):
            layers = [
                (unit.left_depthwise, "depthwise"),
                (unit.left_project, "pointwise"),
                (unit.right_expand, "pointwise"),
                (unit.right_depthwise, "depthwise"),
                (unit.right_project, "pointwise"),
            ]
            kinds.append("downsampling")
        else:
            raise MemjaxError(f"unknown unit {type(unit).__name__}")
        units.append(tuple(builder.conv(layer, kind) for layer, kind in layers))
    output = model.output_unit
    count = network_layers(config)[-2].inputs_per_kernel  # the average pool's inputs
    pool_feedback = hardware.g_max
    average_pool = SummingAmplifier(
        jnp.full((count,), pool_feedback / count),
        jnp.asarray(pool_feedback),
        hardware.opamp,
        memristive=True,
        node_capacitance=hardware.bitline_capacitance,
    )
    # The pool inverts: the fully connected kernel takes -W to give +W . mean.
    weights = -np.asarray(output.fc.kernel[...]).T
    fully_connected = builder.stage(
        weights, np.asarray(output.fc.bias[...]) * scale, None, None, None, "fully_connected", (), 1
    )
    max_pool = builder.max_pool
    return MemristiveShuffleNet(
        input_stage=input_stage,
        max_pool=max_pool,
        max_pool_transfer=_max_pool_table(max_pool, hardware),
        units=tuple(units),
        unit_kinds=tuple(kinds),
        output_stage=builder.conv(output.conv, "pointwise"),
        average_pool=average_pool,
        fully_connected=fully_connected,
        volts_per_unit=scale,
        hardware=hardware,
    )


TRACED_OPAMP_FIELDS = ("gain_bandwidth", "slew_rate")
"""The op-amp parameters the transient's equations read that leave every steady state
unchanged: traced values in the transient, so that one compiled transient serves a sweep."""

DYNAMIC_OPAMP_FIELDS = (
    *TRACED_OPAMP_FIELDS,
    "quiescent_power",
    "bias_figure_of_merit",
    "bias_load_capacitance",
)
"""Op-amp parameters that leave every steady state unchanged (the DC transfer tables built by
:func:`convert` stay exact), so a converted network can swap them without re-converting."""


def with_opamp_dynamics(net: MemristiveShuffleNet, **changes) -> MemristiveShuffleNet:
    """``net`` with every op-amp's GBW, slew rate or bias power parameters replaced (e.g. a GBW
    sweep of the transient); other op-amp parameters change the steady state: convert again
    with a new :class:`HardwareConfig` for those."""
    unknown = sorted(set(changes) - set(DYNAMIC_OPAMP_FIELDS))
    if unknown:
        raise MemjaxError(
            f"with_opamp_dynamics: {unknown} change the steady state; expected only "
            f"{DYNAMIC_OPAMP_FIELDS} (convert the model again for the others)"
        )

    def replace(x):
        return dataclasses.replace(x, **changes) if isinstance(x, OpAmp) else x

    swapped = jax.tree.map(replace, net, is_leaf=lambda x: isinstance(x, OpAmp))
    hardware = net.hardware.replace(opamp=replace(net.hardware.opamp))
    return dataclasses.replace(swapped, hardware=hardware)


class _Builder:
    """Maps one software layer at a time."""

    def __init__(self, hardware: HardwareConfig, scale: float, folded: bool, clamp_linear: bool):
        self.hardware, self.scale, self.folded = hardware, scale, folded
        self.clamp_linear = clamp_linear
        self.relu, self.clamp, self.max_pool = nonlinear_blocks(hardware)
        if hardware.dc_transfer == "table":  # built once, shared by every stage
            self.tables = {
                True: transfer_table(self.relu, hardware),
                False: transfer_table(self.clamp, hardware),
            }

    def conv(self, layer: ConvBN, kind: str, input_gain: float = 1.0) -> CrossbarStage:
        kernel = np.asarray(layer.kernel[...], np.float64) * input_gain
        shape = kernel.shape
        k = shape[-1]
        weights = kernel.reshape(-1, k).T  # (K, M), rows in the kernel's own order
        relu = self.relu if layer.activation == "relu" else None
        clamp = self.clamp if layer.activation != "relu" and self.clamp_linear else None
        if self.folded:
            bias = np.asarray(layer.bias[...]) * self.scale
            return self.stage(weights, bias, None, relu, clamp, kind, shape, layer.stride)
        bn = layer.bn
        a = np.asarray(bn.scale[...]) / np.sqrt(np.asarray(bn.var[...]) + bn.epsilon)
        c = np.asarray(bn.bias[...]) - np.asarray(bn.mean[...]) * a
        # The kernel gives -a conv (the normalised pre-activation, in the range the rails
        # allow) and the inverting MBN, at unity gain, adds the shift c.
        weights = weights * -a[:, None]
        mbn = self.mbn(c * self.scale)
        return self.stage(weights, np.zeros(k), mbn, relu, clamp, kind, shape, layer.stride)

    def stage(self, weights, bias, mbn, relu, clamp, kind, shape, stride) -> CrossbarStage:
        hw = self.hardware
        conductances = hw.mapping.to_conductances(jnp.asarray(weights), jnp.asarray(bias))
        limited = relu is not None or clamp is not None
        kernel = PairKernel(
            conductances,
            hw.opamp,
            difference_resistance=hw.difference_resistance,
            difference_gain=hw.difference_gain,
            bitline_capacitance=hw.bitline_capacitance,
            output_swing=hw.v_p if limited and hw.preactivation_supply == "bounded" else None,
        )
        transfer = None
        if self.hardware.dc_transfer == "table" and limited:
            transfer = self.tables[relu is not None]
        return CrossbarStage(kernel, mbn, relu, clamp, transfer, kind, tuple(shape), stride)

    def mbn(self, shift) -> SummingAmplifier:
        """Per-channel MBN y = -x + shift: G_1 = G_f, and a bias pair G_b+ on +V_b, G_b- on
        -V_b with -(G_b+ - G_b-) V_b / G_f = shift, the larger at g_min + |shift| G_f / V_b
        and the other at g_min; G_f = g_max unless the shift needs a smaller one."""
        hw = self.hardware
        span = hw.g_max - hw.g_min
        needed = np.abs(shift) / hw.bias_voltage  # G_b difference per unit G_f
        g_f = np.minimum(hw.g_max, span / np.maximum(needed, 1e-30))
        delta = -shift / hw.bias_voltage * g_f
        quantize = hw.mapping.quantize
        g_plus = quantize(jnp.asarray(hw.g_min + np.maximum(delta, 0.0)))
        g_minus = quantize(jnp.asarray(hw.g_min + np.maximum(-delta, 0.0)))
        g_f = quantize(jnp.asarray(g_f))
        inputs = jnp.stack([g_f, g_plus, g_minus], axis=-1)
        return SummingAmplifier(
            inputs,
            g_f,
            hw.opamp,
            bias_voltage=hw.bias_voltage,  # the pair's +-V_b (until 2026-12-06: 1 V always)
            memristive=True,
            node_capacitance=hw.bitline_capacitance,
        )


def nonlinear_blocks(hardware: HardwareConfig) -> tuple[DiodeReLU, DiodeClamp, DiodeMaxPool]:
    """The ReLU with its limiter, the linear stages' symmetric clamp and the input unit's
    max pool that ``hardware`` describes: every stage of a converted network uses these."""
    clamp = DiodeClamp(
        hardware.diode,
        hardware.relu_load_resistance,
        hardware.v_p,
        hardware.opamp,
        hardware.relu_series_resistance,
        driver_swing=hardware.clamp_driver_swing,
    )
    super_diode = hardware.relu == "super"
    active = hardware.limiter == "active"
    reference = hardware.v_p if active else hardware.limiter_reference
    relu = DiodeReLU(
        hardware.diode,
        hardware.relu_load_resistance,
        reference,
        hardware.relu_opamp if super_diode else None,
        super_diode,
        hardware.relu_series_resistance,
        diode_limiter=not active,
        reference_buffer=None if active else hardware.opamp,
        rectifier_rail_low=0.0 if hardware.relu_low_rail == "ground" else None,
    )
    max_pool = DiodeMaxPool(
        hardware.diode,
        9,
        hardware.relu_load_resistance,
        hardware.opamp if hardware.max_pool == "super" else None,
        hardware.max_pool == "super",
        hardware.relu_series_resistance,
    )
    return relu, clamp, max_pool


def transfer_table(block: DiodeReLU | DiodeClamp, hardware: HardwareConfig) -> TransferTable:
    """The steady-state curve of a ReLU or clamp over the op-amp rails, tabulated."""
    return TransferTable.build(
        block.steady_output, hardware.opamp.rail_low, hardware.opamp.rail_high
    )


def _max_pool_table(pool: DiodeMaxPool, hardware: HardwareConfig) -> TransferTable | None:
    """The super-diode pool against its largest input, the others far below (a diode-OR
    depends on every input within a few n V_T of the largest: no table)."""
    if not (pool.super_diode and hardware.dc_transfer == "table"):
        return None
    low, high = hardware.opamp.rail_low, hardware.opamp.rail_high

    def largest_alone(v):
        others = jnp.full((v.shape[0], pool.count - 1), low, v.dtype)
        return pool.steady_output(jnp.concatenate([v[:, None], others], axis=1))

    return TransferTable.build(largest_alone, low, high)

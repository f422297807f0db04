"""Whole-network transient of the memristive ShuffleNetV2 for an input step, stage by stage.

Every stage output is an op-amp output or a diode node loaded by fixed conductances (its R_L,
and with ``HardwareConfig.row_drive`` "direct" the rows it drives, each cell ending on a bit
line taken at virtual ground: the same modelling as the steady state), so no stage feels the
dynamics of the ones after it: the network is a DAG of stages, and integrating them one at a
time in signal order, each driven by the saved waveform of what feeds it, is the monolithic
transient without the approximation of waveform relaxation. It is far cheaper than one solve
of the whole state: each stage's adaptive solver takes small steps only while that stage
moves, where one solver for all would take the smallest step of any stage all the time.

Within a stage the neurons are independent too, given the stage's input: each neuron
(``memjax.hardware.stages``: its kernel column, MBN and ReLU) is integrated with its own
adaptive steps (diffrax, default Kvaerno3, time in ns, vectorised over neurons in chunks).
One step size for the whole layer would have to resolve every neuron's every kink (a super
diode closing its loop, an op-amp reaching a rail) at once: measured on an 8x8 patch of the
input layer with super diodes, >1000 shared steps against at most 104 per neuron (34 on
average). Every stage saves on one common time grid (``TransientOptions.grid``: geometric, so
early edges and late tails both get knots): its outputs with their time derivatives (a cubic
Hermite waveform for the stages it drives), its power by kind with its derivative (energy by
exact integration of the interpolant), the largest neuron power and the largest memristor
voltage at the grid times. Channel split, concat and shuffle stay wiring. With "direct" every
op-amp output that drives rows (the average pool's, a linear stage's without a clamp) also
supplies their current; with "ideal" the rows' current is drawn from nothing counted (the
memristors' own dissipation is counted either way). Taking the next stage's bit lines at
virtual ground for the rows is the one approximation of the stage-by-stage solve.
"""

from __future__ import annotations

import dataclasses
import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from memjax import convolution as conv
from memjax.circuits.waveform import Waveform, last_time_outside
from memjax.devices import OpAmp
from memjax.errors import MemjaxError
from memjax.hardware import lockstep
from memjax.hardware.config import HardwareConfig
from memjax.hardware.graph import propagate
from memjax.hardware.lanes import solve_on_lanes
from memjax.hardware.memristive import TRACED_OPAMP_FIELDS, MemristiveShuffleNet
from memjax.hardware.stages import (
    KINDS,
    NeuronStage,
    channel_axes,
    map_per_channel,
    neuron_readouts,
    plan,
    with_rows,
)


class QuietChord(diffrax.VeryChord):
    """diffrax's VeryChord, except that Newton increments below ``noise_floor`` of the error
    scale (atol + rtol |y|) count as converged.

    VeryChord stops on increments below ~1e-13 of that scale in float64, and otherwise judges
    convergence from the ratio of successive increments. For a neuron at rest the increments
    are float rounding (1e-15..1e-12 V): their ratio is noise, often > 2, read as divergence,
    and the step is rejected and shrunk again and again. Measured on the GBW-sweep transient:
    one resting neuron of 33,408 ran out of 2,000 steps that it needs 13 for alone (the
    rounding differs with the vectorised batch). An increment of 1e-8 of the tolerance
    changes nothing the step controller can see.

    Attributes:
        noise_floor: increments (in units of the error scale) below which iterations stop.
    """

    noise_floor: float = 1e-8

    def terminate(self, fn, y, args, options, state, tags):
        terminate, result = super().terminate(fn, y, args, options, state, tags)
        quiet = (state.step >= 1) & (state.diffsize < self.noise_floor)
        quiet = quiet & (state.result == optx.RESULTS.successful)  # the linear solve worked
        return terminate | quiet, optx.RESULTS.where(quiet, optx.RESULTS.successful, result)


def default_solver() -> diffrax.AbstractSolver:
    """Kvaerno3 whose Newton iterations take the step controller's tolerances and stop at
    float-noise increments (:class:`QuietChord`)."""
    return diffrax.Kvaerno3(root_finder=diffrax.with_stepsize_controller_tols(QuietChord)())


SUPER_DIODE_OPTIONS = {"rtol": 1e-5, "atol": 1e-6, "max_steps": 20000, "stage_max_steps": 1024}
"""Step tolerances for networks with super diodes (``TransientOptions.for_hardware``): at the
defaults their trajectories between the step and the steady state stray by several 1e-2 logit
units (README, measured 2026-12-04 on an 8x8 crop); here within 8e-4 of a run at 1e-6 / 1e-7
to 300 ns, with 160 steps per neuron on average (room for the busiest in max_steps); with
shared steps per stage 75-500 accepted steps a stage on an 8x8 crop (``paper_calibrated``,
2026-12-07), room in stage_max_steps."""


STEPPINGS = ("per_neuron", "per_stage", "lanes")
"""How a stage's neurons are stepped (:attr:`TransientOptions.stepping`)."""

DEFAULT_TOLERANCES = {"per_neuron": (1e-3, 1e-4), "per_stage": (1e-3, 1e-4), "lanes": (3e-5, 3e-6)}
"""(rtol, atol V) of each stepping when :class:`TransientOptions` is given none. Measured
2026-12-08 on the circuit-trained plain-diode model (whose signal crosses every stage), the
central 16x16 pixels of the main job's image, against a per-neuron solve at rtol 1e-6 / atol
1e-7, outputs sampled at 1,201 times (``benchmarks/bench_transient_accuracy.py``): the lanes
at 1e-4 / 1e-5 were within 1.2e-3 V on every stage, settling within 0.54 %, energy -0.54 %,
network latency 41.56 ns against 41.55; at 3e-4 / 3e-5 six stages were 2.8e-3-4.8e-3 V off
(Rodas4's order-3 error estimate lets long steps through). On the whole image the main job's
logits at 300 ns were 1.5e-3 units from the steady state's at 1e-4 / 1e-5 and 2.2e-4 at
3e-5 / 3e-6, hence these. The diffrax stepping at its 1e-3 / 1e-4 was over 2e-3 V on 46 of
59 stages (2.6e-2 V at most), ten layers' settling over 3 % off and the network latency
51.3 ns; its defaults are kept for the solve that is differentiated (:func:`read_logits`),
where they were validated against the steady state's gradient."""


@dataclasses.dataclass(frozen=True)
class TransientOptions:
    """How the whole-network transient is integrated.

    Attributes:
        t_end: simulated time after the input step, s (long enough for the network to settle;
            the result reports whether it did).
        rtol, atol: every neuron's step controller's tolerances on its states (V); None
            (the default): the stepping's own (:data:`DEFAULT_TOLERANCES`), filled in when
            the record is made (so ``dataclasses.replace(options, stepping=...)`` keeps the
            first stepping's; build a new record to get the new stepping's). With
            super diodes, intermediate times need rtol 1e-5, atol 1e-6: their open loops
            amplify each step's error: at the defaults the logits of an 8x8 crop were
            3.5e-2 units from the steady state at 400 ns, where the converged trajectory is
            within 1.2e-3 (README, measured 2026-12-04); the end is reached either way.
            :meth:`for_hardware` picks them for super-diode networks.
        epsilon: settling band, fraction of V_p (physics notes, section 5: 1 %).
        max_steps: solver steps per neuron at most ("per_neuron", "lanes": steps tried,
            accepted and rejected), or steps tried per stage at most ("per_stage").
        time_unit: the solver's time unit, s (ns keeps the steps O(1)).
        first_interval: the first interval of the common time grid, s.
        growth: ratio of successive grid intervals (> 1): the grid resolves a time t to
            about (growth - 1) t, so fast early edges and slow late tails both get knots.
            Every stage's read-outs and the next stage's drive are computed at each knot,
            so the knots set most of the cost. Measured against 1.03 (208 knots for
            300 ns) on input-layer patches, the outputs' interpolants differ by at most
            1.3e-3 V with super diodes (5.5e-3 V at 1.08, half the 1 % settling band) and
            2.6e-5 V with plain diodes at 1.05 (137 knots); on the whole paper-preset
            network the per-layer settling times moved by 1 ps and the energy by 6e-5.
        memristor_envelopes: keep each neuron's largest memristor |V| on the grid in its
            record (``StageRecord.memristor_voltage``; a whole image's doubles the records'
            memory, ~1 GB on the 1.0x network), else only each stage's largest.
        chunk: neurons integrated together (one vectorised solve, each neuron on its own
            steps); chunks run one after another, which bounds memory. Every chunk of every
            stage has this size (a smaller stage, or a stage's last chunk, is padded and
            masked), so stages of one block kind share one compiled solver whatever their
            neuron count, and a vectorised loop runs to its slowest lane, so smaller chunks
            waste fewer steps. Measured 2026-12-05 (0.5x random model, `paper`, one whole
            image, 300 ns, one CPU core): 256 neurons 130 s first run / 30.1 s warm, against
            179 / 38.3 s at 4,096 and 142 / 41.6 s at 64; on an 8x8 crop 11 -> 6 compiled
            solvers, 246 -> 95 s (with :func:`_vector_field`). With "lanes", the neurons
            read out together (the lanes' read-outs on the grid, one ``lax.map`` step each).
        solver: a diffrax solver (default :func:`default_solver`, Kvaerno3: op-amps on
            their rails are stiff), for ``stepping`` "per_neuron".
        stepping: "per_neuron": each neuron on its own adaptive steps with ``solver``,
            read onto the common grid; "per_stage": every neuron of a stage on one shared
            sequence of linearly implicit Rodas4 steps (:mod:`memjax.hardware.lockstep`),
            each stage's waveform on its own accepted steps (``first_interval`` / 20 its
            first step; a changed ``growth``, ``chunk`` or ``solver``, which it has no use
            for, ``memristor_envelopes`` and the differentiable :func:`read_logits` are
            refused); "lanes": each neuron on its own adaptive Rodas4 steps on one of
            ``lanes`` lanes that take the next neuron when theirs is done, a whole stage in
            one compiled loop (:mod:`memjax.hardware.lanes`), read onto the common grid like
            "per_neuron" (a changed ``solver`` is refused: the lanes step Rodas4).
        lanes: "lanes" stepping: lanes per stage, or None for the stage's padded size
            (:func:`lane_bucket`) / 64 within 256 to 1,024 (measured 2026-12-08 on 2 cores:
            1,024 lanes ran the stem's 55,296 neurons with 98 % of lane-steps used, and a
            3,456-neuron depthwise stage 1.95x faster on 256 lanes than on 1,024, where 29 %
            idled in the tail; an 8,352-neuron one 1.34x on 256, 1.13x on 512).
        stage_max_steps: accepted steps per stage at most ("per_stage"): every stage's
            waveform has this many knots plus one (the unused ones beyond t_end), so it
            sets the memory of the records.
    """

    t_end: float = 300e-9
    rtol: float | None = None
    atol: float | None = None
    epsilon: float = 0.01
    max_steps: int = 2000
    time_unit: float = 1e-9
    first_interval: float = 0.02e-9
    growth: float = 1.05
    chunk: int = 256
    memristor_envelopes: bool = False
    solver: diffrax.AbstractSolver = dataclasses.field(default_factory=default_solver)
    stepping: str = "per_neuron"
    stage_max_steps: int = 256
    lanes: int | None = None

    def __post_init__(self):
        if self.stepping not in STEPPINGS:
            raise MemjaxError(
                f"TransientOptions.stepping must be one of {', '.join(STEPPINGS)}, "
                f"got {self.stepping!r}"
            )
        for name, default in zip(("rtol", "atol"), DEFAULT_TOLERANCES[self.stepping]):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        for name in ("t_end", "rtol", "atol", "epsilon", "time_unit", "first_interval"):
            if not getattr(self, name) > 0:
                raise MemjaxError(f"TransientOptions.{name} must be > 0")
        if not self.growth > 1:
            raise MemjaxError("TransientOptions.growth must be > 1")
        if self.max_steps < 8 or self.chunk < 1 or self.stage_max_steps < 8:
            raise MemjaxError(
                "TransientOptions.max_steps and stage_max_steps must be >= 8 and chunk >= 1"
            )
        if self.lanes is not None and (self.stepping != "lanes" or self.lanes < 1):
            raise MemjaxError(
                "TransientOptions.lanes is for stepping='lanes' and must be >= 1, got "
                f"{self.lanes} with stepping={self.stepping!r}"
            )
        if self.stepping == "lanes" and type(self.solver) is not type(default_solver()):
            raise MemjaxError(
                "TransientOptions.solver is for stepping='per_neuron'; the lanes "
                "(stepping='lanes') step Rodas4"
            )
        if self.stepping == "per_stage":
            defaults = TransientOptions.__dataclass_fields__
            unused = [
                name
                for name in ("growth", "chunk")
                if getattr(self, name) != defaults[name].default
            ]
            if type(self.solver) is not type(default_solver()):
                unused.append("solver")
            if self.memristor_envelopes:
                unused.append("memristor_envelopes")
            if unused:
                raise MemjaxError(
                    f"TransientOptions.{unused[0]} is for stepping='per_neuron'; the shared "
                    "steps (stepping='per_stage') are Rodas4 on each stage's own accepted "
                    "steps and keep each stage's largest memristor |V| only"
                )

    @classmethod
    def for_hardware(cls, hardware: HardwareConfig, **changes) -> TransientOptions:
        """The defaults for a network of ``hardware``: :data:`SUPER_DIODE_OPTIONS` where
        its ReLUs or max pool are super diodes (see ``rtol``), then ``changes``."""
        if "super" in (hardware.relu, hardware.max_pool):
            changes = {**SUPER_DIODE_OPTIONS, **changes}
        return cls(**changes)

    def grid(self) -> np.ndarray:
        """The common time grid, in time units: 0, then geometrically growing intervals,
        ending exactly at t_end."""
        t_end = self.t_end / self.time_unit
        first = self.first_interval / self.time_unit
        count = int(np.ceil(np.log1p(t_end * (self.growth - 1) / first) / np.log(self.growth)))
        ts = first * np.expm1(np.arange(count + 1) * np.log(self.growth)) / (self.growth - 1)
        ts = ts[ts < t_end * (1 - 1e-9)]
        return np.append(ts, t_end)


class StageRecord(eqx.Module):
    """One stage's transient, on the common grid.

    Attributes:
        output: its output waveform (ns, V).
        power: its total power by kind (W) as a waveform, last axis in :data:`KINDS` order.
        max_neuron_power: largest power of one neuron (kernel column, MBN, ReLU) at the grid
            times, W.
        max_neuron_power_by_kind: that neuron's power at that time by kind, (4,) in
            :data:`KINDS` order (memristors include the spread its equivalent rows do not
            see), W.
        max_memristor_voltage: largest |V| across any memristor of the stage at the grid
            times, V.
        memristor_voltage: per neuron, the largest |V| across any of its memristors (its
            cells against its bit lines, its MBN's), as a waveform on the grid (ns, V;
            shape (knots, *outputs)): the envelope a read-disturb estimate integrates
            (``experiments/transient_disturb.py``). Its slopes are the active cell's. None
            unless ``TransientOptions.memristor_envelopes``.
        steps: solver steps of its busiest neuron.
        mean_steps: solver steps per neuron, averaged.
    """

    output: Waveform
    power: Waveform
    max_neuron_power: jax.Array
    max_neuron_power_by_kind: jax.Array
    max_memristor_voltage: jax.Array
    memristor_voltage: Waveform | None
    steps: jax.Array
    mean_steps: jax.Array


def _per_neuron_block(block, channels: int, count: int):
    """``block`` with every per-channel array taken for each of ``count`` neurons laid out
    position-major (neuron i has channel i % channels)."""
    channel = jnp.arange(count) % channels
    return map_per_channel(lambda a: a[channel], block)


def traced_opamps(tree):
    """Every op-amp of ``tree`` with its finite ``TRACED_OPAMP_FIELDS`` as 0-d arrays, so
    that one compiled transient serves any value of them (a GBW sweep compiles once). An
    infinite slew rate (the ideal limit) stays a Python float: it selects a different
    equation."""

    def convert(x):
        if not isinstance(x, OpAmp):
            return x
        changes = {
            name: jnp.asarray(getattr(x, name), jnp.float64)
            for name in TRACED_OPAMP_FIELDS
            if not (isinstance(getattr(x, name), float) and math.isinf(getattr(x, name)))
        }
        return dataclasses.replace(x, **changes)

    return jax.tree.map(convert, tree, is_leaf=lambda x: isinstance(x, OpAmp))


@dataclasses.dataclass(frozen=True)
class _Integrator:
    """What a compiled chunk solver is specialised on: the solver, its step budget and time
    unit. The step tolerances reach it as arrays (:func:`_tolerances`) and the read time as
    the grid's values, so one compile serves every rtol and atol (``reproduce --rtol``, a
    tolerance study); a static tolerance compiled every stage again (~20 s a stage size
    on 2 CPU cores, measured 2026-12-05)."""

    solver: diffrax.AbstractSolver
    max_steps: int
    time_unit: float


def _integrator(options: TransientOptions) -> _Integrator:
    return _Integrator(options.solver, options.max_steps, options.time_unit)


def _tolerances(options: TransientOptions) -> jax.Array:
    """(rtol, atol) as an array: traced by the chunk solvers."""
    return jnp.asarray([options.rtol, options.atol])


@eqx.filter_jit
def _vector_field(block, t, y, u):
    """A neuron's vector field as one traced function: the implicit solver evaluates it in
    every stage of a step and in its Jacobian, and each of those call sites would trace it
    again; behind ``jit`` it is traced once and the call sites share it. Same program, same
    results (bitwise, measured), half the tracing: the stem's chunk solver 65 -> 33 s to
    trace, its 19 s of XLA compilation unchanged (2026-12-05, one core)."""
    return block.vector_field(t, y, u)


def _readouts_at(block, crossbar, drive: Waveform, rows, unit, envelopes, tau, y, extras):
    """One neuron's read-outs (``stages.neuron_readouts``) at the time ``tau`` (time units)
    in the state ``y``, with ``block`` already carrying its ``rows``."""
    u, du = drive.at(tau)
    dy = _vector_field(block, tau * unit, y, u) * unit if y.shape[0] else y
    return neuron_readouts(block, crossbar, y, u, dy, du, rows, extras, envelopes)


def _neuron_solver(
    crossbar: bool,
    grid,
    drive_ts,
    integrator: _Integrator,
    tolerances,
    readouts=True,
    envelopes=False,
):
    """``solve(block, drive values, drive slopes, drive before, rows, extras)`` of one neuron
    (``rows``: what its output drives, S, or None; see ``stages.with_rows``):
    (output, its slope, power by kind, its slope, neuron power, memristor peak, its slope) on
    the grid, its steps and result; the peak's slope only with ``envelopes`` (zero without:
    only the envelope's Hermite waveform needs it); without ``readouts`` (output, its slope)
    only."""
    unit = integrator.time_unit

    def solve(block, values, slopes, before, rows, extras):
        drive = Waveform(drive_ts, values, slopes)
        if rows is not None:
            block = with_rows(block, rows)

        def field(tau, y, _):
            return _vector_field(block, tau * unit, y, drive.at(tau)[0]) * unit

        def save(tau, y, high, low, spread):
            if readouts:
                extras = jnp.stack([high, low, spread])
                return _readouts_at(block, crossbar, drive, rows, unit, envelopes, tau, y, extras)
            u, du = drive.at(tau)
            dy = field(tau, y, None) if y.shape[0] else y
            return jax.jvp(lambda y, u: block.observe(y, u)[0][0], (y, u), (dy, du))

        y0 = block.steady_guess(before)
        if y0.shape[0] == 0:  # a stage without state: its outputs at the grid times
            states, steps, ok = jnp.zeros((grid.shape[0], 0)), jnp.asarray(0), jnp.asarray(True)
        else:
            solution = diffrax.diffeqsolve(
                diffrax.ODETerm(field),
                integrator.solver,
                grid[0],
                grid[-1],
                dt0=None,
                y0=y0,
                saveat=diffrax.SaveAt(ts=grid),
                stepsize_controller=diffrax.PIDController(rtol=tolerances[0], atol=tolerances[1]),
                max_steps=integrator.max_steps,
                throw=False,
            )
            states, steps = solution.ys, solution.stats["num_steps"]
            ok = solution.result == diffrax.RESULTS.successful
        # read-outs after the solve, vectorised over the grid (inside the solver's loop they
        # would run one save at a time)
        return jax.vmap(save)(grid, states, *extras.T), steps, ok

    return solve


@eqx.filter_jit
def _prepare(stage: NeuronStage, source: Waveform, before, grid, readouts: bool = True):
    """What every neuron of a stage needs, neuron-major: its block, its drive at the source's
    knots (values and slopes), its drive before the step, the rows it drives (or None), and
    per grid time its highest and lowest row voltage and the memristor power its equivalent
    rows do not see; plus the stage's total of that power and its slope on the grid. Without
    ``readouts``, only the block, drive values, slopes, drive before and rows."""
    if source.ts.ndim != 1:
        raise MemjaxError(
            "the per-neuron stepping reads its drive on one sequence of knots; a source "
            "with knots per channel comes from stepping='per_stage'"
        )
    drive_before = stage.drive(before)
    shape = drive_before.shape[:-1]
    count = int(np.prod(shape))

    def neuron_major(a):  # (knots, *shape, k) -> (count, knots, k)
        return jnp.moveaxis(a.reshape((a.shape[0], count, -1)), 0, 1)

    block = _per_neuron_block(stage.block, shape[-1], count)
    values = neuron_major(jax.vmap(stage.drive)(source.values))
    slopes = neuron_major(jax.vmap(stage.drive)(source.slopes))
    rows = None if stage.rows is None else jnp.broadcast_to(stage.rows, shape).reshape(count)
    if not readouts:
        return block, values, slopes, drive_before.reshape(count, -1), rows
    inputs = jax.vmap(source.at)(grid)  # (values, slopes) of the layer input at the grid

    def extras_at(v):
        drive = stage.drive(v)
        spread = stage.spread(v, drive)
        if stage.kind == "max_pool":
            zero = jnp.zeros(shape)
            return jnp.stack([zero, zero, spread], -1), spread
        high, low = stage.row_extremes(v)
        high, low = (jnp.broadcast_to(a, shape) for a in (high, low))
        return jnp.stack([high, low, spread], -1), spread

    extras, spread = jax.vmap(extras_at)(inputs[0])
    _, spread_slope = jax.vmap(lambda v, dv: jax.jvp(lambda v: extras_at(v)[1], (v,), (dv,)))(
        *inputs
    )

    before = drive_before.reshape(count, -1)
    per_neuron = (block, values, slopes, before, rows, neuron_major(extras))
    totals = (
        jnp.sum(spread.reshape(grid.shape[0], -1), -1),
        jnp.sum(spread_slope.reshape(grid.shape[0], -1), -1),
    )
    return per_neuron, totals


@eqx.filter_jit
def _solve_chunk(
    block,
    values,
    slopes,
    before,
    rows,
    extras,
    mask,
    drive_ts,
    grid,
    crossbar,
    integrator,
    tolerances,
    envelopes=False,
):
    """One chunk of neurons, each on its own adaptive steps (vectorised): outputs on the grid,
    the chunk's power totals, and its largest neuron power (with its split by kind),
    memristor |V| (largest, and per neuron on the grid, with its slope when ``envelopes``)
    and step count."""
    solve = eqx.filter_vmap(
        _neuron_solver(crossbar, grid, drive_ts, integrator, tolerances, envelopes=envelopes),
        in_axes=(channel_axes(block), 0, 0, 0, 0, 0),
    )
    readouts, steps, ok = solve(block, values, slopes, before, rows, extras)
    return _reduce_chunk(readouts, mask) + (
        jnp.max(jnp.where(mask, steps, 0)),
        jnp.sum(jnp.where(mask, steps, 0)),
        jnp.sum(mask & ~ok),
    )


def _reduce_chunk(readouts, mask):
    """A chunk's read-outs on the grid, per neuron, to what a stage keeps: outputs and their
    slopes, its power totals by kind and their slopes, its largest neuron power with its
    split by kind, its largest memristor |V|, and per neuron that peak and its slope (the
    masked neurons left out of the totals and maxima)."""
    out, dout, kinds, dkinds, neuron, peak, dpeak = readouts
    weight = mask[:, None, None]
    neuron = jnp.where(mask[:, None], neuron, 0.0)
    at = jnp.unravel_index(jnp.argmax(neuron), neuron.shape)
    split = kinds[at]  # the busiest neuron at its busiest knot; its spread to the memristors
    split = split.at[0].add(neuron[at] - jnp.sum(split))
    return (
        out,
        dout,
        jnp.sum(jnp.where(weight, kinds, 0.0), 0),
        jnp.sum(jnp.where(weight, dkinds, 0.0), 0),
        neuron[at],
        split,
        jnp.max(jnp.where(mask[:, None], peak, 0.0)),
        peak,
        dpeak,
    )


@eqx.filter_jit
@eqx.filter_checkpoint
def _chunk_outputs(
    block, values, slopes, before, rows, mask, drive_ts, grid, integrator, tolerances
):
    """One chunk's outputs and their slopes on the grid, and its failed neurons: the
    differentiable path. Checkpointed (rematerialised): reverse mode keeps only the chunk's
    inputs and integrates it again on the way back. Stored instead, the linearisation of
    one neuron's solve and read-outs at every knot is ~0.3 MB (measured: ~200 MB per stage
    of 512 neurons, so a whole network's gradient outgrew 12 GB on 8x8 inputs)."""
    solve = eqx.filter_vmap(
        _neuron_solver(False, grid, drive_ts, integrator, tolerances, readouts=False),
        in_axes=(channel_axes(block), 0, 0, 0, 0, 0),
    )
    unused = jnp.zeros((mask.shape[0], grid.shape[0], 3), grid.dtype)  # read-outs' extras
    (out, dout), _, ok = solve(block, values, slopes, before, rows, unused)
    return out, dout, jnp.sum(mask & ~ok)


def _stage_outputs(stage: NeuronStage, source: Waveform, before, grid, options):
    """A stage's output waveform and its failed neurons, differentiably and without the
    read-outs (power, peaks, steps) of :func:`_solve_stage`."""
    per_neuron = _prepare(stage, source, before, grid, False)
    shape = jax.eval_shape(stage.drive, before).shape[:-1]
    count = int(np.prod(shape))
    outs, douts, failed = [], [], jnp.asarray(0)
    integrator, tolerances = _integrator(options), _tolerances(options)
    for chunk, mask, kept in _chunks(per_neuron, count, options.chunk):
        out, dout, bad = _chunk_outputs(*chunk, mask, source.ts, grid, integrator, tolerances)
        outs.append(out[:kept])
        douts.append(dout[:kept])
        failed = failed + bad
    knots = grid.shape[0]
    return failed, Waveform(
        grid, _layer_major(outs, knots, shape), _layer_major(douts, knots, shape)
    )


def _chunks(per_neuron, count: int, size: int):
    """(per-neuron arrays of the chunk, mask, kept) for each chunk of ``size`` of the
    ``count`` neurons; the last chunk repeats its last neuron to fill up (masked, and not
    kept)."""
    for begin in range(0, count, size):
        index = jnp.minimum(jnp.arange(begin, begin + size), count - 1)
        chunk = map_per_channel(lambda a, index=index: a[index], per_neuron)
        yield chunk, jnp.arange(begin, begin + size) < count, min(size, count - begin)


def _layer_major(parts, knots: int, shape) -> jax.Array:
    """Chunks of (neurons, knots) back to (knots, *shape)."""
    return jnp.moveaxis(jnp.concatenate(parts), 1, 0).reshape((knots,) + shape)


def _solve_stage(stage: NeuronStage, source: Waveform, before, grid, options: TransientOptions):
    """Integrate every neuron of one stage, each with its own adaptive steps, driven by
    ``source`` (the layer input; ``before``: its value before the step), and save the
    outputs and read-outs on ``grid``. Returns (neurons that failed, StageRecord)."""
    per_neuron, (spread, spread_slope) = _prepare(stage, source, before, grid)
    shape = jax.eval_shape(stage.drive, before).shape[:-1]
    count = int(np.prod(shape))
    outs, douts, peaks, dpeaks = [], [], [], []
    totals = jnp.zeros((grid.shape[0], len(KINDS)), grid.dtype)
    dtotals = jnp.zeros_like(totals)
    power_max = peak_max = 0.0
    power_split = jnp.zeros(len(KINDS), grid.dtype)
    steps_max = steps_sum = failed = 0
    integrator, tolerances = _integrator(options), _tolerances(options)
    for chunk, mask, kept in _chunks(per_neuron, count, options.chunk):
        result = _solve_chunk(
            *chunk,
            mask,
            source.ts,
            grid,
            stage.is_crossbar,
            integrator,
            tolerances,
            options.memristor_envelopes,
        )
        out, dout, kinds, dkinds, neuron, split, peak, envelope, slope, most, total, bad = result
        outs.append(out[:kept])
        douts.append(dout[:kept])
        if options.memristor_envelopes:
            peaks.append(envelope[:kept])
            dpeaks.append(slope[:kept])
        totals, dtotals = totals + kinds, dtotals + dkinds
        if float(neuron) > power_max:
            power_max, power_split = float(neuron), split
        peak_max = max(peak_max, float(peak))
        steps_max, steps_sum = max(steps_max, int(most)), steps_sum + int(total)
        failed += int(bad)

    record = StageRecord(
        output=Waveform(
            grid,
            _layer_major(outs, grid.shape[0], shape),
            _layer_major(douts, grid.shape[0], shape),
        ),
        power=Waveform(grid, totals.at[:, 0].add(spread), dtotals.at[:, 0].add(spread_slope)),
        max_neuron_power=jnp.asarray(power_max),
        max_neuron_power_by_kind=power_split,
        max_memristor_voltage=jnp.asarray(peak_max),
        memristor_voltage=Waveform(
            grid,
            _layer_major(peaks, grid.shape[0], shape),
            _layer_major(dpeaks, grid.shape[0], shape),
        )
        if options.memristor_envelopes
        else None,
        steps=jnp.asarray(steps_max),
        mean_steps=jnp.asarray(steps_sum / count),
    )
    return failed, record


LANE_BUCKET_GROWTH = 4
"""Stages run on lanes are padded to ``chunk`` x 4^k neurons: one compiled program serves
every stage of a block kind within a factor 4 of size (a lane program compiles in 5-10 s on
2 cores), and the padding costs memory only: the lanes never step it and the read-outs skip
its chunks. With 2^k and 3 x 2^k, the circuit-trained model's transient compiled 392 programs
in 88.6 s and took 192 s for its first run (2026-12-08, 2 cores)."""


def lane_bucket(count: int, chunk: int) -> int:
    """The neurons a stage's lane program is compiled for: ``count`` rounded up to ``chunk``
    x :data:`LANE_BUCKET_GROWTH`^k."""
    size = chunk
    while size < count:
        size *= LANE_BUCKET_GROWTH
    return size


def _lane_count(options: TransientOptions, size: int) -> int:
    """Lanes for a stage padded to ``size`` neurons (:attr:`TransientOptions.lanes`)."""
    if options.lanes is not None:
        return options.lanes
    return min(1024, max(256, size // 64))


@eqx.filter_jit
def _solve_on_lanes_and_read(
    block,
    values,
    slopes,
    before,
    rows,
    extras,
    count,
    drive_ts,
    grid,
    crossbar,
    tolerances,
    first_step,
    lanes,
    unit,
    max_steps,
    chunk,
    envelopes,
):
    """A whole stage (padded to ``values.shape[0]`` neurons, the first ``count`` real) on
    refilled lanes, then read out on the grid a chunk at a time (``lax.map``; the padding's
    chunks skipped), reduced as :func:`_solve_chunk` reduces a chunk: one program and one
    transfer to the host per stage."""
    states, steps, failed, _ = solve_on_lanes(
        block,
        values,
        slopes,
        before,
        rows,
        drive_ts,
        grid,
        tolerances,
        first_step,
        lanes,
        unit,
        max_steps,
        count=count,
    )
    size = values.shape[0]

    def read(b, vals, slps, r, ys, ex):
        if rows is not None:
            b = with_rows(b, r)
        drive = Waveform(drive_ts, vals, slps)
        at = lambda tau, y, e: _readouts_at(b, crossbar, drive, r, unit, envelopes, tau, y, e)  # noqa: E731
        return jax.vmap(at)(grid, ys, ex)

    read_chunk = jax.vmap(read, in_axes=(channel_axes(block), 0, 0, 0, 0, 0))

    def piece(begin):
        take = lambda a: jax.lax.dynamic_slice_in_dim(a, begin, chunk)  # noqa: E731
        mask = begin + jnp.arange(chunk) < count
        readouts = read_chunk(
            map_per_channel(take, block),
            take(values),
            take(slopes),
            None if rows is None else take(rows),
            take(states),
            take(extras),
        )
        return _reduce_chunk(readouts, mask)

    shapes = jax.eval_shape(piece, 0)
    skip = lambda begin: jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)  # noqa: E731
    pieces = jax.lax.map(
        lambda begin: jax.lax.cond(begin < count, piece, skip, begin),
        jnp.arange(0, size, chunk),
    )
    out, dout, kinds, dkinds, neuron, split, peak, envelope, slope = pieces
    busiest = jnp.argmax(neuron)
    real = jnp.arange(size) < count
    return (
        out.reshape((size,) + out.shape[2:]),
        dout.reshape((size,) + dout.shape[2:]),
        jnp.sum(kinds, 0),
        jnp.sum(dkinds, 0),
        neuron[busiest],
        split[busiest],
        jnp.max(peak),
        envelope.reshape((size,) + envelope.shape[2:]),
        slope.reshape((size,) + slope.shape[2:]),
        jnp.max(jnp.where(real, steps, 0)),
        jnp.sum(jnp.where(real, steps, 0)),
        jnp.sum(real & failed),
    )


def _solve_stage_lanes(stage: NeuronStage, source: Waveform, before, grid, options):
    """Every neuron of one stage on its own Rodas4 steps on refilled lanes
    (:func:`memjax.hardware.lanes.solve_on_lanes`), read out on the common grid as
    :func:`_solve_stage` reads them. Returns (neurons that failed, StageRecord)."""
    per_neuron, (spread, spread_slope) = _prepare(stage, source, before, grid)
    shape = jax.eval_shape(stage.drive, before).shape[:-1]
    count = int(np.prod(shape))
    size = lane_bucket(count, options.chunk)
    index = jnp.minimum(jnp.arange(size), count - 1)
    padded = map_per_channel(lambda a: a[index], per_neuron)
    unit = options.time_unit
    result = _solve_on_lanes_and_read(
        *padded,
        jnp.asarray(count, jnp.int32),
        source.ts,
        grid,
        stage.is_crossbar,
        _tolerances(options),
        options.first_interval / unit / 20,
        _lane_count(options, size),
        unit,
        options.max_steps,
        options.chunk,
        options.memristor_envelopes,
    )
    out, dout, kinds, dkinds, neuron, split, peak, envelope, slope, most, total, failed = result
    knots = grid.shape[0]

    def layer_major(a):
        return _layer_major([a[:count]], knots, shape)

    record = StageRecord(
        output=Waveform(grid, layer_major(out), layer_major(dout)),
        power=Waveform(grid, kinds.at[:, 0].add(spread), dkinds.at[:, 0].add(spread_slope)),
        max_neuron_power=neuron,
        max_neuron_power_by_kind=split,
        max_memristor_voltage=peak,
        memristor_voltage=Waveform(grid, layer_major(envelope), layer_major(slope))
        if options.memristor_envelopes
        else None,
        steps=most,
        mean_steps=total / count,
    )
    return int(failed), record


def _solve_stage_lockstep(stage: NeuronStage, source: Waveform, before, options):
    """Every neuron of one stage on shared Rodas4 steps (:mod:`memjax.hardware.lockstep`).
    Returns (neurons that failed: all of the stage or none, StageRecord); the record's
    waveforms on the accepted steps only, the next stage's source on all the knots."""
    unit = options.time_unit
    (ts, out, dout, kinds, dkinds, power, split, peak, count, accepted, reached) = (
        lockstep.solve_stage(
            stage,
            source,
            before,
            options.t_end / unit,
            _tolerances(options),
            options.stage_max_steps,
            unit,
            options.first_interval / unit / 20,
            options.max_steps,
        )
    )
    shape = jax.eval_shape(stage.drive, before).shape[:-1]
    knots = ts.shape[0]
    out, dout = out.reshape((knots,) + shape), dout.reshape((knots,) + shape)
    failed = 0 if bool(reached) else int(np.prod(shape))
    record = StageRecord(
        output=Waveform(ts, out, dout),
        power=Waveform(ts, kinds, dkinds),
        max_neuron_power=power,
        max_neuron_power_by_kind=split,
        max_memristor_voltage=peak,
        memristor_voltage=None,
        steps=count,
        mean_steps=count.astype(ts.dtype),
    )
    return failed, record


def run_stage(name: str, stage: NeuronStage, source: Waveform, before, grid, options):
    """One stage, with solver failures reported by name."""
    if options.stepping == "per_stage":
        failed, record = _solve_stage_lockstep(stage, source, before, options)
        if failed:
            raise MemjaxError(
                f"{name}: the shared-step transient did not reach t_end within "
                f"{options.stage_max_steps} accepted and {options.max_steps} tried steps "
                f"({int(record.steps)} tried); raise TransientOptions.stage_max_steps or "
                "max_steps, or loosen rtol/atol"
            )
        return record
    solve = _solve_stage_lanes if options.stepping == "lanes" else _solve_stage
    failed, record = solve(stage, source, before, grid, options)
    if failed:
        raise MemjaxError(
            f"{name}: the transient solver failed for {int(failed)} neurons within "
            f"{options.max_steps} steps each; raise TransientOptions.max_steps or loosen "
            "rtol/atol"
        )
    return record


def _channel_ts(wave: Waveform, channels: slice | np.ndarray):
    """The knots of ``channels``: one sequence shared by all (1-D ``ts``) stays shared."""
    return wave.ts if wave.ts.ndim == 1 else wave.ts[:, channels]


def _split(wave: Waveform):
    half = wave.values.shape[-1] // 2
    return [
        Waveform(_channel_ts(wave, slice(lo, hi)), wave.values[..., lo:hi], wave.slopes[..., lo:hi])
        for lo, hi in ((0, half), (half, 2 * half))
    ]


def _concat(a: Waveform, b: Waveform) -> Waveform:
    """Channels side by side; waveforms on different knots (stages on their own steps) keep
    each channel's knots (``Waveform.ts`` of shape (knots, channels))."""
    if a.ts is b.ts:
        ts = a.ts
    else:

        def per_channel(wave):
            channels = wave.values.shape[-1]
            ts = wave.ts if wave.ts.ndim == 2 else wave.ts[:, None]
            return jnp.broadcast_to(ts, (ts.shape[0], channels))

        ts = jnp.concatenate([per_channel(a), per_channel(b)], -1)
    return Waveform(
        ts,
        jnp.concatenate([a.values, b.values], -1),
        jnp.concatenate([a.slopes, b.slopes], -1),
    )


def _shuffle(wave: Waveform) -> Waveform:
    c = wave.values.shape[-1]
    order = np.asarray(conv.channel_shuffle(np.arange(c).reshape(1, 1, 1, c)))[0, 0, 0]
    return Waveform(_channel_ts(wave, order), wave.values[..., order], wave.slopes[..., order])


def float64(tree):
    """Floating-point arrays of ``tree`` in float64 (call under ``jax.enable_x64``)."""
    return jax.tree.map(
        lambda a: (
            a.astype(jnp.float64)
            if eqx.is_array(a) and jnp.issubdtype(a.dtype, jnp.floating)
            else a
        ),
        tree,
    )


def simulate(net: MemristiveShuffleNet, gray_levels, options: TransientOptions, progress=None):
    """The transient of ``net`` for (N, 48, 48) images switched on at t = 0, the network
    holding the steady state of a blank (0 V) input before.

    In float64: at steady state an op-amp's rate is (A0 v_d - y) / tau_p with A0 ~ 1e5, and
    float32 rounding of the summing node (~1e-7 V) leaves a rate noise of ~1e-6 V/ns that
    stalls the implicit solver's Newton iterations (measured on the stem layer: stuck at
    5e-4 ns steps in float32, 40 steps in float64).

    Returns ``(records, logits_waveform)``: a list of (name, unit kind, StageRecord) in signal
    order, and the logits (network units) as a waveform in ns.
    """
    with jax.enable_x64(True):
        net = traced_opamps(float64(net))
        return _simulate(net, np.asarray(gray_levels, np.float64), options, progress)


def read_logits(net: MemristiveShuffleNet, gray_levels, options: TransientOptions):
    """The logits (network units) at ``options.t_end`` after the input step, differentiable in
    ``net``'s arrays, and the number of neurons whose solver failed (check it after
    differentiating: inside a trace it cannot raise).

    The same stage-by-stage transient as :func:`simulate` (so the same vector fields), without
    its read-outs; the gradient goes back through every neuron's adaptive steps (diffrax's
    default adjoint, recursive checkpointing; the implicit solver's Newton iterations by the
    implicit function theorem) and through the Hermite waveforms that carry one stage to the
    next, each chunk of neurons integrated again on the way back (:func:`_chunk_outputs`).
    Measured on the shipped 1.0x network, paper preset, one 8x8 input, 300 ns: the gradient
    in all 2.5 M conductances equals the steady state's to 9e-9 relative; peak memory
    5.9 GB, 6 min with compilation on 2 shared cores. Call under ``jax.enable_x64(True)``
    with a float64 network (:func:`float64`; see :func:`simulate`).
    """
    if options.stepping != "per_neuron":
        raise MemjaxError(
            f"read_logits: stepping={options.stepping!r} is not differentiable; use "
            "stepping='per_neuron'"
        )
    failures = []
    _, logits = _simulate(traced_opamps(net), gray_levels, options, None, failures)
    return logits.values[-1], sum(failures)


def _simulate(net, gray_levels, options, progress, failures=None):
    grid = jnp.asarray(options.grid())
    v = float64(net.input_voltages(gray_levels))
    ends = jnp.asarray([0.0, grid[-1]])
    image = Waveform(ends, jnp.stack([v, v]), jnp.zeros((2,) + v.shape))  # the step, held
    records = []

    def run(name, kind, stage, wave):
        # the input layer holds a blank (0 V) image before the step
        before = jnp.zeros_like(v) if wave is image else wave.values[0]
        if failures is None:
            record = run_stage(name, stage, wave, before, grid, options)
            records.append((name, kind, record))
            output = record.output
        else:
            failed, output = _stage_outputs(stage, wave, before, grid, options)
            failures.append(failed)
        if progress is not None:
            progress(name)
        return output

    logits = propagate(plan(net, v.shape[1:3]), image, run, _split, _concat, _shuffle)
    scale = 1.0 / net.volts_per_unit
    return records, Waveform(logits.ts, logits.values * scale, logits.slopes * scale)


def settling_time(wave: Waveform, band: float, t_end: float) -> float:
    """Last time (ns) the waveform is outside ``band`` (V) of its value at ``t_end`` (ns)."""
    real = wave.ts <= t_end + 1e-9
    count = int(jnp.sum(real))
    trimmed = Waveform(wave.ts[:count], wave.values[:count], wave.slopes[:count])
    return last_time_outside(trimmed, trimmed.values[-1], band)

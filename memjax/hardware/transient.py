"""Whole-network transient of the memristive ShuffleNetV2 for an input step, stage by stage.

Every stage output is an op-amp output or a diode node whose load is its own R_L (the same
modelling as the steady state), so no stage feels the ones after it: the network is a DAG of
stages, and integrating them one at a time in signal order, each driven by the saved waveform
of what feeds it, is the monolithic transient without the approximation of waveform
relaxation. It is far cheaper than one solve of the whole state: each stage's adaptive solver
takes small steps only while that stage moves, where one solver for all would take the
smallest step of any stage all the time.

Each stage (``memjax.hardware.stages``) integrates its neurons' vector field with diffrax
(default explicit adaptive Tsit5, time in ns, error control in the max norm over every
neuron) and saves, at every accepted step, its outputs and their time derivatives (a cubic
Hermite waveform for the stages it drives), its power by kind with its derivative (energy by
exact integration of the Hermite interpolant), the largest neuron power and the largest
memristor voltage. Waveforms keep knots per channel, so channel split, concat and shuffle stay
wiring. Not counted: the current a crossbar's rows draw from an op-amp output stage of the
layer before adds to that op-amp's output-stage dissipation (the memristors' own dissipation
is counted); the diode outputs' loads are their R_L, as in the steady state.
"""

from __future__ import annotations

import dataclasses

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from memjax import convolution as conv
from memjax.circuits.stiff import implicit_solver
from memjax.circuits.waveform import Waveform, last_time_outside
from memjax.errors import MemjaxError
from memjax.hardware.memristive import MemristiveShuffleNet
from memjax.hardware.stages import NeuronStage, per_neuron, plan

KINDS = ("memristors", "resistors", "diodes", "opamps")


@dataclasses.dataclass(frozen=True)
class TransientOptions:
    """How the whole-network transient is integrated.

    Attributes:
        t_end: simulated time after the input step, s (long enough for the network to settle;
            the result reports whether it did).
        rtol, atol: the step controller's tolerances on every state (V), max norm.
        epsilon: settling band, fraction of V_p (physics notes, section 5: 1 %).
        max_steps: accepted steps per stage at most (also the saved waveform's length).
        time_unit: the solver's time unit, s (ns keeps float32 steps O(1)).
        solver: a diffrax solver (default: Kvaerno3 with block-diagonal Newton, see
            :mod:`memjax.circuits.stiff`).
    """

    t_end: float = 300e-9
    rtol: float = 1e-3
    atol: float = 1e-4
    epsilon: float = 0.01
    max_steps: int = 160
    time_unit: float = 1e-9
    solver: diffrax.AbstractSolver = dataclasses.field(default_factory=implicit_solver)

    def __post_init__(self):
        for name in ("t_end", "rtol", "atol", "epsilon", "time_unit"):
            if not getattr(self, name) > 0:
                raise MemjaxError(f"TransientOptions.{name} must be > 0")
        if self.max_steps < 8:
            raise MemjaxError("TransientOptions.max_steps must be >= 8")


class StageRecord(eqx.Module):
    """One stage's transient.

    Attributes:
        output: its output waveform (ns, V), knots shared by all channels.
        power: its total power by kind (W) as a waveform, last axis in :data:`KINDS` order.
        max_neuron_power: largest power of one neuron (kernel column, MBN, ReLU), W.
        max_memristor_voltage: largest |V| across any memristor of the stage, V.
        steps: accepted solver steps.
    """

    output: Waveform
    power: Waveform
    max_neuron_power: jax.Array
    max_memristor_voltage: jax.Array
    steps: jax.Array


def _pad_knots(ts, values, slopes, count, t_end):
    """Knots beyond the last accepted step (saved as inf) become times after t_end holding
    the last value, so every waveform has the same number of knots."""
    index = jnp.arange(ts.shape[0])
    valid = index < count
    last = count - 1
    ts = jnp.where(valid, ts, t_end + (index - last).astype(ts.dtype))

    def hold(a, last_value, fill):
        mask = valid.reshape((-1,) + (1,) * (a.ndim - 1))
        return jnp.where(mask, a, fill(last_value))

    values = jax.tree.map(lambda a: hold(a, a[last], lambda v: v), values)
    slopes = jax.tree.map(lambda a: hold(a, a[last], jnp.zeros_like), slopes)
    return ts, values, slopes


@eqx.filter_jit
def _solve_stage(stage: NeuronStage, source: Waveform, before, start, options: TransientOptions):
    """Integrate one stage driven by ``source`` (the layer input, knots per channel).

    The stage holds the steady state of ``before`` (its input before the step) until
    ``start``, when its input begins to move, and is integrated from there to t_end."""
    unit = options.time_unit
    t_end = options.t_end / unit
    probe = stage.drive(source.values[0])
    shape = probe.shape[:-1]
    channels = shape[-1]
    block = stage.block

    def flat(a):
        return a.reshape(-1, channels, a.shape[-1])

    def field(tau, y, _):
        drive = flat(stage.drive(source.at(tau)[0]))
        return per_neuron(lambda b, s, u: b.vector_field(tau * unit, s, u))(block, y, drive) * unit

    def quantities(y, v):
        drive = stage.drive(v)
        observe = per_neuron(lambda b, s, u: b.observe(s, u))
        out, power, peak, _ = observe(block, y, flat(drive))
        memristors = power.memristors + stage.spread(v, drive).reshape(power.memristors.shape)
        neuron = memristors + power.resistors + power.diodes + power.opamps
        totals = jnp.stack(
            [jnp.sum(memristors), jnp.sum(power.resistors), jnp.sum(power.diodes)]
            + [jnp.sum(power.opamps)]
        )
        aux = (jnp.max(neuron), jnp.max(peak), drive)
        return out[..., 0].reshape(shape), totals, aux

    def save(tau, y, args):
        v, dv = source.at(tau)
        dy = field(tau, y, args)
        (out, totals, aux), (dout, dtotals, _) = _jvp_with_aux(quantities, y, v, dy, dv)
        neuron_max, chain_peak, drive = aux
        peak = chain_peak
        if stage.is_crossbar:
            peak = jnp.maximum(peak, stage.kernel_peak(y, drive, v))
        return out, dout, totals, dtotals, neuron_max, peak

    steady = per_neuron(lambda b, s, u: b.steady_guess(u))  # exact closed forms
    y0 = steady(block, jnp.zeros(flat(probe).shape[:2] + (0,)), flat(stage.drive(before)))

    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        options.solver,
        start,
        t_end,
        dt0=None,
        y0=y0,
        saveat=diffrax.SaveAt(t0=True, steps=True, fn=save),
        stepsize_controller=diffrax.PIDController(
            rtol=options.rtol, atol=options.atol, norm=optx.max_norm
        ),
        max_steps=options.max_steps,
        throw=False,
    )
    steps = solution.stats["num_accepted_steps"]
    out, dout, totals, dtotals, neuron_max, peak = solution.ys
    # the state before the input moved, held from t_pre
    t_pre = jnp.where(start > 0, 0.0, -1.0)
    first = jax.tree.map(lambda a: a[:1], (out, totals))
    ts = jnp.concatenate([t_pre[None], solution.ts])
    out, totals = (jnp.concatenate([f, a]) for f, a in zip(first, (out, totals)))
    dout, dtotals = (jnp.concatenate([jnp.zeros_like(a[:1]), a]) for a in (dout, dtotals))
    count = steps + 2
    ts, (out, totals), (dout, dtotals) = _pad_knots(
        ts[:-1], (out[:-1], totals[:-1]), (dout[:-1], dtotals[:-1]), count, t_end
    )
    valid = jnp.arange(ts.shape[0]) < count
    record = StageRecord(
        output=Waveform(ts, out, dout),
        power=Waveform(ts, totals, dtotals),
        max_neuron_power=jnp.max(jnp.where(valid[1:], neuron_max[:-1], 0.0)),
        max_memristor_voltage=jnp.max(jnp.where(valid[1:], peak[:-1], 0.0)),
        steps=steps,
    )
    return solution.result, record


def _repad(record: StageRecord, knots: int, t_end: float) -> StageRecord:
    """A record's waveforms extended to ``knots`` knots, holding their last value."""
    extra = knots - record.output.ts.shape[0]
    if extra <= 0:
        return record

    def grow(wave: Waveform) -> Waveform:
        start = jnp.maximum(wave.ts[-1], t_end)
        ts = jnp.concatenate([wave.ts, start + 1.0 + jnp.arange(extra, dtype=wave.ts.dtype)])
        values = jnp.concatenate([wave.values, jnp.repeat(wave.values[-1:], extra, 0)])
        slopes = jnp.concatenate([wave.slopes, jnp.zeros((extra,) + wave.slopes.shape[1:])])
        return Waveform(ts, values, slopes.astype(wave.slopes.dtype))

    return eqx.tree_at(
        lambda r: (r.output, r.power), record, (grow(record.output), grow(record.power))
    )


def _jvp_with_aux(function, y, v, dy, dv):
    """jax.jvp of ``function(y, v) -> (out, totals, aux)`` differentiating out and totals."""

    def split(y, v):
        out, totals, aux = function(y, v)
        return (out, totals), aux

    (out, totals), (dout, dtotals), aux = jax.jvp(split, (y, v), (dy, dv), has_aux=True)
    return (out, totals, aux), (dout, dtotals, None)


@eqx.filter_jit
def _solve_algebraic(stage: NeuronStage, source: Waveform):
    """A stage without state (the plain diode max pool): its outputs at its input's knots."""
    ts = source.ts[:, 0]

    def quantities(v):
        drive = stage.drive(v)
        shape = drive.shape[:-1]
        flat = drive.reshape(-1, shape[-1], drive.shape[-1])
        y = jnp.zeros(flat.shape[:2] + (0,))
        out, power, _, _ = per_neuron(lambda b, s, u: b.observe(s, u))(stage.block, y, flat)
        neuron = power.memristors + power.resistors + power.diodes + power.opamps
        totals = jnp.stack([jnp.sum(getattr(power, k)) for k in KINDS])
        return (out[..., 0].reshape(shape), totals), jnp.max(neuron)

    def at_knot(index):
        v, dv = source.values[index], source.slopes[index]
        primal, tangent, neuron_max = jax.jvp(quantities, (v,), (dv,), has_aux=True)
        return primal, tangent, neuron_max

    (out, totals), (dout, dtotals), neuron_max = jax.lax.map(at_knot, jnp.arange(ts.shape[0]))
    return StageRecord(
        output=Waveform(ts, out, dout),
        power=Waveform(ts, totals, dtotals),
        max_neuron_power=jnp.max(neuron_max),
        max_memristor_voltage=jnp.zeros(()),
        steps=jnp.asarray(0),
    )


def per_channel(wave: Waveform) -> Waveform:
    """A stage output (knots shared by all channels) with its knots repeated per channel."""
    if wave.ts.ndim == 2:
        return wave
    channels = wave.values.shape[-1]
    return Waveform(jnp.repeat(wave.ts[:, None], channels, 1), wave.values, wave.slopes)


def activity(source: Waveform, delta: float, t_end: float) -> float:
    """When the input starts to move, ns: the knot before any input first leaves its value
    before the step by more than ``delta`` (V); t_end if it never does."""
    ts = np.asarray(source.ts)
    values = np.asarray(source.values)
    axes = tuple(range(1, values.ndim - 1))
    moved = np.max(np.abs(values - values[:1]), axis=axes) > delta  # (S, C)
    if not moved.any():
        return t_end
    first = np.argmax(moved, axis=0)
    start = min(ts[max(i - 1, 0), c] for c, i in enumerate(first) if moved[:, c].any())
    return min(max(float(start), 0.0), t_end)


def run_stage(name: str, stage: NeuronStage, source: Waveform, options) -> StageRecord:
    """One stage, with a solver failure reported by name. ``source``'s first knot holds the
    input before the step."""
    if stage.block.initial_state().shape[0] == 0:
        if not bool(jnp.all(source.ts == source.ts[:, :1])):
            raise MemjaxError(f"{name}: a stateless stage needs knots shared by its inputs")
        # only the knots up to t_end (and one beyond, holding the final value), in buckets of
        # 32 so that few sizes are compiled
        real = int(jnp.sum(source.ts[:, 0] <= options.t_end / options.time_unit)) + 1
        count = min(source.ts.shape[0], -(-real // 32) * 32)
        record = _solve_algebraic(
            stage, Waveform(source.ts[:count], source.values[:count], source.slopes[:count])
        )
        return _repad(record, source.ts.shape[0], options.t_end / options.time_unit)
    t_end = options.t_end / options.time_unit
    start = activity(source, options.atol, t_end)
    result, record = _solve_stage(stage, source, source.values[0], jnp.asarray(start), options)
    if result != diffrax.RESULTS.successful:
        raise MemjaxError(
            f"{name}: the transient solver failed ({result}) within "
            f"{options.max_steps} steps from {start:.3g} to {t_end:g} ns; raise "
            "TransientOptions.max_steps or t_end, or loosen rtol/atol"
        )
    return record


def _split(wave: Waveform):
    half = wave.values.shape[-1] // 2

    def take(a, lo, hi):
        return a[..., lo:hi]

    parts = []
    for lo, hi in ((0, half), (half, 2 * half)):
        parts.append(
            Waveform(wave.ts[:, lo:hi], take(wave.values, lo, hi), take(wave.slopes, lo, hi))
        )
    return parts


def _concat(a: Waveform, b: Waveform) -> Waveform:
    return Waveform(
        jnp.concatenate([a.ts, b.ts], 1),
        jnp.concatenate([a.values, b.values], -1),
        jnp.concatenate([a.slopes, b.slopes], -1),
    )


def _shuffle(wave: Waveform) -> Waveform:
    c = wave.values.shape[-1]
    order = np.asarray(conv.channel_shuffle(np.arange(c).reshape(1, 1, 1, c)))[0, 0, 0]
    return Waveform(wave.ts[:, order], wave.values[..., order], wave.slopes[..., order])


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
        return _simulate(float64(net), np.asarray(gray_levels, np.float64), options, progress)


def _simulate(net, gray_levels, options, progress):
    t_end = options.t_end / options.time_unit
    v = float64(net.input_voltages(gray_levels))
    knots = options.max_steps + 1
    ts = jnp.concatenate([jnp.array([-1.0, 0.0]), t_end + jnp.arange(knots - 2, dtype=v.dtype)])
    values = jnp.broadcast_to(v, (knots,) + v.shape).at[0].set(0.0)  # blank before the step
    source = Waveform(jnp.repeat(ts[:, None], v.shape[-1], 1), values, jnp.zeros_like(values))
    records = []

    def run(name, kind, stage, wave):
        record = run_stage(name, stage, wave, options)
        records.append((name, kind, record))
        if progress is not None:
            progress(name)
        return per_channel(record.output)

    steps = plan(net)
    x = source
    index = 0
    while index < len(steps):
        name, kind, unit, role, stage = steps[index]
        if unit < 0:
            x = run(name, kind, stage, x)
            index += 1
            continue
        unit_steps = [s for s in steps if s[2] == unit]
        if kind == "basic":
            kept, branch = _split(x)
            for name, kind, _, _, stage in unit_steps:
                branch = run(name, kind, stage, branch)
            x = _concat(kept, branch)
        else:
            left = x
            for name, kind, _, _, stage in unit_steps[:2]:
                left = run(name, kind, stage, left)
            right = x
            for name, kind, _, _, stage in unit_steps[2:]:
                right = run(name, kind, stage, right)
            x = _concat(left, right)
        x = _shuffle(x)
        index += len(unit_steps)
    logits = records[-1][2].output
    scale = 1.0 / net.volts_per_unit
    return records, Waveform(logits.ts, logits.values * scale, logits.slopes * scale)


def settling_time(wave: Waveform, band: float, t_end: float) -> float:
    """Last time (ns) the waveform is outside ``band`` (V) of its value at ``t_end`` (ns)."""
    real = wave.ts <= t_end + 1e-9
    count = int(jnp.sum(real))
    trimmed = Waveform(wave.ts[:count], wave.values[:count], wave.slopes[:count])
    return last_time_outside(trimmed, trimmed.values[-1], band)

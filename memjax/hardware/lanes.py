"""A stage's neurons on lanes that refill: each lane its own adaptive Rodas4 steps, and a lane
whose neuron has reached the end takes the next neuron.

The per-neuron transient (:mod:`memjax.hardware.transient`, ``stepping="per_neuron"``) gives
every neuron its own adaptive steps with diffrax, vectorised over chunks of 256 neurons: one
``while_loop`` per chunk that runs until the chunk's slowest neuron is done. The lanes of the
neurons already done idle meanwhile: on the main job's transient (circuit-trained model,
plain diodes, one image, 2026-12-07) a chunk took 1.3-4.6x the lane-steps its neurons needed.
Here one ``while_loop`` runs a whole stage on ``lanes`` lanes: every iteration tries one step
on every lane, and a lane whose neuron has written its last knot is given the next neuron at
once, so the lanes stay busy (98 % of lane-steps used on the stem's 55,296 neurons on 1,024
lanes) and a stage is one compiled loop with no host synchronisation.

The steps are Rodas4 (:func:`memjax.hardware.lockstep.rodas4_step`: linearly implicit, one
Jacobian and LU factorisation per step, no Newton iteration), each lane on its own time and
step size. After an accepted step from (t, y) to (t + h, y1), the knots of ``grid`` in
(t, t + h] are written from the cubic Hermite interpolant of y and its rate at both ends; a
step spans at most ``knots_per_step`` knots, so the writes are that many unrolled scatters.

Forward only: ``lax.while_loop`` has no reverse-mode derivative, so the differentiable read-out
of the logits keeps diffrax (:func:`memjax.hardware.transient.read_logits`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from memjax.circuits.waveform import hermite, hermite_segment
from memjax.hardware.lockstep import ORDER, SAFETY, rodas4_step
from memjax.hardware.stages import channel_axes, map_per_channel, with_rows

FACTOR_LIMITS = (0.2, 5.0)
"""Least and largest ratio of a lane's next step size to its last (no growth after a
rejected step)."""


class _Lanes(eqx.Module):
    """The loop's state. Per lane (leading axis ``lanes``): its neuron, whether it holds one,
    its time, step size, state, the state's rate, and the next knot to write; per neuron its
    states on the grid, steps tried and whether it wrote its last knot; the next neuron to
    hand out; iterations."""

    neuron: jax.Array
    active: jax.Array
    t: jax.Array
    h: jax.Array
    y: jax.Array
    rate: jax.Array
    next_knot: jax.Array
    states: jax.Array
    steps: jax.Array
    complete: jax.Array
    queued: jax.Array
    iterations: jax.Array


@eqx.filter_jit
def solve_on_lanes(
    block,
    values,
    slopes,
    before,
    rows,
    drive_ts,
    grid,
    tolerances,
    first_step,
    lanes: int,
    time_unit: float,
    max_steps: int,
    knots_per_step: int = 16,
    count=None,
):
    """Integrate independent neurons from their steady state for the drive ``before`` over
    ``grid`` (time units; grid[0] the input step), each driven by its cubic Hermite drive on
    the knots ``drive_ts`` (``values``, ``slopes``: (neurons, knots, m)).

    ``block``: the neurons' block, its per-channel arrays one entry per neuron (as
    :func:`memjax.hardware.transient._prepare` lays them out); ``rows``: (neurons,) S that
    each output drives, or None; ``tolerances``: (rtol, atol) of every state's error;
    ``first_step``: a lane's first step, time units; ``max_steps``: steps tried per neuron at
    most (a neuron that needs more is given up and reported); ``count``: how many of the
    neurons to integrate, the first ones (traced, so that stages padded to one size share a
    program; None: all). The others take no step and are reported complete.

    Returns (states on the grid (neurons, knots, n), steps tried per neuron, failed per neuron,
    loop iterations). A neuron without state (n = 0) takes no step."""
    size, knots = values.shape[0], grid.shape[0]
    real = size if count is None else count
    rtol, atol = tolerances[0], tolerances[1]
    axes = channel_axes(block)
    rows_of = jnp.zeros(size, values.dtype) if rows is None else rows

    def neuron_block(b, r):
        return b if rows is None else with_rows(b, r)

    def rate(b, vals, slps, t, y):
        return b.vector_field(t * time_unit, y, hermite(drive_ts, vals, slps, t)[0]) * time_unit

    def step(b, vals, slps, r, t, h, y):
        b = neuron_block(b, r)

        def linearised(t, y):
            u, du = hermite(drive_ts, vals, slps, t)
            f = lambda y, u: b.vector_field(t * time_unit, y, u) * time_unit  # noqa: E731
            n = y.shape[0]
            along_y = jnp.concatenate([jnp.eye(n, dtype=y.dtype), jnp.zeros((1, n), y.dtype)])
            along_u = jnp.concatenate([jnp.zeros((n,) + u.shape, u.dtype), du[None]])
            columns = jax.vmap(lambda dy, du: jax.jvp(f, (y, u), (dy, du))[1])(along_y, along_u)
            return columns[:n].T, columns[n]

        y1, norm = rodas4_step(
            lambda t, y: rate(b, vals, slps, t, y), linearised, t, h, y, rtol, atol
        )
        return y1, norm, rate(b, vals, slps, t + h, y1)

    def start(b, vals, slps, r, u):
        b = neuron_block(b, r)
        y = b.steady_guess(u)
        return y, rate(b, vals, slps, grid[0], y)

    step_lanes = jax.vmap(step, in_axes=(axes, 0, 0, 0, 0, 0, 0))
    start_lanes = jax.vmap(start, in_axes=(axes, 0, 0, 0, 0))

    def lane_inputs(neuron):
        neuron = jnp.minimum(neuron, size - 1)
        b = map_per_channel(lambda a: a[neuron], block)
        return b, values[neuron], slopes[neuron], rows_of[neuron]

    first = jnp.arange(lanes)
    active = first < real
    y, f = start_lanes(*lane_inputs(first), before[jnp.minimum(first, size - 1)])
    n = y.shape[-1]
    dtype = y.dtype
    states = jnp.zeros((size, knots, n), dtype)
    states = states.at[jnp.where(active, first, size), 0].set(y, mode="drop")
    if n == 0:
        zeros = jnp.zeros(size, jnp.int32)
        return states, zeros, zeros.astype(bool), jnp.asarray(0)

    def going(s: _Lanes):
        return jnp.any(s.active)

    def iteration(s: _Lanes) -> _Lanes:
        # at most knots_per_step knots in one step, and none beyond t_end
        last = jnp.minimum(s.next_knot + knots_per_step - 1, knots - 1)
        h = jnp.minimum(s.h, grid[last] - s.t)
        y1, norm, f1 = step_lanes(*lane_inputs(s.neuron), s.t, h, s.y)
        accept = s.active & (norm <= 1.0)
        t1 = s.t + h
        states, written = s.states, jnp.zeros_like(s.next_knot)
        for j in range(knots_per_step):
            knot = s.next_knot + j
            at = jnp.minimum(knot, knots - 1)
            write = accept & (knot < knots) & (grid[at] <= t1)
            fraction = jnp.clip((grid[at] - s.t) / h, 0.0, 1.0)[:, None]
            y_at = hermite_segment(s.y, h[:, None] * s.rate, y1, h[:, None] * f1, fraction)
            states = states.at[jnp.where(write, s.neuron, size), at].set(y_at, mode="drop")
            written = written + write.astype(written.dtype)
        next_knot = s.next_knot + written
        steps = s.steps.at[jnp.where(s.active, s.neuron, size)].add(1, mode="drop")
        grow = jnp.clip(
            SAFETY * jnp.where(norm > 0, norm, 1e-10) ** (-1.0 / ORDER),
            FACTOR_LIMITS[0],
            jnp.where(accept, FACTOR_LIMITS[1], 1.0),
        )
        t = jnp.where(accept, t1, s.t)
        y = jnp.where(accept[:, None], y1, s.y)
        f = jnp.where(accept[:, None], f1, s.rate)
        given_up = steps[jnp.minimum(s.neuron, size - 1)] >= max_steps
        finished = s.active & (next_knot >= knots)
        complete = s.complete.at[jnp.where(finished, s.neuron, size)].set(True, mode="drop")
        done = finished | (s.active & given_up)
        # the finished lanes take the next neurons, in lane order
        handed = s.queued + jnp.cumsum(done) - 1
        take = done & (handed < real)
        neuron = jnp.where(take, handed, s.neuron)
        # the new neurons' steady states; most iterations hand out none, and skip them
        y0, f0 = jax.lax.cond(
            jnp.any(take),
            lambda: start_lanes(*lane_inputs(neuron), before[jnp.minimum(neuron, size - 1)]),
            lambda: (y, f),
        )
        states = states.at[jnp.where(take, neuron, size), 0].set(y0, mode="drop")
        return _Lanes(
            neuron=neuron,
            active=(s.active & ~done) | take,
            t=jnp.where(take, grid[0], t),
            h=jnp.where(take, first_step, h * grow),
            y=jnp.where(take[:, None], y0, y),
            rate=jnp.where(take[:, None], f0, f),
            next_knot=jnp.where(take, 1, next_knot),
            states=states,
            steps=steps,
            complete=complete,
            queued=s.queued + jnp.sum(done).astype(s.queued.dtype),
            iterations=s.iterations + 1,
        )

    begin = _Lanes(
        neuron=first,
        active=active,
        t=jnp.full(lanes, grid[0], dtype),
        h=jnp.full(lanes, first_step, dtype),
        y=y,
        rate=f,
        next_knot=jnp.ones(lanes, jnp.int32),
        states=states,
        steps=jnp.zeros(size, jnp.int32),
        complete=jnp.arange(size) >= real,
        queued=jnp.minimum(lanes, real).astype(jnp.int32),
        iterations=jnp.asarray(0, jnp.int32),
    )
    end = jax.lax.while_loop(going, iteration, begin)
    return end.states, end.steps, ~end.complete, end.iterations

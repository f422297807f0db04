"""Refilled lanes (memjax.hardware.lanes) against the per-neuron transient's diffrax chunks,
stage by stage on the main job's transient, measured in one run.

    python benchmarks/bench_refilled_lanes.py [--stages input.conv unit0.left_depthwise ...]
        [--lanes 1024] [--rtol 3e-4] [--atol 3e-5]

The main job's transient (``paper_plain_diode_relu`` on its circuit-trained model, one
PrivateTest image, 300 ns) runs stage by stage as usual; at each stage named, the stage's
neurons are also integrated (a) in diffrax chunks of 256 at the transient's tolerances, its
default path without read-outs (``_chunk_outputs``), and (b) on refilled lanes at
``--rtol``/``--atol``, each twice (first run with compilation, then warm). Printed per stage:
the times and their ratio, steps per neuron, the share of lane-steps used, and both outputs'
largest distance on the grid from a tight solve (diffrax Kvaerno3, rtol 1e-7, atol 1e-9) of
its first 512 neurons.
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp

from memjax.circuits.waveform import hermite
from memjax.cli import CIRCUIT_TRAINED
from memjax.hardware import transient
from memjax.hardware.config import PRESETS
from memjax.hardware.lanes import solve_on_lanes
from memjax.hardware.memristive import convert
from memjax.hardware.stages import channel_axes
from memjax.reproduce import find_data, main_job_images
from memjax.training.checkpoint import load_model

PRESET = "paper_plain_diode_relu"


def _timed(fn):
    start = time.perf_counter()
    result = jax.block_until_ready(fn())
    return result, time.perf_counter() - start


def _outputs(block, values, slopes, drive_ts, grid, states):
    def one(b, vals, slps, ys):
        return jax.vmap(lambda t, y: b.observe(y, hermite(drive_ts, vals, slps, t)[0])[0][0])(
            grid, ys
        )

    return eqx.filter_jit(jax.vmap(one, in_axes=(channel_axes(block), 0, 0, 0)))(
        block, values, slopes, states
    )


def compare(name, stage, source, before, grid, options, args):
    prepared = transient._prepare(stage, source, before, grid, False)
    block, values, slopes, drive_before, rows = prepared
    count = values.shape[0]
    integrator, tolerances = transient._integrator(options), transient._tolerances(options)

    def chunks():
        outs = []
        for chunk, mask, kept in transient._chunks(prepared, count, options.chunk):
            out, _, _ = transient._chunk_outputs(
                *chunk, mask, source.ts, grid, integrator, tolerances
            )
            outs.append(out[:kept])
        return jnp.concatenate(outs)

    def lanes():
        return solve_on_lanes(
            block,
            values,
            slopes,
            drive_before,
            rows,
            source.ts,
            grid,
            jnp.asarray([args.rtol, args.atol]),
            options.first_interval / options.time_unit / 20,
            args.lanes,
            options.time_unit,
            options.max_steps,
        )

    _, chunks_first = _timed(chunks)
    reference, chunks_warm = _timed(chunks)
    _, lanes_first = _timed(lanes)
    (states, steps, failed, iterations), lanes_warm = _timed(lanes)
    outputs = _outputs(block, values, slopes, source.ts, grid, states)
    sub = min(count, 512)
    tight = transient._integrator(transient.TransientOptions(max_steps=20000))
    chunk, mask, _ = next(transient._chunks(prepared, sub, sub))
    exact, _, _ = transient._chunk_outputs(
        *chunk, mask, source.ts, grid, tight, jnp.asarray([1e-7, 1e-9])
    )
    lane_error = float(jnp.max(jnp.abs(outputs[:sub] - exact)))
    chunk_error = float(jnp.max(jnp.abs(reference[:sub] - exact)))
    used = float(jnp.sum(steps)) / (int(iterations) * args.lanes)
    print(
        f"{name:22s} {count:6d} | chunks {chunks_warm:6.2f} s ({chunks_first:5.1f} first), "
        f"off {chunk_error:.1e} V | lanes {lanes_warm:6.2f} s ({lanes_first:5.1f} first), "
        f"{float(jnp.mean(steps)):.1f} steps, {used:.0%} used, off {lane_error:.1e} V, "
        f"{int(jnp.sum(failed))} failed | {chunks_warm / lanes_warm:.2f}x",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stages", nargs="+", default=["input.conv", "unit0.left_depthwise", "unit0.left_project"]
    )
    parser.add_argument("--lanes", type=int, default=1024)
    parser.add_argument("--rtol", type=float, default=3e-4)
    parser.add_argument("--atol", type=float, default=3e-5)
    args = parser.parse_args()
    data, _ = find_data(None)  # $MEMJAX_FER2013 or the usual places
    if data is None:
        raise SystemExit("bench_refilled_lanes: FER2013 not found; set MEMJAX_FER2013")
    test = data.split("private_test")
    _, chosen = main_job_images(len(test), 0)
    model, _ = load_model(CIRCUIT_TRAINED[PRESET])
    hardware = PRESETS[PRESET]()
    net = convert(model, hardware)
    options = transient.TransientOptions.for_hardware(hardware)
    wanted, solve = set(args.stages), transient.run_stage

    def run_stage(name, stage, source, before, grid, options):
        if name in wanted:
            compare(name, stage, source, before, grid, options, args)
            wanted.discard(name)
            if not wanted:
                raise SystemExit(0)
        return solve(name, stage, source, before, grid, options)

    transient.run_stage = run_stage
    print(
        f"{PRESET}, circuit-trained model, one image; chunks of {options.chunk} at rtol "
        f"{options.rtol:g}, atol {options.atol:g}; {args.lanes} lanes at rtol {args.rtol:g}, "
        f"atol {args.atol:g}; 'off': largest |output - tight solve| on 512 neurons"
    )
    transient.simulate(net, test.images[chosen], options)


if __name__ == "__main__":
    main()

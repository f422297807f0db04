"""The least work any time-stepping transient of the memristive network must do, against the
plain Flax forward pass of the same model, measured in one run.

    python benchmarks/bench_transient_floor.py [--checkpoint DIR] [--preset P] [--samples 16]

Every transient must-show of issue 4 (settling of every layer, energy by kind, peak power of
every neuron, peak memristor voltage) is read from every neuron's state over time, and each
stage's drive is a crossbar convolution of the stage before at the same times. So however a
solver chooses its times, each time it samples a neuron it evaluates at least that neuron's
drive and its state equations once. This script times those pieces for ``--samples`` time
points at once (a batch axis, so the convolutions run batched), one stage at a time with its
conductances compiled in, the states at their steady values, and divides by the batch-1
forward pass:

- *drive*: every stage's crossbar convolutions (``NeuronStage.drive``);
- *op-amp rates*: the op-amp equation (``OpAmp.output_rate``: slew limit, rails) of every
  op-amp of the network, fused on one flat array: the arithmetic every step must do at
  least, without the bit-line nodes, the MBN and diode nodes or anything else;
- *vector fields* and *read-outs* as implemented (``Block.vector_field``, ``Block.observe``
  per neuron), for comparison.

No step control, Newton iteration, interpolation or storage of waveforms is timed: drive plus
op-amp rates is a lower bound per sample for any solver of these circuit equations, explicit
or implicit (a Runge-Kutta step evaluates the vector field several times, an implicit one
its Jacobian too). The last column is how many such samples per neuron fit in issue 4's
budget of 50 forward passes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from bench_network import best_rate  # noqa: E402  (same folder)

from memjax import convolution as conv
from memjax.cli import DEFAULT_CHECKPOINT
from memjax.devices import OpAmp
from memjax.hardware.config import PRESETS
from memjax.hardware.graph import propagate
from memjax.hardware.memristive import convert
from memjax.hardware.stages import per_neuron, plan
from memjax.hardware.transient import KINDS, float64, traced_opamps
from memjax.training import steps
from memjax.training.checkpoint import load_model


def _neurons(stage, x):
    """The stage's per-neuron inputs (positions, channels, inputs) for the layer input x."""
    drive = stage.drive(x)
    return drive.reshape((-1,) + drive.shape[-2:]), drive.shape[:-1]


def _steady(stage, x):
    """Every neuron of the stage at its steady state for x, and the stage's output."""
    u, shape = _neurons(stage, x)
    states = per_neuron(lambda b, _, u: b.steady_guess(u))(stage.block, u, u)
    out = per_neuron(lambda b, y, u: b.outputs(y, u))(stage.block, states, u)
    return states, out.reshape(shape)


def stage_inputs(stages, v):
    """(stage, its layer input, its neurons' steady states) in signal order, wired as the
    transient wires them, for the input voltages v (samples on the leading axis)."""
    found = []

    def run(name, kind, stage, x):
        states, out = jax.jit(lambda x, s=stage: _steady(s, x))(x)
        found.append((stage, x, states))
        return out

    def split(x):
        return jnp.split(x, 2, axis=-1)

    def concat(a, b):
        return jnp.concatenate([a, b], -1)

    propagate(stages, v, run, split, concat, conv.channel_shuffle)
    return found


def _drive(stage, x, states):
    return jnp.sum(_neurons(stage, x)[0])


def _field(stage, x, states):
    u, _ = _neurons(stage, x)
    if not states.shape[-1]:
        return jnp.sum(u)
    rates = per_neuron(lambda b, y, u: b.vector_field(0.0, y, u))(stage.block, states, u)
    return jnp.sum(u) + jnp.sum(jnp.abs(rates))


def _readouts(stage, x, states):
    u, _ = _neurons(stage, x)
    out, power, peak, _ = per_neuron(lambda b, y, u: b.observe(y, u))(stage.block, states, u)
    kinds = jnp.stack([jnp.sum(getattr(power, k)) for k in KINDS])
    return _field(stage, x, states) + jnp.sum(out) + jnp.sum(kinds) + jnp.max(peak)


def median_seconds(fn, repeats: int) -> float:
    return 1.0 / best_rate(fn, 1, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper_plain_diode_relu")
    parser.add_argument("--samples", type=int, default=16, help="time points per call")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--float64", action="store_true", help="as the transient integrates")
    args = parser.parse_args()
    model, _ = load_model(Path(args.checkpoint))
    _, eval_graph, params, batch_stats = steps.split_model(model)
    predict = jax.jit(steps.make_predict(eval_graph))
    image = np.random.default_rng(0).integers(0, 256, (1, 48, 48), dtype=np.uint8)
    forward = median_seconds(lambda: predict(params, batch_stats, image), 3 * args.repeats)
    with jax.enable_x64(args.float64):
        measure(args, model, image, forward)


def measure(args, model, image, forward: float) -> None:
    """The circuit's pieces on ``image`` (float64 with ``--float64``; the forward pass stays
    float32)."""
    dtype = jnp.float64 if args.float64 else jnp.float32
    net = convert(model, PRESETS[args.preset]())
    net = traced_opamps(float64(net) if args.float64 else net)
    # the samples: one image's input at slightly different levels (an input ramp)
    levels = jnp.linspace(0.9, 1.0, args.samples, dtype=dtype)[:, None, None]
    found = stage_inputs(plan(net), net.input_voltages(jnp.asarray(image, dtype) * levels))
    neurons = sum(int(np.prod(s.shape[:-1])) for _, _, s in found) // args.samples
    opamps = sum(int(np.prod(s.shape)) for _, _, s in found) // args.samples

    def per_sample(piece) -> float:
        total = 0.0
        for stage, x, states in found:
            fn = jax.jit(lambda x, s, stage=stage: piece(stage, x, s))
            total += median_seconds(lambda fn=fn, x=x, s=states: fn(x, s), args.repeats)
        return total / args.samples

    amp = OpAmp()
    y = jnp.linspace(-0.5, 0.5, opamps * args.samples, dtype=dtype)
    rates = jax.jit(lambda y: amp.output_rate(y, y * 1e-5 + 1e-6))
    rate_seconds = median_seconds(lambda: rates(y), args.repeats) / args.samples
    drive_seconds = per_sample(_drive)
    rows = [
        ("drive (crossbar convolutions)", drive_seconds),
        (f"op-amp rates ({opamps:,} op-amps, fused)", rate_seconds),
        ("floor: drive + op-amp rates", drive_seconds + rate_seconds),
        ("drive + vector fields, as implemented", per_sample(_field)),
        ("  + read-outs, as implemented", per_sample(_readouts)),
    ]
    print(
        f"{Path(args.checkpoint).name}, preset {args.preset}, {dtype.__name__}, "
        f"{args.samples} samples per call, {neurons:,} neurons and {opamps:,} op-amps per "
        f"image, {len(found)} stages"
    )
    print(f"forward pass, batch 1: {forward * 1e3:.2f} ms")
    print(f"{'per network sample, per image':<44}{'ms':>8}{'x forward':>11}{'samples in 50x':>16}")
    for label, seconds in rows:
        ratio = seconds / forward
        print(f"{label:<44}{seconds * 1e3:>8.2f}{ratio:>11.1f}{50 / ratio:>16.1f}")


if __name__ == "__main__":
    main()

"""Whole-network steady state of the memristive ShuffleNetV2 against the plain Flax forward
pass of the same model on the same batch, measured in one run.

    python benchmarks/bench_memristive.py [--widths 0.5 1.0] [--batches 8 32 128] [--preset P]

Four jitted programs per width and batch, timed in interleaved rounds (one call of each per
round, so that a change in the machine's load hits all four alike; medians over rounds):

- Flax forward with its parameters as arguments, and with them closed over (constants);
- the circuit's ``steady_logits`` with the network as an argument (``eqx.filter_jit``), and
  compiled for the one network (``compile_steady_logits``: its conductances constants, as a
  programmed chip's are during inference).

Prints images/s and the ratio (circuit time / forward time per image) of each circuit program
against the faster of the two forward programs. Issue 4's target is a ratio <= 3.
"""

from __future__ import annotations

import argparse
import functools
import time

import equinox as eqx
import jax
import numpy as np

from memjax.hardware.config import PRESETS
from memjax.hardware.memristive import compile_steady_logits, convert
from memjax.network import ShuffleNetConfig, build_model
from memjax.training import steps


def interleaved_medians(programs: dict, rounds: int) -> dict:
    """Median seconds per call of each program, one call of each per round."""
    for fn in programs.values():
        jax.block_until_ready(fn())  # compile
    times = {name: [] for name in programs}
    for _ in range(rounds):
        for name, fn in programs.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def programs(width: float, preset: str) -> dict:
    """The four programs of one width, each a function of the images."""
    model = build_model(ShuffleNetConfig(width=width))
    _, eval_graph, params, batch_stats = steps.split_model(model)
    predict = steps.make_predict(eval_graph)
    circuit = convert(model, PRESETS[preset]())
    steady = eqx.filter_jit(lambda net, x: net.steady_logits(x))
    return {
        "flax args": functools.partial(jax.jit(predict), params, batch_stats),
        "flax const": jax.jit(functools.partial(predict, params, batch_stats)),
        "circuit args": functools.partial(steady, circuit),
        "circuit const": compile_steady_logits(circuit),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="near_ideal")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(f"preset {args.preset}, {jax.device_count()} {jax.default_backend()} device(s)")
    print(
        f"{'width':>6}{'batch':>6}{'flax args':>11}{'flax const':>12}{'circuit args':>14}"
        f"{'circuit const':>15}{'ratio args':>12}{'ratio const':>13}   (img/s)"
    )
    for width in args.widths:
        fns = programs(width, args.preset)
        for batch in args.batches:
            images = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
            calls = {name: functools.partial(fn, images) for name, fn in fns.items()}
            seconds = interleaved_medians(calls, args.rounds)
            forward = min(seconds["flax args"], seconds["flax const"])
            rate = {name: batch / s for name, s in seconds.items()}
            print(
                f"{width:>6}{batch:>6}{rate['flax args']:>11.0f}{rate['flax const']:>12.0f}"
                f"{rate['circuit args']:>14.0f}{rate['circuit const']:>15.0f}"
                f"{seconds['circuit args'] / forward:>12.2f}"
                f"{seconds['circuit const'] / forward:>13.2f}"
            )


if __name__ == "__main__":
    main()

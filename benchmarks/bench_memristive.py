"""Whole-network steady state of the memristive ShuffleNetV2 against the plain Flax forward
pass of the same model on the same batch, measured in one run.

    python benchmarks/bench_memristive.py [--widths 0.5 1.0] [--batches 32 128] [--preset P]

Prints images/s of both and the ratio (circuit time / forward time per image). Issue 4's
target is a ratio <= 3.
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax
import numpy as np
from bench_network import best_rate  # noqa: E402  (same folder)

from memjax.hardware.config import PRESETS
from memjax.hardware.memristive import convert
from memjax.network import ShuffleNetConfig, build_model
from memjax.training import steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="near_ideal")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"preset {args.preset}, {jax.device_count()} {jax.default_backend()} device(s)")
    print(f"{'width':>6}{'batch':>7}{'forward img/s':>15}{'circuit img/s':>15}{'ratio':>8}")
    for width in args.widths:
        model = build_model(ShuffleNetConfig(width=width))
        _, eval_graph, params, batch_stats = steps.split_model(model)
        predict = jax.jit(steps.make_predict(eval_graph))
        circuit = convert(model, PRESETS[args.preset]())
        steady = eqx.filter_jit(lambda net, x: net.steady_logits(x))
        for batch in args.batches:
            images = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
            forward = best_rate(
                lambda f=predict, p=params, s=batch_stats, x=images: f(p, s, x),
                batch,
                args.repeats,
            )
            simulated = best_rate(
                lambda f=steady, net=circuit, x=images: f(net, x), batch, args.repeats
            )
            print(
                f"{width:>6}{batch:>7}{forward:>15.1f}{simulated:>15.1f}{forward / simulated:>8.1f}"
            )


if __name__ == "__main__":
    main()

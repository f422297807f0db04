"""Whole-network transient of the memristive ShuffleNetV2 against the plain Flax forward pass
of the same model and batch, measured in one run.

    python benchmarks/bench_transient.py [--checkpoint DIR | --width W] [--preset P] [--batches 1 2]

The transient is timed warm (a second run: every stage compiled already) and its first run,
which compiles each distinct stage, is reported beside it. Prints seconds per image of both
and the ratio. Issue 4's target is a ratio <= 50 per image. ``--width`` times a randomly
initialised model of that width instead of the checkpoint (for the scaling with width).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np
from bench_network import best_rate  # noqa: E402  (same folder)

from memjax.cli import DEFAULT_CHECKPOINT
from memjax.hardware.config import PRESETS
from memjax.hardware.memristive import convert
from memjax.hardware.transient import STEPPINGS, TransientOptions, simulate
from memjax.network import ShuffleNetConfig, build_model
from memjax.training import steps
from memjax.training.checkpoint import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper_plain_diode_relu")
    parser.add_argument("--width", type=float, help="a random-init model of this width")
    parser.add_argument("--batches", type=int, nargs="+", default=[1])
    parser.add_argument(
        "--stepping",
        choices=STEPPINGS,
        default="per_neuron",
        help="each neuron on its own diffrax steps (per_neuron), each stage's neurons on "
        "shared Rodas4 steps (per_stage), or each neuron on its own Rodas4 steps on refilled "
        "lanes (lanes)",
    )
    args = parser.parse_args()
    if args.width is None:
        model, _ = load_model(Path(args.checkpoint))
        name = Path(args.checkpoint).name
    else:
        model, name = build_model(ShuffleNetConfig(width=args.width)), f"random {args.width}x"
    _, eval_graph, params, batch_stats = steps.split_model(model)
    predict = jax.jit(steps.make_predict(eval_graph))
    circuit = convert(model, PRESETS[args.preset]())
    options = TransientOptions(stepping=args.stepping)
    print(f"{name}, preset {args.preset}, {args.stepping} steps, {jax.default_backend()}")
    print(
        f"{'batch':>6}{'forward s/img':>15}{'transient s/img':>17}{'first run s':>13}"
        f"{'steps':>7}{'mean steps':>12}{'ratio':>10}"
    )
    for batch in args.batches:
        images = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
        forward = 1.0 / best_rate(
            lambda x=images: predict(params, batch_stats, x), batch, repeats=5
        )
        start = time.perf_counter()
        simulate(circuit, images, options)
        first = time.perf_counter() - start
        start = time.perf_counter()
        records, _ = simulate(circuit, images, options)
        warm = (time.perf_counter() - start) / batch
        total_steps = sum(int(r.steps) for _, _, r in records)
        neurons = [int(np.prod(r.output.values.shape[1:])) for _, _, r in records]
        mean_steps = sum(
            float(r.mean_steps) * n for (_, _, r), n in zip(records, neurons, strict=True)
        ) / sum(neurons)
        print(
            f"{batch:>6}{forward:>15.2e}{warm:>17.2f}{first:>13.0f}{total_steps:>7}{mean_steps:>12.1f}"
            f"{warm / forward:>10.0f}"
        )


if __name__ == "__main__":
    main()

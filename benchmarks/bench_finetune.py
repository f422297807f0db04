"""A hardware-in-the-loop fine-tuning step against a software training step of the same model
and batch, measured in one run.

    python benchmarks/bench_finetune.py [--width 1.0] [--batch 64] [--preset near_ideal]

The fine-tuning step (``memjax.training.finetune.make_step``) is the chip's steady state
forward and backward through the circuit equations, an Adam update of every target
conductance and the re-programming of every memristor through the write-verify loop; the
software step (``memjax.training.steps.make_train_step``) is the Flax forward and backward
with augmentation and an AdamW update. Issue 5's target: ratio <= 5.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from memjax.hardware.chip import ChipVariation, fabricate
from memjax.hardware.config import PRESETS
from memjax.hardware.memristive import convert
from memjax.network import ShuffleNetConfig, build_model
from memjax.training import steps
from memjax.training.augment import AugmentConfig
from memjax.training.finetune import FinetuneConfig, initial_state, make_optimizer, make_step


def seconds_per_step(step, state, images, labels, repeats: int) -> float:
    state, _ = step(state, images, labels)  # compile
    jax.block_until_ready(state)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        state, metrics = step(state, images, labels)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="near_ideal")
    parser.add_argument("--variation", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (args.batch, 48, 48), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, 7, args.batch), jnp.int32)

    model = build_model(ShuffleNetConfig(width=args.width))
    design = convert(model, PRESETS[args.preset]())  # before the train step donates the weights
    train_graph, _, params, batch_stats = steps.split_model(model)
    optimizer = steps.make_optimizer(steps.OptimizerConfig(), 100, 10)
    state = steps.init_state(params, batch_stats, optimizer, 0)
    train_step = steps.make_train_step(train_graph, optimizer, AugmentConfig(), 0.1)
    software = seconds_per_step(train_step, state, images, labels, args.repeats)

    started = time.perf_counter()
    chip, report = fabricate(design, ChipVariation(variation=args.variation), jax.random.key(0))
    jax.block_until_ready(chip)
    fabricated = time.perf_counter() - started
    config = FinetuneConfig(steps=1000)
    tune = make_optimizer(config)
    tune_state = initial_state(chip, tune, 0)
    hardware = seconds_per_step(make_step(tune), tune_state, images, labels, args.repeats)
    devices = int(report["devices"])
    print(f"{args.width}x, batch {args.batch}, preset {args.preset}, {devices:,} memristors")
    print(f"fabricate + program the chip (compile included): {fabricated:.1f} s")
    print(f"{'software step':>22}{'fine-tuning step':>20}{'ratio':>8}")
    print(f"{software * 1e3:>19.0f} ms{hardware * 1e3:>17.0f} ms{hardware / software:>8.1f}")


if __name__ == "__main__":
    main()

"""Throughput of the digital ShuffleNetV2 on this machine: forward and training step.

Forward: images/s at batch 256 in evaluation mode. Train step: images/s at batch 128 with
augmentation, forward, backward and the SGD update, as ``memjax train`` runs it. Printed as a
table, with the ratio train/forward per image; recorded in benchmarks/README.md.

    python benchmarks/bench_network.py [--widths 0.5 1.0] [--repeats 10]
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np

from memjax.network import ShuffleNetConfig, build_model
from memjax.training import steps
from memjax.training.augment import AugmentConfig


def best_rate(fn, batch: int, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return batch / float(np.median(times))


def measure(width: float, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    model = build_model(ShuffleNetConfig(width=width))
    train_graph, eval_graph, params, batch_stats = steps.split_model(model)
    predict = steps.make_predict(eval_graph)
    eval_images = rng.integers(0, 256, (256, 48, 48), dtype=np.uint8)
    forward = best_rate(lambda: predict(params, batch_stats, eval_images), 256, repeats)

    optimizer = steps.make_optimizer(steps.OptimizerConfig(), 224, 30)
    train_step = steps.make_train_step(train_graph, optimizer, AugmentConfig(), 0.1)
    images = rng.integers(0, 256, (128, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, 128).astype(np.int32)
    holder = {"state": steps.init_state(params, batch_stats, optimizer, 0)}

    def one_step():
        holder["state"], metrics = train_step(holder["state"], images, labels)
        return metrics["loss"]

    train = best_rate(one_step, 128, repeats)
    return {"width": width, "forward": forward, "train": train}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {jax.device_count()} "
        f"{jax.default_backend()} device(s), jax {jax.__version__}"
    )
    print(
        f"{'width':>6} {'forward img/s (b=256)':>22} {'train img/s (b=128)':>20} "
        f"{'forward/train':>14}"
    )
    for width in args.widths:
        row = measure(width, args.repeats)
        print(
            f"{row['width']:>6} {row['forward']:>22.0f} {row['train']:>20.0f} "
            f"{row['forward'] / row['train']:>14.1f}"
        )


if __name__ == "__main__":
    main()

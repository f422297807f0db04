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
import jax.numpy as jnp
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


def depthwise_ratio(repeats: int) -> tuple[float, float]:
    """Seconds per call of a stage-2 depthwise 3x3 (batch 128, 24x24x58), forward + backward:
    nine shifted multiply-adds (memjax) against XLA's grouped convolution."""
    from memjax.convolution import depthwise_conv3x3

    x = jax.random.normal(jax.random.key(0), (128, 24, 24, 58))
    kernel = jax.random.normal(jax.random.key(1), (3, 3, 58))

    def grouped(x, kernel):
        return jax.lax.conv_general_dilated(
            x,
            kernel[:, :, None, :],
            (1, 1),
            ((1, 1), (1, 1)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=58,
        )

    seconds = []
    for conv in (depthwise_conv3x3, grouped):
        fn = jax.jit(jax.grad(lambda x, k, conv=conv: jnp.sum(conv(x, k) ** 2), argnums=(0, 1)))
        seconds.append(1.0 / best_rate(lambda fn=fn: fn(x, kernel), 1, repeats))
    return seconds[0], seconds[1]


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

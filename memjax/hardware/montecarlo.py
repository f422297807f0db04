"""Monte Carlo over chips: many chips of one design, fabricated and evaluated in parallel.

The chips are a batch axis (``jax.vmap`` over their PRNG keys), laid out across the devices of
a one-axis mesh with ``jax.sharding``: each device fabricates, programs and evaluates its share
of the chips, the design and the images replicated. The same code runs on one CPU, on several
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``), on a GPU, or across hosts when the
mesh spans them (``jax.distributed.initialize`` first).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from memjax.hardware.chip import ChipVariation, evaluation_key, fabricate, inference_logits
from memjax.hardware.memristive import MemristiveShuffleNet


def chip_accuracies(
    design: MemristiveShuffleNet,
    variation: ChipVariation,
    keys: jax.Array,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 128,
    mesh: jax.sharding.Mesh | None = None,
) -> dict:
    """Accuracy of one chip per key (``keys``: shape (N,)), chips sharded over ``mesh``
    (default: every device, axis "chips"; N is padded to a multiple of its size).

    Returns ``accuracy`` (N,), ``programming_error_rms`` (N,: relative conductance error
    that programming and variation left) and ``devices`` (the mesh size). Images are
    evaluated in batches of ``batch_size`` (a trailing partial batch is padded and masked),
    each image one inference: with read noise, its own draw from the chip's
    :func:`~memjax.hardware.chip.evaluation_key` folded with the batch index, as
    ``chip_accuracy(chip, images, labels, batch_size, key=evaluation_key(key))`` draws it.
    """
    mesh = mesh or jax.make_mesh((jax.device_count(),), ("chips",))
    count = keys.shape[0]
    padded = -(-count // mesh.size) * mesh.size
    keys = jnp.concatenate([keys, keys[: padded - count]]) if padded > count else keys
    n = len(images)
    batches = -(-n // batch_size)
    fill = batches * batch_size - n
    x = np.concatenate([images, np.zeros((fill, *images.shape[1:]), images.dtype)])
    y = np.concatenate([labels.astype(np.int32), np.full(fill, -1, np.int32)])
    x = x.reshape(batches, batch_size, *images.shape[1:])
    y = y.reshape(batches, batch_size)
    arrays, static = eqx.partition(design, eqx.is_array)

    def one_chip(key, arrays, x, y):
        chip, report = fabricate(eqx.combine(arrays, static), variation, key)
        reads = evaluation_key(key)

        def evaluate(correct, batch):
            index, images, labels = batch
            logits = inference_logits(chip, images, jax.random.fold_in(reads, index))
            return correct + jnp.sum(jnp.argmax(logits, -1) == labels), None

        batch_indices = jnp.arange(batches)
        correct, _ = jax.lax.scan(evaluate, jnp.zeros((), jnp.int32), (batch_indices, x, y))
        return correct / n, report["relative_error_rms"]

    chips = NamedSharding(mesh, P("chips"))
    replicated = NamedSharding(mesh, P())
    run = jax.jit(
        jax.vmap(one_chip, in_axes=(0, None, None, None)),
        in_shardings=(chips, replicated, replicated, replicated),
        out_shardings=(chips, chips),
    )
    accuracy, error = run(keys, arrays, x, y)
    return {
        "accuracy": np.asarray(accuracy)[:count],
        "programming_error_rms": np.asarray(error)[:count],
        "devices": mesh.size,
        "sharding": accuracy.sharding,
    }

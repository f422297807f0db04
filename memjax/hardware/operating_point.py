"""The DC operating point of every neuron of a memristive network: its state, outputs, power
by kind and memristor voltages at steady state, for given images.

The whole-network steady state (``MemristiveShuffleNet.steady_state``) gives the logits from
each stage's closed-form transfer; it does not carry the op-amps' states, so it cannot say what
each neuron dissipates. Here every neuron's circuit (``memjax.hardware.stages``: the same
blocks, equivalent kernel rows and memristor spread the transient integrates) is put at its
static roots (the closed-form ``steady_guess`` the transient starts from; optionally Newton on
``vector_field(..., static=True)`` from there), then read out with ``observe`` as the
transient reads it at every knot. So
the transient's power at long times and this power are one computation on one state, and a
test holds them together. The stages are walked by :func:`~memjax.hardware.stages.plan`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from memjax import convolution as conv
from memjax.circuits.simulate import steady_state
from memjax.hardware.graph import propagate
from memjax.hardware.memristive import MemristiveShuffleNet
from memjax.hardware.stages import (
    NeuronStage,
    channel_axes,
    map_per_channel,
    observe,
    plan,
    rows_against_bit_lines,
    with_rows,
)
from memjax.hardware.transient import KINDS, float64, traced_opamps


class StagePoint(eqx.Module):
    """One stage at its DC operating point, for a batch of images.

    Attributes:
        output: every neuron's output voltage, (N, ..., K), V.
        power: the stage's total power by kind per image, (N, 4) in :data:`KINDS` order, W.
        neuron_power: every neuron's power by kind, (N, ..., K, 4), W (memristors include
            the spread its equivalent rows do not see).
        max_memristor_voltage: largest |V| across any of the stage's memristors, per image
            (N,), V.
    """

    output: Array
    power: Array
    neuron_power: Array
    max_memristor_voltage: Array


POINT_CHUNK = 4096
"""Neurons put at their operating point together (one vectorised program). Every chunk of
every stage has this size (a smaller stage, or a stage's last chunk, is padded), and the
op-amps' dynamic fields are traced (``transient.traced_opamps``), so stages of one block
kind share one compiled program whatever their shape or image count, as the transient's
chunk solvers do. One program per distinct stage compiled 19 programs per preset: the
main job's DC operating point of 4 images took 61 s (``paper``), 72 s (``near_ideal``
after it); in chunks 22 s and 16-20 s, for 8 s warm against 3.6 s (the per-neuron blocks
are gathered on the host), the same points to 2e-11 (``paper``) and 3e-7 (``near_ideal``,
A0 1e9) of each stage's largest value (2 cores, 2026-12-07). 1,024 and 8,192 took as
long."""


def stage_point(
    stage: NeuronStage, v: Array, newton: bool = False, rtol: float = 1e-9, atol: float = 1e-9
) -> StagePoint:
    """The DC operating point of every neuron of ``stage`` driven by the layer input ``v``
    (N, ..., C), V: each neuron's closed-form static roots (``steady_guess``: exact for
    every block of a converted network, tests/test_transient.py holds them to Newton), or
    with ``newton`` Newton's method from there to ``rtol``, ``atol`` (V)."""
    drive, high, low, rows, spread = _drive(stage, v)
    shape = spread.shape
    count = int(np.prod(shape))
    # neuron-major (neuron i of channel i % K), gathered in chunks on the host: a gather
    # inside the stage's program made it compile ~4x longer
    block = map_per_channel(np.asarray, traced_opamps(stage.block))
    inputs = tuple(None if a is None else np.asarray(a) for a in (drive, high, low, rows))
    parts = []
    for begin in range(0, count, POINT_CHUNK):
        index = np.minimum(np.arange(begin, begin + POINT_CHUNK), count - 1)
        channel = index % shape[-1]
        chunk = map_per_channel(lambda a, channel=channel: a[channel], block)
        chunk_inputs = (None if a is None else a[index] for a in inputs)
        parts.append(_point_chunk(chunk, *chunk_inputs, stage.is_crossbar, newton, rtol, atol))
    # assembled on the host: eager concatenations compile a program for every shape
    out, kinds, peak = (np.concatenate([np.asarray(p[i]) for p in parts])[:count] for i in range(3))
    kinds = kinds.reshape(shape + (len(KINDS),))
    kinds[..., 0] += np.asarray(spread)
    images = shape[0]
    return StagePoint(
        output=jnp.asarray(out.reshape(shape)),
        power=jnp.asarray(kinds.reshape(images, -1, len(KINDS)).sum(1)),
        neuron_power=jnp.asarray(kinds),
        max_memristor_voltage=jnp.asarray(peak.reshape(images, -1).max(1)),
    )


@eqx.filter_jit
def _drive(stage: NeuronStage, v: Array):
    """Every neuron's drive (count, m), the highest and lowest row its memristors see
    (count,) and the rows it drives (count,) or None, neuron-major; and the memristor power
    its equivalent rows do not see, in the stage's output shape (N, ..., K)."""
    drive = stage.drive(v)  # (N, ..., K, m)
    shape = drive.shape[:-1]
    count = int(np.prod(shape))
    if stage.kind == "max_pool":
        high = low = jnp.zeros(shape)
    else:
        high, low = (jnp.broadcast_to(a, shape) for a in stage.row_extremes(v))
    rows = None
    if stage.rows is not None:
        rows = jnp.broadcast_to(stage.rows, shape).reshape(count)
    spread = stage.spread(v, drive)
    return drive.reshape(count, -1), high.reshape(count), low.reshape(count), rows, spread


@eqx.filter_jit
def _point_chunk(block, drive, high, low, rows, crossbar: bool, newton, rtol, atol):
    """One chunk of neurons at their operating point: (output, power by kind, largest
    memristor |V|) per neuron."""

    def neuron(block, u, high, low, rows):
        if rows is not None:
            block = with_rows(block, rows)
        y = block.steady_guess(u)
        if newton:
            y = steady_state(block, u, rtol=rtol, atol=atol)
        out, power, peak, _ = observe(block, y, u, rows)
        if crossbar:
            peak = jnp.maximum(peak, rows_against_bit_lines(block, y, u, high, low))
        return out[0], jnp.stack([getattr(power, k) for k in KINDS]), peak

    over_neurons = eqx.filter_vmap(neuron, in_axes=(channel_axes(block), 0, 0, 0, 0))
    return over_neurons(block, drive, high, low, rows)


def _split(x):
    return jnp.split(x, 2, axis=-1)


def _concat(a, b):
    return jnp.concatenate([a, b], axis=-1)


def operating_point(
    net: MemristiveShuffleNet, gray_levels, newton: bool = False
) -> tuple[list[tuple[str, str, StagePoint]], Array]:
    """Every stage of ``net`` at its DC operating point for (N, 48, 48) images.

    Returns ``(stages, logits)``: (name, unit kind, :class:`StagePoint`) in signal order, and
    the logits in network units (equal to ``net.steady_logits`` within its transfer tables'
    error). ``newton``: polish every neuron's closed-form roots with Newton's method (to
    1e-9 V; slower to compile). In float64, as the
    transient (an op-amp's static residual A0 v_d - y needs it).
    """
    with jax.enable_x64(True):
        return _operating_point(float64(net), np.asarray(gray_levels, np.float64), newton)


def _operating_point(net, gray_levels, newton):
    points = []

    def run(name, kind, stage, v):
        point = stage_point(stage, v, newton)
        points.append((name, kind, point))
        return point.output

    x = net.input_voltages(gray_levels)
    logits = propagate(plan(net, x.shape[1:3]), x, run, _split, _concat, conv.channel_shuffle)
    return points, logits / net.volts_per_unit


def summarise_power(points: list[tuple[str, str, StagePoint]]) -> dict:
    """The DC power of the network over its images: the largest power of one neuron (the
    worst image), its split by kind and its stage; the network's total by kind (mean over
    the images); the largest memristor |V| and where. Everything but the op-amps' bias.

    A neuron is one output of a stage: its kernel pair (both TIAs and the difference stage),
    MBN and ReLU or clamp; a max-pool output; an average-pool channel."""
    best = (-1.0, None, None)
    totals = np.zeros(len(KINDS))
    peak = (-1.0, None)
    by_stage = {}
    for name, _, point in points:
        neuron = np.asarray(point.neuron_power)
        flat = neuron.reshape(-1, len(KINDS))
        index = int(np.argmax(flat.sum(-1)))
        if flat[index].sum() > best[0]:
            best = (float(flat[index].sum()), name, flat[index])
        totals += np.asarray(point.power).mean(0)
        stage_peak = float(np.max(np.asarray(point.max_memristor_voltage)))  # on the host: float64
        if stage_peak > peak[0]:
            peak = (stage_peak, name)
        by_stage[name] = {
            "max_neuron_power_W": float(flat.sum(-1).max()),
            "power_W": float(np.asarray(point.power).sum(-1).mean()),
            "max_memristor_voltage_V": stage_peak,
        }
    return {
        "max_neuron_power_W": best[0],
        "max_neuron_stage": best[1],
        "max_neuron_power_by_kind_W": dict(zip(KINDS, map(float, best[2]), strict=True)),
        "network_power_by_kind_W": dict(zip(KINDS, map(float, totals), strict=True)),
        "network_power_W": float(totals.sum()),
        "max_memristor_voltage_V": peak[0],
        "max_memristor_stage": peak[1],
        "stages": by_stage,
    }

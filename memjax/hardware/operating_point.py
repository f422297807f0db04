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
    observe,
    plan,
    rows_against_bit_lines,
    with_rows,
)
from memjax.hardware.transient import KINDS, float64


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


@eqx.filter_jit
def stage_point(
    stage: NeuronStage, v: Array, newton: bool = False, rtol: float = 1e-9, atol: float = 1e-9
) -> StagePoint:
    """The DC operating point of every neuron of ``stage`` driven by the layer input ``v``
    (N, ..., C), V: each neuron's closed-form static roots (``steady_guess``: exact for
    every block of a converted network, tests/test_transient.py holds them to Newton), or
    with ``newton`` Newton's method from there to ``rtol``, ``atol`` (V)."""
    drive = stage.drive(v)  # (N, ..., K, m)
    shape = drive.shape[:-1]
    channels = shape[-1]
    flat = drive.reshape(-1, channels, drive.shape[-1])

    def neuron(block, u, high, low, rows):
        if rows is not None:
            block = with_rows(block, rows)
        y = block.steady_guess(u)
        if newton:
            y = steady_state(block, u, rtol=rtol, atol=atol)
        out, power, peak, _ = observe(block, y, u, rows)
        if stage.is_crossbar:
            peak = jnp.maximum(peak, rows_against_bit_lines(block, y, u, high, low))
        return out[0], jnp.stack([getattr(power, k) for k in KINDS]), peak

    if stage.kind == "max_pool":
        high = low = jnp.zeros(shape)
    else:
        high, low = (jnp.broadcast_to(a, shape) for a in stage.row_extremes(v))
    rows = None
    if stage.rows is not None:
        rows = jnp.broadcast_to(stage.rows, shape).reshape(-1, channels)
    over_channels = eqx.filter_vmap(neuron, in_axes=(channel_axes(stage.block), 0, 0, 0, 0))
    out, kinds, peak = eqx.filter_vmap(over_channels, in_axes=(None, 0, 0, 0, 0))(
        stage.block, flat, high.reshape(-1, channels), low.reshape(-1, channels), rows
    )
    kinds = kinds.reshape(shape + (len(KINDS),))
    kinds = kinds.at[..., 0].add(stage.spread(v, drive))
    images = shape[0]
    return StagePoint(
        output=out.reshape(shape),
        power=kinds.reshape(images, -1, len(KINDS)).sum(1),
        neuron_power=kinds,
        max_memristor_voltage=peak.reshape(images, -1).max(1),
    )


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
        stage_peak = float(np.max(point.max_memristor_voltage))
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

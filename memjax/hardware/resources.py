"""Circuit resources of a memristive ShuffleNetV2: memristors, crossbars, word lines, op-amps,
inverters and diodes, per layer, per unit kind and in total, for both crossbar topologies and
both mapping schedules.

The counting rules (physics notes, section 2; the first two are the paper's):

- A kernel of M weights is an (M+1)x2 crossbar read by two transimpedance amplifiers and one
  inverter (difference stage) in the proposed topology: 2(M+1) memristors, M+1 word lines,
  3 op-amps of which 1 is an inverter. In the original (2M+1)x1 topology it is one column of
  2M+1 memristors on 2M+1 word lines, one TIA, and an inverter per input: M inverters.
  With ``share_input_inverters`` the original's inverters serve every column on the same word
  lines (one set per crossbar), which is how one would build it; the paper counts per kernel.
- The kernels of a layer that read the same inputs share one crossbar's word lines (a
  depthwise channel reads its own inputs: one crossbar per channel).
- MBN (``bn_mode="separate"``): per output neuron one op-amp with an input, a feedback and
  two bias memristors (a differential pair on +-V_b, as ``memjax.hardware.memristive`` builds
  it). Folded into the kernel: nothing.
- ReLU + limiter: per output neuron two diodes (rectifier and limiter), plus one op-amp for a
  super-diode rectifier and one for an active limiter. A linear stage clamped to +-V_p
  (``clamp_linear``) has the precision symmetric limiter (``DiodeClamp``): two diodes and
  three op-amps.
- Max pooling over a 3x3 window: nine diodes per output (diode-OR), plus nine op-amps with
  super diodes. Global average pooling: per channel a summing amplifier on an N x 1 memristor
  column with a memristor feedback (N + 1 memristors, 1 op-amp).
- Schedules: "parallel" gives every output position its own circuits; "reuse" keeps one set
  per layer and time-multiplexes it over the positions (the layer's calculation periods).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Literal

from memjax.devices.validation import require_choice
from memjax.errors import MemjaxError
from memjax.hardware.layers import Layer

Topology = Literal["proposed", "original"]
Schedule = Literal["parallel", "reuse"]
FIELDS = ("memristors", "crossbars", "word_lines", "op_amps", "inverters", "diodes")


@dataclasses.dataclass(frozen=True)
class CountingOptions:
    """The circuit choices that change the counts.

    Attributes:
        topology: "proposed" (M+1)x2 or "original" (2M+1)x1 crossbar kernels.
        schedule: "parallel" (circuits per output position) or "reuse" (one set per layer).
        batch_norm: "separate" (MBN stages) or "folded" into the kernels.
        relu: "plain" diodes or "super" diodes (op-amp precision rectifier).
        limiter: "active" (an op-amp drives the limiter diode) or "diode" (the diode alone;
            always so behind a plain ReLU).
        max_pool: "plain" diode-OR or "super" diodes.
        clamp_linear: whether linear stages carry a symmetric +-V_p limiter.
        share_input_inverters: original topology: one inverter per word line of a crossbar
            instead of one per input of every kernel (the paper's count).
    """

    topology: Topology = "proposed"
    schedule: Schedule = "parallel"
    batch_norm: Literal["separate", "folded"] = "separate"
    relu: Literal["plain", "super"] = "plain"
    limiter: Literal["active", "diode"] = "diode"
    max_pool: Literal["plain", "super"] = "plain"
    clamp_linear: bool = True
    share_input_inverters: bool = False

    def __post_init__(self):
        choices = {
            "topology": ("proposed", "original"),
            "schedule": ("parallel", "reuse"),
            "batch_norm": ("separate", "folded"),
            "relu": ("plain", "super"),
            "limiter": ("active", "diode"),
            "max_pool": ("plain", "super"),
        }
        for name, allowed in choices.items():
            require_choice("CountingOptions", name, getattr(self, name), allowed)
        if self.relu == "plain" and self.limiter == "active":
            raise MemjaxError(
                "CountingOptions.limiter: an active limiter behind a plain diode ReLU is not "
                "built; use 'diode'"
            )


@dataclasses.dataclass(frozen=True)
class Resources:
    """Counts of one layer, one unit kind or the whole network."""

    memristors: int = 0
    crossbars: int = 0
    word_lines: int = 0
    op_amps: int = 0
    inverters: int = 0
    diodes: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(*(getattr(self, f) + getattr(other, f) for f in FIELDS))

    def scaled(self, factor: int) -> Resources:
        return Resources(*(getattr(self, f) * factor for f in FIELDS))

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def layer_resources(layer: Layer, options: CountingOptions) -> Resources:
    """The circuits of one layer under ``options``."""
    copies = layer.positions if options.schedule == "parallel" else 1
    if layer.kind == "max_pool":
        diodes = layer.inputs_per_kernel * layer.out_channels
        op_amps = diodes if options.max_pool == "super" else 0
        return Resources(op_amps=op_amps, diodes=diodes).scaled(copies)
    if layer.kind == "average_pool":
        n = layer.inputs_per_kernel
        per_channel = Resources(memristors=n + 1, crossbars=1, word_lines=n, op_amps=1)
        return per_channel.scaled(layer.out_channels * copies)
    crossbar = _crossbar(layer, options)
    neurons = layer.out_channels
    extra = Resources()
    if layer.batch_norm and options.batch_norm == "separate":
        extra += Resources(memristors=4 * neurons, op_amps=neurons)
    if layer.activation == "relu":
        amplifiers = int(options.relu == "super") + int(options.limiter == "active")
        extra += Resources(diodes=2 * neurons, op_amps=amplifiers * neurons)
    elif layer.activation == "linear" and options.clamp_linear:
        extra += Resources(diodes=2 * neurons, op_amps=3 * neurons)
    return (crossbar.scaled(layer.crossbars_per_position) + extra).scaled(copies)


def _crossbar(layer: Layer, options: CountingOptions) -> Resources:
    """One crossbar with its kernels and read-out amplifiers (one output position)."""
    m, k = layer.inputs_per_kernel, layer.kernels_per_crossbar
    if options.topology == "proposed":
        return Resources(
            memristors=2 * (m + 1) * k, crossbars=1, word_lines=m + 1, op_amps=3 * k, inverters=k
        )
    inverters = m if options.share_input_inverters else m * k
    return Resources(
        memristors=(2 * m + 1) * k,
        crossbars=1,
        word_lines=2 * m + 1,
        op_amps=k + inverters,
        inverters=inverters,
    )


def network_resources(layers: list[Layer], options: CountingOptions) -> dict:
    """Per layer, per unit kind and in total, as plain dictionaries (for JSON)."""
    per_layer = {layer.name: layer_resources(layer, options) for layer in layers}
    per_unit: dict[str, Resources] = defaultdict(Resources)
    for layer in layers:
        per_unit[layer.unit] += per_layer[layer.name]
    total = sum(per_layer.values(), Resources())
    return {
        "options": dataclasses.asdict(options),
        "per_layer": {name: r.as_dict() for name, r in per_layer.items()},
        "per_unit": {unit: r.as_dict() for unit, r in per_unit.items()},
        "total": total.as_dict(),
    }


def opamp_bias(layers: list[Layer], options: CountingOptions, bias_power: float) -> dict:
    """The op-amps' static bias power (``bias_power`` W each, :attr:`OpAmp.bias_power`) under
    ``options``.

    Returns a dictionary (for JSON):
        per_opamp_W: ``bias_power``.
        op_amps: the op-amps of the whole network (:func:`network_resources`).
        network_W: their bias power together.
        max_op_amps_per_neuron: the op-amps of one neuron (one output position of one
            channel with its crossbar read-out, MBN, ReLU and limiter or clamp; or one pooled
            output) in the layer whose neurons hold the most.
        max_per_neuron_W: their bias power.
        max_per_neuron_layer: that layer's name.
    The reference follower of the diode limiters (one per chip) is not counted."""
    total = network_resources(layers, options)["total"]["op_amps"]
    per_neuron = {
        layer.name: layer_resources(layer, options).op_amps
        / (layer.out_channels * (layer.positions if options.schedule == "parallel" else 1))
        for layer in layers
    }
    busiest = max(per_neuron, key=per_neuron.get)
    return {
        "per_opamp_W": bias_power,
        "op_amps": total,
        "network_W": total * bias_power,
        "max_op_amps_per_neuron": per_neuron[busiest],
        "max_per_neuron_W": per_neuron[busiest] * bias_power,
        "max_per_neuron_layer": busiest,
    }

"""How fast a memristive network can answer at all: the latency floor of its op-amps.

No op-amp stage follows its input faster than one pole at its gain-bandwidth product: with a
feedback factor beta <= 1 its closed-loop bandwidth is at most beta GBW, so its step response
is no faster than ``1 - exp(-2 pi GBW t)``. A step through n such stages in series is no
faster than the cascade of n single poles at GBW, whose response is the Gamma(n, tau) CDF
with tau = 1 / (2 pi GBW): it reaches any band of 1 % or less after its mean n tau. So the
logits cannot settle (1 % of V_p) before

    floor = n tau,   n = the op-amp stages in series on the critical path.

A lower bound, not a prediction: slew, the op-amps' own non-dominant poles, node capacitance,
diode dead zones (a super diode's op-amp must first cross its diode's forward drop) and the
settling of every other op-amp only add to it. Stages counted in series per layer on the
critical path (:func:`~memjax.hardware.layers.critical_path`):

- a crossbar convolution or the fully connected layer: 2 (the bit lines' transimpedance
  amplifiers, then the difference stage; the original (2M+1)x1 topology's input inverters
  then its TIA: also 2);
- a separate MBN: 1 (its summing amplifier); folded: 0;
- a ReLU: 1 with a super diode (its rectifier's op-amp; an active limiter clamps in
  parallel, not in series), 0 with a plain diode;
- a linear stage's symmetric clamp (``DiodeClamp``, where the model clamps its linear
  stages): 1 (its U1 drives the output through
  the series resistor; its limiters U2, U3 act in parallel);
- max pooling: 1 with super diodes, 0 with the diode-OR;
- the global average pool: 1 (its summing amplifier).
"""

from __future__ import annotations

import math

from memjax.hardware.config import HardwareConfig
from memjax.hardware.layers import critical_path
from memjax.network.config import ShuffleNetConfig


def series_opamp_stages(config: ShuffleNetConfig, hardware: HardwareConfig) -> int:
    """The op-amp stages in series on the critical path of ``config``'s network built with
    ``hardware`` (module docstring)."""
    count = 0
    for layer in critical_path(config):
        if layer.kind == "max_pool":
            count += int(hardware.max_pool == "super")
            continue
        if layer.kind == "average_pool":
            count += 1
            continue
        count += 2  # the crossbar's read-out
        if layer.batch_norm and hardware.batch_norm == "separate":
            count += 1
        if layer.activation == "relu":
            count += int(hardware.relu == "super")
        elif layer.activation == "linear" and config.clamp_linear:
            count += 1  # the model's linear stages are clamped in the circuit
    return count


def latency_floor(config: ShuffleNetConfig, hardware: HardwareConfig) -> dict:
    """The latency floor (module docstring) as a dictionary for JSON: ``floor_s``, the
    ``series_opamp_stages`` and the ``pole_time_constant_s`` 1 / (2 pi GBW)."""
    stages = series_opamp_stages(config, hardware)
    tau = 1.0 / (2.0 * math.pi * hardware.opamp.gain_bandwidth)
    return {
        "floor_s": stages * tau,
        "series_opamp_stages": stages,
        "pole_time_constant_s": tau,
        "how": "n op-amp stages in series on the critical path x 1 / (2 pi GBW): each at best "
        "one pole at its GBW; a bound, not a prediction",
    }

"""Latency against power as the op-amps change: whole-network transients over a GBW sweep.

Every point is a full transient of the same images (:func:`memjax.hardware.transient.simulate`)
with every op-amp's GBW replaced (:func:`~memjax.hardware.memristive.with_opamp_dynamics`);
GBW and slew rate are traced values there, so the sweep compiles once. The slew rate is
either held at the preset's value ("fixed": faster op-amps stop paying off once the edges are
slew-limited) or scaled with the GBW ("proportional": an op-amp family scaled in bias
current, whose every time constant scales together, so latency should fall as 1 / GBW).
"""

from __future__ import annotations

from typing import Literal

from memjax.errors import MemjaxError
from memjax.hardware.memristive import MemristiveShuffleNet, with_opamp_dynamics
from memjax.hardware.report import summarise
from memjax.hardware.transient import TransientOptions, simulate


def gbw_sweep(
    net: MemristiveShuffleNet,
    images,
    gains: list[float],
    options: TransientOptions,
    slew: Literal["fixed", "proportional"] = "fixed",
    say=None,
) -> list[dict]:
    """One row per GBW (Hz): the network's latency (logits settled; slowest layer settled),
    argmax settling, energy per inference, mean power over the energy window, peak power and
    peak neuron power."""
    if slew not in ("fixed", "proportional"):
        raise MemjaxError(f"gbw_sweep: slew {slew!r}, expected 'fixed' or 'proportional'")
    if not gains or min(gains) <= 0:
        raise MemjaxError(f"gbw_sweep: gains {gains} must be a non-empty list of GBW > 0 (Hz)")
    amp = net.hardware.opamp
    rows = []
    for gain in gains:
        changes = {"gain_bandwidth": float(gain)}
        if slew == "proportional":
            changes["slew_rate"] = amp.slew_rate * gain / amp.gain_bandwidth
        swept = with_opamp_dynamics(net, **changes)
        records, logits = simulate(swept, images, options)
        summary = summarise(swept, records, logits, options, len(images))
        row = sweep_row(summary, gain, changes.get("slew_rate", amp.slew_rate))
        rows.append(row)
        if say is not None:
            say(
                f"  GBW {gain / 1e9:6.2f} GHz: latency {row['latency_ns']:7.1f} ns (slowest "
                f"layer {row['slowest_layer_ns']:7.1f} ns), "
                f"{row['energy_per_inference_J'] * 1e9:8.2f} nJ, mean "
                f"{row['mean_power_W'] * 1e3:8.2f} mW"
            )
    return rows


def sweep_row(summary: dict, gain: float, slew_rate: float) -> dict:
    """One sweep point from a transient's summary (:func:`~memjax.hardware.report.summarise`)."""
    window = summary["energy_window_ns"] * 1e-9
    energy = summary["energy_per_inference_J"]
    return {
        "gain_bandwidth_Hz": float(gain),
        "slew_rate_V_per_s": float(slew_rate),
        "latency_ns": summary["latency_ns"]["network"],
        "slowest_layer_ns": max(summary["latency_ns"]["per_layer"].values()),
        "argmax_settle_ns": summary["argmax_settle_ns"],
        "argmax_decided_ns": summary["argmax_decided_ns"],
        "energy_per_inference_J": energy,
        "mean_power_W": energy / window if window > 0 else 0.0,
        "max_power_W": summary["max_power_W"],
        "max_neuron_power_W": summary["max_neuron_power_W"],
    }

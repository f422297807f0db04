"""What a whole-network transient measures: settling per layer and of the network, argmax
settling and decision, energy per inference by kind and by unit kind, peak power, peak
memristor voltage, calculation periods and the latency of both mapping schedules."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from memjax.circuits.waveform import Waveform, integral, sample
from memjax.hardware.graph import DEPTH_OF_ROLE
from memjax.hardware.transient import KINDS, TransientOptions, settling_time


def _segment(wave: Waveform, start: float, stop: float) -> Waveform:
    """The waveform on [start, stop] (ns): its knots inside, plus both ends (exact, as the
    interpolant is one cubic between knots)."""
    ts = np.asarray(wave.ts)
    inner = ts[(ts > start) & (ts < stop)]
    knots = np.concatenate([[start], inner, [stop]])
    values, slopes = _at_knots(wave, jnp.asarray(knots))
    return Waveform(knots, values, slopes)


@eqx.filter_jit
def _at_knots(wave: Waveform, knots):
    """``wave.at`` at every one of ``knots``, in one program (knot by knot, eagerly, the
    main job's energies took ~40 s: 5 ms a knot, 2026-12-07)."""
    return jax.vmap(wave.at)(knots)


def _energy(power: Waveform, t: float, time_unit: float) -> np.ndarray:
    """Energy by kind (J) over [0, t] ns."""
    part = _segment(power, 0.0, t)
    return np.asarray(integral(part.ts, part.values, part.slopes)) * time_unit


def summarise(net, records, logits: Waveform, options: TransientOptions, images: int) -> dict:
    """The transient's measurements per inference (totals over the batch divided by
    ``images``); times in ns. The energy of an inference is integrated from the input step
    until the last stage has settled (``energy_window_ns``). Read in float64, as the
    transient integrated them (outside ``enable_x64`` JAX would truncate every operation on
    the waveforms to float32)."""
    with jax.enable_x64(True):
        return _summarise(net, records, logits, options, images)


def _summarise(net, records, logits: Waveform, options: TransientOptions, images: int) -> dict:
    unit = options.time_unit
    t_end = options.t_end / unit
    band = options.epsilon * net.hardware.v_p
    per_layer = []
    for name, kind, record in records:
        settle = settling_time(record.output, band, t_end)
        per_layer.append(
            {
                "name": name,
                "unit_kind": kind,
                "settling_ns": settle,
                "solver_steps": int(record.steps),
                "max_neuron_power_W": float(record.max_neuron_power),
                "max_neuron_power_by_kind_W": dict(
                    zip(KINDS, map(float, record.max_neuron_power_by_kind), strict=True)
                ),
                "max_memristor_voltage_V": float(record.max_memristor_voltage),
                "positions": _positions(record),
            }
        )
    logit_volts = Waveform(
        logits.ts, logits.values * net.volts_per_unit, logits.slopes * net.volts_per_unit
    )
    network_latency = settling_time(logit_volts, band, t_end)
    grid = np.linspace(0.0, t_end, 4001)
    values = np.asarray(sample(logits, grid))  # (T, N, classes)
    winners = values.argmax(-1)
    changed = winners != winners[-1]
    last = [
        grid[np.flatnonzero(changed[:, i])[-1] + 1] if changed[:, i].any() else 0.0
        for i in range(winners.shape[1])
    ]
    decided = argmax_decided(values * net.volts_per_unit, grid, band)
    # the inference lasts until the last stage has settled (the network output can settle
    # before a layer whose change does not reach it)
    settled = max([network_latency] + [layer["settling_ns"] for layer in per_layer])
    energy_by_kind = np.zeros(len(KINDS))
    energy_by_unit: dict[str, float] = {}
    for (_, kind, record), layer in zip(records, per_layer, strict=True):
        joules = _energy(record.power, settled, unit) / images
        layer["energy_J"] = float(joules.sum())
        energy_by_kind += joules
        energy_by_unit[kind] = energy_by_unit.get(kind, 0.0) + float(joules.sum())
    busiest = max(per_layer, key=lambda layer: layer["max_neuron_power_W"])
    total_power = sum(np.asarray(sample(r.power, grid)).sum(-1) for _, _, r in records) / images
    periods = calculation_periods(records, per_layer)
    return {
        "images": images,
        "t_end_ns": t_end,
        "settling_band_V": band,
        "latency_ns": {
            "network": network_latency,
            "per_layer": {layer["name"]: layer["settling_ns"] for layer in per_layer},
        },
        "argmax_settle_ns": float(max(last)),
        "argmax_settle_ns_per_image": [float(t) for t in last],
        "argmax_decided_ns": float(max(decided)),
        "argmax_decided_ns_per_image": [float(t) for t in decided],
        "energy_window_ns": settled,
        "energy_per_inference_J": float(energy_by_kind.sum()),
        "energy_by_kind_J": {k: float(e) for k, e in zip(KINDS, energy_by_kind, strict=True)},
        "energy_by_unit_kind_J": energy_by_unit,
        "max_power_W": float(total_power.max()),
        "max_neuron_power_W": busiest["max_neuron_power_W"],
        "max_neuron_power_by_kind_W": busiest["max_neuron_power_by_kind_W"],
        "max_neuron_power_layer": busiest["name"],
        "max_memristor_voltage_V": max(layer["max_memristor_voltage_V"] for layer in per_layer),
        "calculation_periods": periods,
        "schedules": {
            "parallel_latency_ns": periods[-1]["end_ns"] if periods else 0.0,
            "reuse_latency_ns": float(sum(p["latency_ns"] * p["positions"] for p in periods)),
        },
        "layers": per_layer,
        "power_trace": {"t_ns": grid[::20].tolist(), "W": total_power[::20].tolist()},
    }


def argmax_decided(volts: np.ndarray, grid: np.ndarray, band: float) -> np.ndarray:
    """Per image, the time (ns) from which the argmax always names a class whose final value is
    within ``band`` (V) of the final largest: what a read-out comparator with the settling
    band's resolution decides as the steady state does. The argmax's own settling (the last
    time the winner changes) never ends for a face whose two largest logits settle within the
    band of each other, as the winner then flips on drifts below the band: measured on a
    whole face of ``paper_calibrated_driven()`` with its rectifiers' U1 on -1 V (PrivateTest
    8, 10 GHz), logits settled at 104 ns, the argmax at 406 ns (2026-12-06).

    ``volts``: the logits in V, (times, images, classes), sampled at ``grid`` (ns), the last
    sample final."""
    final = volts[-1]
    acceptable = final >= final.max(-1, keepdims=True) - band  # (images, classes)
    winners = volts.argmax(-1)  # (times, images)
    wrong = ~acceptable[np.arange(winners.shape[1])[None, :], winners]
    return np.array(
        [grid[np.flatnonzero(w)[-1] + 1] if w.any() else 0.0 for w in wrong.T], dtype=float
    )


def calculation_periods(records, per_layer) -> list[dict]:
    """The sequential analog stages: stages that run concurrently share a period (the two
    branches of a down-sampling unit; the ReLU and MBN belong to their crossbar's stage).
    Each period ends when its last stage settles; its latency is the time since the previous
    period ended. ``positions``: the largest number of output positions among its stages,
    the repetitions a kernel-reuse schedule needs."""
    depth, base = {}, 0
    for name, _kind, _ in records:
        prefix, role = name.split(".", 1)
        if prefix == "input":
            depth[name] = 1 if role == "conv" else 2
            base = 2
        elif prefix == "output":
            depth[name] = base + {"conv": 1, "average_pool": 2, "fc": 3}[role]
        else:
            depth[name] = base + DEPTH_OF_ROLE[role]
            if role in ("project", "right_project"):
                base += 3
    periods: dict[int, dict] = {}
    for layer in per_layer:
        d = depth[layer["name"]]
        period = periods.setdefault(d, {"period": d, "stages": [], "end_ns": 0.0, "positions": 1})
        period["stages"].append(layer["name"])
        period["end_ns"] = max(period["end_ns"], layer["settling_ns"])
        period["positions"] = max(period["positions"], layer["positions"])
    ordered = [periods[d] for d in sorted(periods)]
    previous = 0.0
    for period in ordered:
        period["end_ns"] = max(period["end_ns"], previous)
        period["latency_ns"] = period["end_ns"] - previous
        previous = period["end_ns"]
    return ordered


def _positions(record) -> int:
    """Output positions per image of a stage (1 for the pool's and classifier's vectors)."""
    shape = record.output.values.shape  # (knots, images, [height, width,] channels)
    return int(np.prod(shape[2:-1])) if len(shape) > 3 else 1

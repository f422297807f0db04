"""Read disturb with and without the output limiter over many inferences.

    python experiments/read_disturb.py [--data PATH] [--inferences 400] [--kernels 8]
        [--out results/read_disturb]

The paper's claim (physics notes, section 3): the ReLU's limiter at the memristor threshold
V_p keeps every crossbar voltage below threshold, so reading never moves a weight. This script
tests it on the shipped model converted with the ``paper_plain_diode_relu`` preset (named
``paper`` until 2026-12-05: docs/results/read_disturb says "paper"). The crossbars under test are
``--kernels`` kernels of unit 0's right_expand layer (1x1, the input unit's 24 max-pooled ReLU
outputs as rows) at the centre output position of the fully parallel mapping; their memristors
follow a VTEAM threshold device (thresholds +-V_p, R_on/R_off the preset's conductance range,
``--rate`` its switching rate) inside :class:`memjax.circuits.disturb.DynamicCrossbar`, so
each cell integrates its state from the voltage the circuit puts across it.

Each inference holds one FER2013 PrivateTest image's row voltages for ``--period`` with
``--rise`` linear transitions between images (the previous layer's ReLU does not switch
instantly). Row voltages "with limiter" are the software model's clamped activations in volts
(V_p / activation_limit per unit); "without limiter" the same pre-activations through a ReLU
alone, capped at the op-amp rail that drives them. Inferences run in ``--segments`` equal
segments, each starting from rest with the drifted states (a pause between segments), so
drift is recorded against the inference count.

Writes results.json (the command and the commit, ``provenance``; per case: the largest |V|
any memristor saw, the fraction of rows above V_p, state drift and the kernels' steady-output
error after every segment) and read_disturb.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from memjax import convolution as conv  # noqa: E402
from memjax.circuits import transient  # noqa: E402
from memjax.circuits.crossbar import pair_kernel_dc  # noqa: E402
from memjax.circuits.disturb import DynamicCrossbar  # noqa: E402
from memjax.cli import DEFAULT_CHECKPOINT  # noqa: E402
from memjax.devices import VTEAM  # noqa: E402
from memjax.hardware.config import PRESETS  # noqa: E402
from memjax.hardware.memristive import convert  # noqa: E402
from memjax.provenance import provenance  # noqa: E402

PRESET = "paper_plain_diode_relu"
"""The conversion whose crossbars are tested (the row voltages are the software model's)."""
from memjax.reproduce import find_data  # noqa: E402
from memjax.training.checkpoint import load_model  # noqa: E402


def row_voltages(model, images, volts_per_unit, rail, position):
    """(with limiter, without limiter) row voltages of unit 0's first crossbars at
    ``position``: the input unit's max-pooled ReLU outputs, shape (N, channels)."""
    x = model.scale_input(images)
    layer = model.input_unit.conv
    pre = layer.bn(layer.linear(x))
    limit = model.config.activation_limit
    limited = conv.max_pool3x3(jnp.clip(pre, 0.0, limit), stride=2)
    unlimited = conv.max_pool3x3(jax.nn.relu(pre), stride=2)
    row, col = position
    return (
        np.asarray(limited[:, row, col]) * volts_per_unit,
        np.minimum(np.asarray(unlimited[:, row, col]) * volts_per_unit, rail),
    )


def kernel_of(stage, index):
    """Kernel ``index`` of a crossbar stage as its own PairKernel."""
    count = stage.kernel.conductances.positive.shape[0]

    def take(a):
        if isinstance(a, jax.Array) and a.ndim >= 1 and a.shape[0] == count:
            return a[index]
        return a

    return jax.tree.map(take, stage.kernel)


def drive_of(voltages, period, rise):
    """Row voltages as a function of t: image k held over [k T, (k+1) T), ramping from the
    previous image's over the first ``rise`` of each period."""
    voltages = jnp.asarray(voltages)

    def drive(t):
        k = jnp.clip(jnp.floor(t / period).astype(int), 0, len(voltages) - 1)
        ramp = jnp.clip((t - k * period) / rise, 0.0, 1.0)
        return voltages[jnp.maximum(k - 1, 0)] + ramp * (
            voltages[k] - voltages[jnp.maximum(k - 1, 0)]
        )

    return drive


def run_case(kernels, device, voltages, probe, args):
    """Drift of every kernel over the inferences, segment by segment."""
    segments = np.array_split(np.arange(len(voltages)), args.segments)
    states = [
        DynamicCrossbar(k, device).states(DynamicCrossbar(k, device).initial_state())
        for k in kernels
    ]
    programmed = [np.asarray(s) for s in states]
    reference = [np.asarray(pair_kernel_dc(k, *sums(k, probe))) for k in kernels]
    record = {
        "inferences": [0],
        "max_state_drift": [0.0],
        "mean_state_drift": [0.0],
        "max_output_error_V": [0.0],
        "max_memristor_voltage_V": 0.0,
    }
    simulate = eqx.filter_jit(
        lambda block, v: transient(
            block,
            drive_of(v, args.period, args.rise),
            args.period * len(v),
            samples=4 * len(v) + 1,
            max_steps=2_000_000,
            rtol=1e-6,
            atol=1e-9,
        )
    )
    done = 0
    for segment in segments:
        drifted_kernels, peak = [], 0.0
        for kernel, x in zip(kernels, states, strict=True):
            block = DynamicCrossbar(with_states(kernel, device, x), device)
            result = simulate(block, voltages[segment])
            peak = max(peak, float(result.max_memristor_voltage))
            drifted_kernels.append(block.states(result.final_state))
        states = drifted_kernels
        done += len(segment)
        drift = np.concatenate([np.abs(np.asarray(x) - p) for x, p in zip(states, programmed)])
        errors = [
            np.max(
                np.abs(
                    np.asarray(
                        pair_kernel_dc(
                            with_states(k, device, x), *sums(with_states(k, device, x), probe)
                        )
                    )
                    - r
                )
            )
            for k, x, r in zip(kernels, states, reference, strict=True)
        ]
        record["inferences"].append(done)
        record["max_state_drift"].append(float(drift.max()))
        record["mean_state_drift"].append(float(drift.mean()))
        record["max_output_error_V"].append(float(max(errors)))
        record["max_memristor_voltage_V"] = max(record["max_memristor_voltage_V"], peak)
        print(
            f"    {done:5d} inferences: max |dx| {drift.max():.3e}, "
            f"output error {max(errors):.3e} V, peak |V| {peak:.3f} V"
        )
    return record


def with_states(kernel, device, x):
    """``kernel`` with the conductances of memristor states ``x`` (G+ cells, then G-)."""
    cells = kernel.conductances.positive.shape[-1]
    g = device.conductance(x)
    return eqx.tree_at(
        lambda k: (k.conductances.positive, k.conductances.negative),
        kernel,
        (g[:cells], g[cells:]),
    )


def sums(kernel, v):
    """Bit-line sums of ``kernel`` for row voltages ``v`` (N, M), bias row included."""
    c = kernel.conductances
    rows = jnp.concatenate([v, jnp.full((v.shape[0], 1), c.bias_voltage)], -1)
    return rows @ c.positive, rows @ c.negative


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--data", default=None)
    parser.add_argument("--inferences", type=int, default=400)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--kernels", type=int, default=8)
    parser.add_argument("--period", type=float, default=20e-9, help="s per inference")
    parser.add_argument("--rise", type=float, default=2e-9, help="s, input transition")
    parser.add_argument(
        "--rate",
        type=float,
        default=1e8,
        help="VTEAM |k_on| = k_off, 1/s (alpha 3): ~10 ns to switch at 2 V_p",
    )
    parser.add_argument("--out", default="results/read_disturb")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_enable_x64", True)
    started = time.time()

    model, _ = load_model(Path(args.checkpoint))
    hardware = PRESETS[PRESET]()
    net = convert(model, hardware)
    data, used = find_data(args.data)
    if data is None:
        raise SystemExit(used)
    test = data.split("private_test")
    images = test.images[np.random.default_rng(0).choice(len(test), args.inferences, False)]
    limited, unlimited = row_voltages(
        model, images, net.volts_per_unit, hardware.opamp.rail_high, (12, 12)
    )
    device = VTEAM.with_thresholds(
        hardware.v_p,
        r_on=1 / hardware.g_max,
        r_off=1 / hardware.g_min,
        k_off=args.rate,
        k_on=-args.rate,
        alpha_off=3.0,
        alpha_on=3.0,
    )
    stage = net.units[0][2]  # downsampling unit: left_depthwise, left_project, right_expand
    kernels = [kernel_of(stage, k) for k in range(args.kernels)]
    probe = jnp.asarray(limited[: min(64, len(limited))])
    results = {
        "data": used,
        "preset": PRESET,
        "layer": "unit0.right_expand",
        "position": [12, 12],
        "v_p": hardware.v_p,
        "device": repr(device),
        "period_s": args.period,
        "rise_s": args.rise,
        "cases": {},
        "provenance": provenance(),  # the command line and the commit it ran
    }
    for name, voltages in (("with_limiter", limited), ("without_limiter", unlimited)):
        above = float(np.mean(voltages > hardware.v_p))
        print(f"{name}: {above:.1%} of row voltages above V_p, max {voltages.max():.2f} V")
        record = run_case(kernels, device, jnp.asarray(voltages), probe, args)
        record["rows_above_v_p"] = above
        results["cases"][name] = record
    results["seconds"] = time.time() - started
    (out / "results.json").write_text(json.dumps(results, indent=2))

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, record in results["cases"].items():
        axes[0].plot(record["inferences"], record["max_state_drift"], "o-", label=name)
        axes[1].plot(record["inferences"], record["max_output_error_V"], "o-", label=name)
    axes[0].set(
        xlabel="inferences",
        ylabel="max |x - x0| of any memristor",
        title="weight drift (VTEAM, thresholds at V_p)",
    )
    axes[1].set(
        xlabel="inferences",
        ylabel="max steady-output error, V",
        title="kernel output error on 64 probe inputs",
    )
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "read_disturb.png", dpi=120)
    print(f"wrote {out}/results.json and read_disturb.png ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()

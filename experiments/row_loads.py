"""What each ReLU (or pool, or MBN) output really drives: the rows of the next crossbar.

    python experiments/row_loads.py [--checkpoint DIR] [--preset paper] [--out results/row_loads]

A stage's input node drives one row of every kernel that reads it: in the proposed (M+1)x2
topology each row holds a G+ and a G- cell per kernel, each from the row to a bit line held at
virtual ground. Per input node of each crossbar stage the load is therefore the sum of those
cells' conductances: over the kernels of a 1x1 (or fully connected) stage, over the nine taps of
a depthwise kernel (one row per output position it feeds), over the taps and kernels of the
stem. The blocks model a ReLU's load as ``HardwareConfig.relu_load_resistance`` instead (10 kohm,
0.1 mS); this script measures how far that is from the rows, and whether the preset's ReLU
(its rectifier, series resistor, limiter and op-amp supply as converted) can drive them: per
stage, the ReLU's steady output for an input at V_p with the rows' mean and largest load in
place of R_L, and the current and output-stage power that takes. Writes results.json (per
stage the mean and largest load, S, and the drive; their spread over the stages; the command
and the commit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from memjax.hardware.config import PRESETS
from memjax.hardware.memristive import convert, nonlinear_blocks
from memjax.provenance import provenance
from memjax.training.checkpoint import load_model, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]


def row_loads(stage) -> np.ndarray:
    """Conductance (S) that each input node of a crossbar stage sees into its rows."""
    c = stage.kernel.conductances
    cells = np.asarray(c.positive[:, :-1]) + np.asarray(c.negative[:, :-1])  # (K, M), no bias
    if stage.kind == "depthwise":
        return cells.sum(1)  # a channel's nine taps: nine rows, one per output position
    if stage.kind == "stem":
        return cells.sum(0).reshape(9, -1).sum(0)  # (3, 3, C_in) taps of every kernel
    return cells.sum(0)  # input channel c is row c of every kernel


def drive(relu, hardware, load: float) -> dict:
    """The ReLU's steady output (in V_p) for an input at V_p with ``load`` (S) as its load, its
    load current (A) and its op-amp's output-stage dissipation at that current (W: the
    current from its positive rail to the node, through D1 and the series resistor)."""
    loaded = eqx.tree_at(lambda r: r.load_resistance, relu, 1.0 / load)
    with jax.enable_x64(True):
        out = float(loaded.steady_output(jnp.asarray([hardware.v_p], jnp.float64))[0])
    current = out * load
    rail = (relu.opamp or hardware.opamp).rail_high  # a plain diode: the MBN op-amp drives it
    return {
        "output_v_p": out / hardware.v_p,
        "current_A": current,
        "output_stage_W": (rail - out) * current,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints/shufflenetv2-1.0x"))
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--out", default="results/row_loads")
    args = parser.parse_args(argv)
    model, _ = load_model(Path(args.checkpoint))
    hardware = PRESETS[args.preset]()
    net = convert(model, hardware)
    stages = [("input.conv", net.input_stage)]
    for index, unit in enumerate(net.units):
        stages += [(f"unit{index}.{i}.{s.kind}", s) for i, s in enumerate(unit)]
    stages += [("output.conv", net.output_stage), ("output.fc", net.fully_connected)]
    relu = nonlinear_blocks(hardware)[0]
    rows = []
    for name, stage in stages:
        load = row_loads(stage)
        row = {"stage": name, "mean_S": float(load.mean()), "max_S": float(load.max())}
        if name != "input.conv":  # the others' rows are activations
            row["drive_mean_load"] = drive(relu, hardware, row["mean_S"])
            row["drive_max_load"] = drive(relu, hardware, row["max_S"])
        rows.append(row)
    driven = [row for row in rows if row["stage"] != "input.conv"]  # fed by ReLUs and pools
    means = np.array([row["mean_S"] for row in driven])
    results = {
        "command": " ".join(["python", "experiments/row_loads.py", *sys.argv[1:]]),
        "checkpoint": args.checkpoint,
        "preset": args.preset,
        "relu_load_resistance_ohm": hardware.relu_load_resistance,
        "stages_fed_by_activations": len(driven),
        "median_of_stage_means_S": float(np.median(means)),
        "largest_stage_mean_S": float(means.max()),
        "largest_S": float(max(row["max_S"] for row in driven)),
        "smallest_stage_mean_S": float(means.min()),
        "relu_series_resistance_ohm": hardware.relu_series_resistance,
        "relu_rail_high_V": (relu.opamp or hardware.opamp).rail_high,
        "stages_whose_relu_reaches_99pct_v_p_at_mean_load": sum(
            row["drive_mean_load"]["output_v_p"] >= 0.99 for row in driven
        ),
        "smallest_output_at_mean_load_v_p": min(
            row["drive_mean_load"]["output_v_p"] for row in driven
        ),
        "largest_output_stage_power_at_max_load_W": max(
            row["drive_max_load"]["output_stage_W"] for row in driven
        ),
        "stages": rows,
        "provenance": provenance(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", results)
    ratio = results["median_of_stage_means_S"] * hardware.relu_load_resistance
    print(
        f"row load per input node: median of the stages' means "
        f"{results['median_of_stage_means_S'] * 1e3:.2f} mS ({ratio:.0f}x the "
        f"{hardware.relu_load_resistance:.0f} ohm load the blocks model), largest "
        f"{results['largest_S'] * 1e3:.1f} mS; the ReLU reaches 99 % of V_p at its mean load in "
        f"{results['stages_whose_relu_reaches_99pct_v_p_at_mean_load']} of {len(driven)} stages "
        f"(lowest {results['smallest_output_at_mean_load_v_p']:.3f} V_p)"
    )


if __name__ == "__main__":
    main()

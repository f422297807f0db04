"""What each ReLU (or pool, or MBN) output really drives: the rows of the next crossbar.

    python experiments/row_loads.py [--checkpoint DIR] [--preset paper] [--out results/row_loads]

A stage's input node drives one row of every kernel that reads it: in the proposed (M+1)x2
topology each row holds a G+ and a G- cell per kernel, each from the row to a bit line held at
virtual ground. Per input node of each crossbar stage the load is therefore the sum of those
cells' conductances: over the kernels of a 1x1 (or fully connected) stage, over the nine taps of
a depthwise kernel (one row per output position it feeds), over the taps and kernels of the
stem. The blocks model a ReLU's load as ``HardwareConfig.relu_load_resistance`` instead (10 kohm,
0.1 mS); this script measures how far that is from the rows. Writes results.json (per stage the
mean and largest load, S; their spread over the stages; the command and the commit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from memjax.hardware.config import PRESETS
from memjax.hardware.memristive import convert
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
    rows = []
    for name, stage in stages:
        load = row_loads(stage)
        rows.append({"stage": name, "mean_S": float(load.mean()), "max_S": float(load.max())})
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
        f"{results['largest_S'] * 1e3:.1f} mS"
    )


if __name__ == "__main__":
    main()

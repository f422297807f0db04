"""Resources of the memristive ShuffleNetV2 in the paper's (M+1)x2 topology against the
original (2M+1)x1, per unit kind, for both mapping schedules.

    python experiments/resources_topologies.py [--width 1.0] [--out results/resources]

Writes resources.json (per layer, per unit kind, totals for every combination) and
resources.png (word lines, inverters, op-amps and memristors per unit kind, both topologies),
and prints the reductions the paper claims: word lines 2M+1 -> M+1 and one inverter per kernel
instead of one per input. The counting rules are in memjax/hardware/resources.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from memjax.hardware import CountingOptions, network_layers, network_resources  # noqa: E402
from memjax.network import ShuffleNetConfig  # noqa: E402

SHOWN = ("word_lines", "inverters", "op_amps", "memristors")
UNITS = ("input", "downsampling", "basic", "output")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path("results/resources"))
    args = parser.parse_args()
    layers = network_layers(ShuffleNetConfig(width=args.width))
    results = {}
    for schedule in ("parallel", "reuse"):
        for topology in ("proposed", "original"):
            options = CountingOptions(topology=topology, schedule=schedule)
            results[f"{topology}/{schedule}"] = network_resources(layers, options)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "resources.json").write_text(json.dumps(results, indent=1))

    print(f"ShuffleNetV2 {args.width}x, totals (MBN separate, plain diodes, +-V_p clamps)")
    print(f"{'schedule':<10}{'count':<12}{'(M+1)x2':>14}{'(2M+1)x1':>14}{'ratio':>8}")
    for schedule in ("parallel", "reuse"):
        proposed = results[f"proposed/{schedule}"]["total"]
        original = results[f"original/{schedule}"]["total"]
        for key in SHOWN:
            ratio = original[key] / max(proposed[key], 1)
            print(f"{schedule:<10}{key:<12}{proposed[key]:>14,}{original[key]:>14,}{ratio:>8.2f}")

    figure, axes = plt.subplots(1, len(SHOWN), figsize=(4 * len(SHOWN), 3.6))
    for ax, key in zip(axes, SHOWN):
        for offset, topology in ((-0.2, "proposed"), (0.2, "original")):
            per_unit = results[f"{topology}/reuse"]["per_unit"]
            values = [per_unit[u][key] for u in UNITS]
            label = "(M+1)x2" if topology == "proposed" else "(2M+1)x1"
            ax.bar([i + offset for i in range(len(UNITS))], values, 0.4, label=label)
        ax.set_xticks(range(len(UNITS)), UNITS, rotation=20)
        ax.set_yscale("log")
        ax.set_title(f"{key.replace('_', ' ')} (kernel reuse)")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(args.out / "resources.png", dpi=120)
    print(f"wrote {args.out / 'resources.json'} and {args.out / 'resources.png'}")


if __name__ == "__main__":
    main()

"""Latency and power of the whole memristive network against op-amp GBW and device range.

    python experiments/opamp_device_sweep.py [--preset paper_plain_diode_relu] [--gains 0.5 1 2]
        [--ranges 1e-7:1e-5 1e-6:1e-4 1e-5:1e-3] [--images 1] [--data PATH]
        [--out results/opamp_device_sweep]

Every point is a whole-network transient of the shipped model on the same FER2013
PrivateTest image(s) (random images without FER2013, stated in the JSON):

- GBW sweep (GHz), slew rate held at the preset's and, second series, scaled with the GBW (an
  op-amp family scaled in bias current: latency should then fall as 1 / GBW exactly, which
  the script checks and reports as ``proportional_scaling_error``);
- device range sweep: (g_min, g_max) in S, the model converted again for each (the mapping's
  transimpedance follows, so the weights stay the same), GBW at the preset's.

Writes results.json (with the command and the commit, ``provenance``) and
opamp_device_sweep.png (latency against mean power, one point per GBW; latency and energy
against device range). "Power" here is the dissipation of the
signal path (memristors, resistors, diodes, op-amp output stages); the op-amps' static bias
power (``OpAmp.bias_power``, which grows with the GBW) is apart, as in ``memjax reproduce``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from memjax.cli import DEFAULT_CHECKPOINT  # noqa: E402
from memjax.hardware.config import PRESETS  # noqa: E402
from memjax.hardware.memristive import convert  # noqa: E402
from memjax.hardware.sweep import gbw_sweep  # noqa: E402
from memjax.hardware.transient import TransientOptions  # noqa: E402
from memjax.provenance import provenance  # noqa: E402
from memjax.reproduce import find_data  # noqa: E402
from memjax.training.checkpoint import load_model  # noqa: E402


def device_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected g_min:g_max in S") from None
    return low, high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper_plain_diode_relu")
    parser.add_argument("--gains", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0, 4.0])
    parser.add_argument(
        "--ranges", type=device_range, nargs="+", default=[(1e-7, 1e-5), (1e-6, 1e-4), (1e-5, 1e-3)]
    )
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default="results/opamp_device_sweep")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    model, _ = load_model(Path(args.checkpoint))
    data, used = find_data(args.data)
    rng = np.random.default_rng(0)
    if data is not None:
        test = data.split("private_test")
        images = test.images[rng.choice(len(test), args.images, replace=False)]
    else:
        images = rng.integers(0, 256, (args.images, 48, 48)).astype(np.uint8)
        used += "; random images instead"
    print(used)
    hardware = PRESETS[args.preset]()
    options = TransientOptions.for_hardware(hardware)  # tighter steps with super diodes
    net = convert(model, hardware)
    gains = [g * 1e9 for g in args.gains]
    results: dict = {"preset": args.preset, "data": used, "images": args.images, "gbw": {}}
    results["provenance"] = provenance()  # the command line and the commit it ran
    base = hardware.opamp.gain_bandwidth
    print("GBW sweep, slew rate fixed")
    results["gbw"]["fixed"] = gbw_sweep(net, images, gains, options, "fixed", say=print)
    print("GBW sweep, slew rate proportional (the preset's GBW point is the fixed series')")
    same = [r for r in results["gbw"]["fixed"] if r["gain_bandwidth_Hz"] == base]
    others = [g for g in gains if g != base]
    rows = gbw_sweep(net, images, others, options, "proportional", say=print) if others else []
    results["gbw"]["proportional"] = sorted(same + rows, key=lambda r: r["gain_bandwidth_Hz"])
    reference = next(r for r in results["gbw"]["proportional"] if r["gain_bandwidth_Hz"] == base)
    results["proportional_scaling_error"] = (
        max(
            abs(
                r["slowest_layer_ns"] * r["gain_bandwidth_Hz"] / base
                - reference["slowest_layer_ns"]
            )
            / reference["slowest_layer_ns"]
            for r in results["gbw"]["proportional"]
        )
        if base in gains
        else None
    )

    print("device range sweep")
    results["device_range"] = []
    for g_min, g_max in args.ranges:
        ranged = convert(model, hardware.replace(g_min=g_min, g_max=g_max))
        row = gbw_sweep(ranged, images, [base], options)[0]
        row.update({"g_min_S": g_min, "g_max_S": g_max})
        results["device_range"].append(row)
        print(
            f"  {g_min:.0e}..{g_max:.0e} S: latency {row['latency_ns']:.1f} ns, slowest layer "
            f"{row['slowest_layer_ns']:.1f} ns, {row['energy_per_inference_J'] * 1e9:.2f} nJ"
        )
    results["seconds"] = time.time() - started
    (out / "results.json").write_text(json.dumps(results, indent=2))

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for slew, rows in results["gbw"].items():
        power = [r["mean_power_W"] * 1e3 for r in rows]
        latency = [r["slowest_layer_ns"] for r in rows]
        left.plot(power, latency, "o-", label=f"slew {slew}")
        for r, p, t in zip(rows, power, latency, strict=True):
            left.annotate(f"{r['gain_bandwidth_Hz'] / 1e9:g} GHz", (p, t), fontsize=7)
    left.set(
        xlabel="mean power over the inference (mW)",
        ylabel="latency: last layer settled (ns)",
        title=f"GBW sweep ({args.preset})",
        yscale="log",
    )
    left.legend()
    ranges = results["device_range"]
    labels = [f"{r['g_min_S']:.0e}-{r['g_max_S']:.0e}" for r in ranges]
    right.bar(labels, [r["energy_per_inference_J"] * 1e9 for r in ranges], color="tab:orange")
    right.set(
        ylabel="energy per inference (nJ)",
        xlabel="device range g_min-g_max (S)",
        title="device range (GBW at the preset's)",
    )
    twin = right.twinx()
    twin.plot(labels, [r["slowest_layer_ns"] for r in ranges], "ko-")
    twin.set_ylim(0, 1.2 * max(r["slowest_layer_ns"] for r in ranges))  # no offset axis
    twin.set_ylabel("latency: last layer settled (ns)")
    figure.tight_layout()
    figure.savefig(out / "opamp_device_sweep.png", dpi=120)
    print(f"wrote {out}/results.json and opamp_device_sweep.png ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()

"""The calibrated preset against the paper's two headline numbers: steady-state accuracy on
all of PrivateTest, the DC power of every neuron, the memristors' largest voltage, and the
transient's settling as node capacitance grows.

    python experiments/calibrated.py [--data PATH] [--dc-power-images 8]
        [--capacitances 0 2e-15 10e-15] [--crop 8] [--t-end 1e-6] [--out PATH]

- accuracy: ``paper_calibrated()`` at steady state (8-bit levels, finite-gain op-amps) on all
  3,589 PrivateTest images, one inference each, against the software model;
- DC power: every neuron of the network at its operating point
  (:func:`memjax.hardware.operating_point.operating_point`) on ``--dc-power-images``
  PrivateTest images: the largest neuron's power by kind (everything but the op-amps'
  bias), beside the paper preset's on the same images;
- memristor voltages: the largest |V| across any memristor at steady state, on every
  PrivateTest image (the steady state's peaks);
- transient: the whole network on the central ``--crop`` pixels of one PrivateTest image for
  each bit-line / summing-node capacitance: per-layer and logit settling (1 % of V_p), the
  largest neuron power and memristor |V| during it. A crop keeps every stage of the network
  (59) with few neurons each: a full 48x48 super-diode transient takes longer than this
  machine's session (benchmarks/README.md).

Writes results.json (with the command and the commit) and figure settling.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

from memjax.hardware import network_layers
from memjax.hardware.config import PRESETS
from memjax.hardware.memristive import convert, steady_state_in_batches, with_pool_inputs
from memjax.hardware.operating_point import operating_point, summarise_power
from memjax.hardware.report import summarise
from memjax.hardware.transient import TransientOptions, simulate
from memjax.provenance import provenance
from memjax.reproduce import find_data
from memjax.training import steps
from memjax.training.checkpoint import load_model, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
PRESET = "paper_calibrated"
PAPER = {"latency_ns": 137.0, "max_neuron_power_W": 2.8e-6}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints/shufflenetv2-1.0x"))
    parser.add_argument("--data", help="FER2013 (as memjax reproduce finds it when not given)")
    parser.add_argument("--dc-power-images", type=int, default=8)
    parser.add_argument("--capacitances", type=float, nargs="*", default=[0.0, 2e-15, 10e-15])
    parser.add_argument("--crop", type=int, default=8)
    parser.add_argument("--t-end", type=float, default=1e-6)
    parser.add_argument("--out", default="results/calibrated")
    args = parser.parse_args(argv)
    data, used = find_data(args.data)
    if data is None:
        print(used, file=sys.stderr)
        raise SystemExit(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, _ = load_model(Path(args.checkpoint))
    hardware = PRESETS[PRESET]()
    test = data.split("private_test")
    results = {
        "command": " ".join(["python", "experiments/calibrated.py", *sys.argv[1:]]),
        "checkpoint": args.checkpoint,
        "preset": PRESET,
        "data": used,
        "paper": PAPER,
        "provenance": provenance(),
    }

    started = time.time()
    _, graph, params, stats = steps.split_model(model)
    software = steps.predict_logits(steps.make_predict(graph), params, stats, test.images)
    net = convert(model, hardware)
    logits, peaks = steady_state_in_batches(net, test.images)
    chip, soft = np.asarray(logits).argmax(-1), np.asarray(software).argmax(-1)
    results["steady_state"] = {
        "images": int(len(test)),
        "software_accuracy": float(np.mean(soft == test.labels)),
        "accuracy": float(np.mean(chip == test.labels)),
        "agreement_with_software": float(np.mean(chip == soft)),
        "max_memristor_voltage_V": max(peaks.values()),
        "max_memristor_voltage_by_unit_kind_V": peaks,
        "v_p_V": hardware.v_p,
        "seconds": time.time() - started,
    }
    print(results["steady_state"], flush=True)

    chosen = np.random.default_rng(0).choice(len(test), args.dc_power_images, replace=False)
    images = test.images[np.sort(chosen)]
    results["dc_power"] = {}
    for name in (PRESET, "paper"):
        started = time.time()
        points, _ = operating_point(convert(model, PRESETS[name]()), images)
        summary = summarise_power(points)
        summary["images"] = int(len(images))
        summary["seconds"] = time.time() - started
        results["dc_power"][name] = summary
        print(name, {k: v for k, v in summary.items() if k != "stages"}, flush=True)

    low = (48 - args.crop) // 2
    crop = test.images[:1, low : low + args.crop, low : low + args.crop]
    pooled = network_layers(model.config, args.crop)[-2].inputs_per_kernel
    results["transient"] = []
    curves = {}
    for capacitance in args.capacitances:
        started = time.time()
        config = hardware.replace(bitline_capacitance=capacitance)
        crop_net = with_pool_inputs(convert(model, config), pooled)
        options = TransientOptions.for_hardware(config, t_end=args.t_end)
        records, logit_wave = simulate(crop_net, crop, options)
        summary = summarise(crop_net, records, logit_wave, options, 1)
        row = {
            "bitline_capacitance_F": capacitance,
            "crop": args.crop,
            "t_end_s": args.t_end,
            "logits_settling_ns": summary["latency_ns"]["network"],
            "argmax_settling_ns": summary["argmax_settle_ns"],
            "last_layer_settled_ns": summary["energy_window_ns"],
            "per_layer_settling_ns": summary["latency_ns"]["per_layer"],
            "max_neuron_power_W": summary["max_neuron_power_W"],
            "max_memristor_voltage_V": summary["max_memristor_voltage_V"],
            "energy_per_inference_J": summary["energy_per_inference_J"],
            "seconds": time.time() - started,
        }
        curves[capacitance] = row["per_layer_settling_ns"]
        results["transient"].append(row)
        print({k: v for k, v in row.items() if k != "per_layer_settling_ns"}, flush=True)
        write_json_atomic(out / "results.json", results)
    write_json_atomic(out / "results.json", results)
    _figure(out / "settling.png", curves)
    print(f"wrote {out / 'results.json'} and settling.png")


def _figure(path: Path, curves: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 4))
    for capacitance, per_layer in curves.items():
        names = list(per_layer)
        axes.plot(
            range(len(names)),
            list(per_layer.values()),
            marker=".",
            label=f"{capacitance * 1e15:g} fF",
        )
    axes.axhline(PAPER["latency_ns"], color="k", linestyle="--", label="paper: 137 ns")
    axes.set_xlabel("stage, in signal order")
    axes.set_ylabel("settled (1 % of V_p) after the input step, ns")
    axes.set_title("paper_calibrated: per-layer settling against node capacitance (crop)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    with jax.default_device(jax.devices("cpu")[0]):
        main()

"""The latency-power front of the calibrated design with its activations driving their rows:
where 137 ns and 2.8 uW per neuron can hold together, and which assumption they need.

    python experiments/latency_power_front.py [--checkpoint DIR] [--data FER2013]
        [--images 128] [--power-images 2] [--crop 8] [--t-end 1e-6] [--points NAME ...]
        [--out results/latency_power_front]

Every point is ``paper_calibrated()`` with some fields changed, along one axis at a time
around a centre: the conductance range (g_min, g_max scaled together), V_p (the bias rows
with it), the op-amps' GBW (slew rate held) and the bit-line / summing-node capacitance.
The points named ``direct`` have every ReLU, clamp and max-pool node drive the rows it
feeds (``row_drive="direct"``) through a 1 kohm series resistor, the ReLUs' op-amps and the
clamps' drivers on bounded supplies sized for the network's heaviest row load
(``relu_supply``, ``clamp_supply``, ``supply_load_conductance``,
:func:`memjax.hardware.loads.heaviest_row_load`; on the shared +-1 V a clamp's driver
pushes 0.9 mA through 1 kohm into its limiter: 1.8 mW in one neuron, measured 2026-12-06
on 16 images); the point named ``ideal`` is the preset as
shipped, whose rows are held by ideal drivers (a stated assumption,
``PAPER_ASSUMPTIONS["row_drive"]``). Per point:

- accuracy and agreement with the software model at steady state (exact node solves) on the
  first ``--images`` of the PrivateTest images ``memjax reproduce`` draws;
- the DC operating point's busiest neuron (everything but the op-amps' bias, split by kind)
  on ``--power-images`` of them, and the largest memristor |V|;
- the transient on the central ``--crop`` pixels of the main job's transient image: logits
  settled (1 % of V_p), the last layer settled, energy. A crop keeps every stage of the
  network (59) with few neurons each; a whole-image super-diode transient takes tens of
  minutes on this machine (benchmarks/README.md), so the latency here is a crop's. With
  ``direct`` rows the crop's bounded supplies are sized for the crop's own heaviest node
  (a crop's border nodes drive fewer rows), the DC measurements' for the whole image's.

A point that the configuration refuses (a bounded supply above the op-amps' rail) is kept
with the reason. Writes results.json after every point (the command and commit with it) and
front.png: latency against the busiest neuron's power, the paper's point on it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from memjax.errors import MemjaxError
from memjax.hardware import network_layers
from memjax.hardware.config import PRESETS
from memjax.hardware.loads import heaviest_row_load
from memjax.hardware.memristive import convert, steady_state_in_batches, with_pool_inputs
from memjax.hardware.operating_point import operating_point, summarise_power
from memjax.hardware.report import summarise
from memjax.hardware.transient import TransientOptions, simulate
from memjax.provenance import provenance
from memjax.reproduce import find_data, main_job_images
from memjax.training import steps
from memjax.training.checkpoint import load_model, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"latency_ns": 137.0, "max_neuron_power_W": 2.8e-6}
CENTRE = {"g_scale": 0.03, "v_p": 0.1, "gbw": 1e9, "capacitance": 0.0}
"""The centre of the one-axis-at-a-time sweep: 1/30 of the preset's conductances, where the
busiest node's rows (0.44 mS at the preset's) draw ~1.5 uA at V_p = 0.1 V."""


def _direct(**axes) -> dict:
    return {"row_drive": "direct", **CENTRE, **axes}


POINTS = {
    "ideal": {"row_drive": "ideal", "g_scale": 1.0, "v_p": 0.1, "gbw": 1e9, "capacitance": 0.0},
    "direct g x1": _direct(g_scale=1.0),
    "direct g x0.1": _direct(g_scale=0.1),
    "direct (centre)": _direct(),
    "direct g x0.01": _direct(g_scale=0.01),
    "direct V_p 0.05": _direct(v_p=0.05),
    "direct V_p 0.2": _direct(v_p=0.2),
    "direct GBW 0.5 GHz": _direct(gbw=0.5e9),
    "direct GBW 2 GHz": _direct(gbw=2e9),
    "direct GBW 4 GHz": _direct(gbw=4e9),
    "direct GBW 10 GHz": _direct(gbw=10e9),
    "direct C 1 fF": _direct(capacitance=1e-15),
    "direct C 10 fF": _direct(capacitance=10e-15),
}


def hardware_at(model, point: dict, input_shape=(48, 48)):
    """The calibrated preset moved to ``point`` (see :data:`POINTS`)."""
    base = PRESETS["paper_calibrated"]()
    scale = point["g_scale"]
    hardware = base.replace(
        g_min=base.g_min * scale,
        g_max=base.g_max * scale,
        v_p=point["v_p"],
        bias_voltage=point["v_p"],
        opamp=dataclasses.replace(base.opamp, gain_bandwidth=point["gbw"]),
        bitline_capacitance=point["capacitance"],
    )
    if point["row_drive"] == "ideal":
        return hardware
    direct = hardware.replace(
        row_drive="direct",
        dc_transfer="exact",
        relu_series_resistance=1e3,
        clamp_supply="bounded",
    )
    heaviest = heaviest_row_load(convert(model, direct), input_shape)
    return direct.replace(supply_load_conductance=heaviest)


def measure(model, point: dict, images, labels, software, transient_image, args) -> dict:
    row = {"point": point}
    try:
        hardware = hardware_at(model, point)
    except MemjaxError as error:
        return {**row, "refused": str(error)}
    row["supply_load_conductance_S"] = hardware.supply_load_conductance
    row["relu_rail_high_V"] = hardware.relu_rail_high
    row["clamp_driver_swing_V"] = hardware.clamp_driver_swing
    net = convert(model, hardware)
    started = time.time()
    logits, peaks = steady_state_in_batches(net, images, batch_size=64)
    predicted = np.asarray(logits).argmax(-1)
    row["accuracy"] = float(np.mean(predicted == labels))
    row["software_accuracy"] = float(np.mean(software == labels))
    row["agreement_with_software"] = float(np.mean(predicted == software))
    row["max_memristor_voltage_dc_V"] = max(peaks.values())
    row["steady_state_seconds"] = time.time() - started
    started = time.time()
    points, _ = operating_point(net, images[: args.power_images])
    power = summarise_power(points)
    for key in ("max_neuron_power_W", "max_neuron_stage", "max_neuron_power_by_kind_W"):
        row[key] = power[key]
    row["operating_point_seconds"] = time.time() - started

    started = time.time()
    pooled = network_layers(model.config, args.crop)[-2].inputs_per_kernel
    if point["row_drive"] == "direct":  # the crop's own rows size its supply
        crop_net = with_pool_inputs(convert(model, hardware), pooled)
        try:
            crop_hardware = hardware.replace(
                supply_load_conductance=heaviest_row_load(crop_net, (args.crop, args.crop))
            )
        except MemjaxError as error:
            return {**row, "transient_refused": str(error)}
    else:
        crop_hardware = hardware
    crop_net = with_pool_inputs(convert(model, crop_hardware), pooled)
    options = TransientOptions.for_hardware(crop_hardware, t_end=args.t_end)
    records, logit_wave = simulate(crop_net, transient_image, options)
    summary = summarise(crop_net, records, logit_wave, options, 1)
    row["transient"] = {
        "crop": args.crop,
        "t_end_s": args.t_end,
        "logits_settling_ns": summary["latency_ns"]["network"],
        "last_layer_settled_ns": summary["energy_window_ns"],
        "per_layer_settling_ns": summary["latency_ns"]["per_layer"],
        "max_neuron_power_W": summary["max_neuron_power_W"],
        "max_memristor_voltage_V": summary["max_memristor_voltage_V"],
        "energy_per_inference_J": summary["energy_per_inference_J"],
        "seconds": time.time() - started,
    }
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints/shufflenetv2-1.0x"))
    parser.add_argument("--data", help="FER2013 (as memjax reproduce finds it when not given)")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--power-images", type=int, default=2)
    parser.add_argument("--crop", type=int, default=8)
    parser.add_argument("--t-end", type=float, default=1e-6)
    parser.add_argument("--points", nargs="*", default=list(POINTS), choices=list(POINTS))
    parser.add_argument("--out", default="results/latency_power_front")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the points already in OUT/results.json (each with its own provenance) "
        "and measure only the others",
    )
    given = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(given)
    data, used = find_data(args.data)
    if data is None:
        print(used, file=sys.stderr)
        raise SystemExit(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, _ = load_model(Path(args.checkpoint))
    test = data.split("private_test")
    chosen, transient = main_job_images(len(test))
    chosen = chosen[: args.images]
    images, labels = test.images[chosen], test.labels[chosen]
    _, graph, params, stats = steps.split_model(model)
    software = np.asarray(
        steps.predict_logits(steps.make_predict(graph), params, stats, images)
    ).argmax(-1)
    low = (48 - args.crop) // 2
    transient_image = test.images[transient][:, low : low + args.crop, low : low + args.crop]
    results = {
        "command": " ".join(["python", "experiments/latency_power_front.py", *given]),
        "checkpoint": args.checkpoint,
        "data": used,
        "images": int(len(images)),
        "crop": args.crop,
        "paper": PAPER,
        "centre": CENTRE,
        "provenance": provenance(),
        "points": {},
    }
    if args.resume and (out / "results.json").exists():
        kept = json.loads((out / "results.json").read_text())
        for key in ("checkpoint", "data", "images", "crop"):
            if kept.get(key) != results[key]:
                print(f"{out / 'results.json'}: {key} differs; not resumed", file=sys.stderr)
                raise SystemExit(2)
        results["points"] = kept["points"]
        results["resumed"] = [kept["command"], *kept.get("resumed", [])]
    for name in args.points:
        if name in results["points"]:
            continue
        started = time.time()
        row = measure(model, POINTS[name], images, labels, software, transient_image, args)
        row["seconds"] = time.time() - started
        row["provenance"] = results["provenance"]
        results["points"][name] = row
        write_json_atomic(out / "results.json", results)
        print(name, _line(row), flush=True)
    _figure(out / "front.png", results)
    print(f"wrote {out / 'results.json'} and front.png")


def _line(row: dict) -> str:
    if "refused" in row or "transient_refused" in row:
        return f"refused: {row.get('refused') or row['transient_refused']}"
    return (
        f"accuracy {row['accuracy']:.4f} (software {row['software_accuracy']:.4f}), busiest "
        f"neuron {row['max_neuron_power_W'] * 1e6:.3f} uW ({row['max_neuron_stage']}), "
        f"logits settled {row['transient']['logits_settling_ns']:.1f} ns, last layer "
        f"{row['transient']['last_layer_settled_ns']:.1f} ns, {row['seconds']:.0f} s"
    )


def _figure(path: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5.5))
    for name, row in results["points"].items():
        if "refused" in row or "transient_refused" in row:
            continue
        power = row["max_neuron_power_W"] * 1e6
        latency = row["transient"]["logits_settling_ns"]
        classifies = row["accuracy"] >= row["software_accuracy"] - 0.02
        colour = "tab:blue" if row["point"]["row_drive"] == "direct" else "tab:orange"
        axes.scatter(
            power,
            latency,
            s=50,
            edgecolors=colour,
            facecolors=colour if classifies else "none",
        )
        axes.annotate(name, (power, latency), fontsize=7, xytext=(4, 3), textcoords="offset points")
    paper = results["paper"]
    axes.scatter(
        paper["max_neuron_power_W"] * 1e6, paper["latency_ns"], marker="*", s=200, color="k"
    )
    axes.annotate("paper", (paper["max_neuron_power_W"] * 1e6, paper["latency_ns"]))
    axes.axvline(paper["max_neuron_power_W"] * 1e6, color="k", linestyle=":", linewidth=0.8)
    axes.axhline(paper["latency_ns"], color="k", linestyle=":", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlabel("busiest neuron at DC, everything but op-amp bias (uW)")
    crop = results["crop"]
    axes.set_ylabel(f"logits settled (1 % of V_p), central {crop}x{crop} pixels (ns)")
    axes.set_title(
        "paper_calibrated family: blue rows driven by the activations, orange ideal drivers;\n"
        "filled: accuracy within 2 points of the software model",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    with jax.default_device(jax.devices("cpu")[0]):
        main()

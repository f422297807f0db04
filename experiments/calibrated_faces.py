"""A calibrated preset against the paper's two headline numbers on whole PrivateTest faces:
steady-state accuracy, DC power per neuron, and the argmax's settling in whole-face transients
(not only a crop's).

    python experiments/calibrated_faces.py [--preset paper_calibrated_driven] [--images 4]
        [--skip 0] [--dc-images 384] [--power-images 2] [--t-end 5e-7] [--checkpoint DIR]
        [--data FER2013] [--out results/calibrated_faces]

- steady state: accuracy and agreement with the software model on the PrivateTest images
  ``memjax reproduce`` draws (``--dc-images``), and the largest memristor |V|;
- DC power: every neuron at its operating point on the first ``--power-images`` of them, the
  busiest neuron's power by kind (everything but the op-amps' bias);
- faces: the main job's transient image first, then its steady state's draws in order, each
  one 48x48 transient (every neuron of the network, ``TransientOptions.for_hardware`` with
  ``--t-end``) read by :func:`memjax.hardware.report.summarise`: the logits' settling (1 % of
  V_p), the argmax's (the last time the winning class changes) and its decision (from when
  it names a class within that band of the best, :func:`memjax.hardware.report.argmax_decided`),
  every layer's, the busiest neuron's power and the largest memristor |V| during the
  transient, and the energy; the transient's final class against the steady state's on the
  same face; the logits' waveform (V, at the transient's knots) so that later measures read it.

Writes results.json after every phase and face; run again with the same preset and t_end, it
keeps what is measured and measures the rest. Faces ``--skip`` to ``--skip + --images`` of
that order: processes given disjoint ranges share one results.json (each face is merged into
it under a lock), one core each.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
import time
from pathlib import Path

import numpy as np

from memjax.hardware.config import PRESETS
from memjax.hardware.memristive import convert, steady_state_in_batches
from memjax.hardware.operating_point import operating_point, summarise_power
from memjax.hardware.report import summarise
from memjax.hardware.transient import TransientOptions, simulate
from memjax.provenance import provenance
from memjax.reproduce import find_data, main_job_images
from memjax.training import steps
from memjax.training.checkpoint import load_model, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"latency_ns": 137.0, "max_neuron_power_W": 2.8e-6}


def measure_face(net, image, options) -> dict:
    """One face's whole-network transient, summarised."""
    started = time.time()
    records, logit_wave = simulate(net, image[None], options)
    summary = summarise(net, records, logit_wave, options, 1)
    steady, _ = steady_state_in_batches(net, image[None], batch_size=1)
    return {
        "logits_settling_ns": summary["latency_ns"]["network"],
        "argmax_settle_ns": summary["argmax_settle_ns"],
        "argmax_decided_ns": summary["argmax_decided_ns"],
        # every layer settled (the slowest, not necessarily the last)
        "all_layers_settled_ns": summary["energy_window_ns"],
        "slowest_layer": max(summary["latency_ns"]["per_layer"].items(), key=lambda kv: kv[1])[0],
        "per_layer_settling_ns": summary["latency_ns"]["per_layer"],
        "final_class": int(np.asarray(logit_wave.values[-1, 0]).argmax()),
        "steady_state_class": int(np.asarray(steady[0]).argmax()),
        "max_neuron_power_W": summary["max_neuron_power_W"],
        "max_neuron_power_layer": summary["max_neuron_power_layer"],
        "max_memristor_voltage_V": summary["max_memristor_voltage_V"],
        "energy_per_inference_J": summary["energy_per_inference_J"],
        "mean_solver_steps": float(np.mean([float(r.mean_steps) for _, _, r in records])),
        "logits_V": {
            "t_ns": np.asarray(logit_wave.ts).tolist(),
            "values": (np.asarray(logit_wave.values[:, 0]) * net.volts_per_unit).tolist(),
            "slopes_per_ns": (np.asarray(logit_wave.slopes[:, 0]) * net.volts_per_unit).tolist(),
        },
        "seconds": time.time() - started,
    }


def write_merged(path: Path, results: dict) -> dict:
    """``results`` with every face, phase and command another process has written to ``path``
    since this one read it, written back atomically under a lock."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            kept = json.loads(path.read_text())
            results["faces"] = {**kept.get("faces", {}), **results["faces"]}
            for phase in ("steady_state", "dc_power"):
                if phase in kept and phase not in results:
                    results[phase] = kept[phase]
            commands = [kept["command"], *kept.get("resumed", []), *results.get("resumed", [])]
            results["resumed"] = list(dict.fromkeys(c for c in commands if c != results["command"]))
        write_json_atomic(path, results)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper_calibrated_driven", choices=list(PRESETS))
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--skip", type=int, default=0, help="faces of the order to leave out")
    parser.add_argument("--dc-images", type=int, default=384)
    parser.add_argument("--power-images", type=int, default=2)
    parser.add_argument("--t-end", type=float, default=5e-7)
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints/shufflenetv2-1.0x"))
    parser.add_argument("--data", help="FER2013 (as memjax reproduce finds it when not given)")
    parser.add_argument("--out", default="results/calibrated_faces")
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
    if args.skip < 0 or args.images < 0:
        print("--skip and --images must be >= 0", file=sys.stderr)
        raise SystemExit(2)
    order = np.concatenate([transient, chosen])
    faces = [int(i) for i in order[args.skip : args.skip + args.images]]
    _, graph, params, stats = steps.split_model(model)
    software = np.asarray(
        steps.predict_logits(steps.make_predict(graph), params, stats, test.images)
    ).argmax(-1)
    hardware = PRESETS[args.preset]()
    net = convert(model, hardware)
    options = TransientOptions.for_hardware(hardware, t_end=args.t_end)
    results = {
        "command": " ".join(["python", "experiments/calibrated_faces.py", *given]),
        "preset": args.preset,
        "hardware": repr(hardware),
        "t_end_s": args.t_end,
        "checkpoint": args.checkpoint,
        "data": used,
        "paper": PAPER,
        "provenance": provenance(),
        "faces": {},
    }
    path = out / "results.json"
    if path.exists():  # keep what was measured on the same circuit, model and data
        kept = json.loads(path.read_text())
        for key in ("preset", "hardware", "t_end_s", "checkpoint", "data"):
            if kept.get(key) != results[key]:
                print(f"{path}: {key} differs from this run's; not resumed", file=sys.stderr)
                raise SystemExit(2)
        for key in ("faces", "steady_state", "dc_power"):
            if key in kept:
                results[key] = kept[key]
        results["resumed"] = [kept["command"], *kept.get("resumed", [])]
    if not 1 <= args.dc_images <= len(chosen):
        print(f"--dc-images: 1 to {len(chosen)} (the main job's draws)", file=sys.stderr)
        raise SystemExit(2)
    dc = chosen[: args.dc_images]
    if results.get("steady_state", {}).get("images") != len(dc):
        started = time.time()
        logits, peaks = steady_state_in_batches(net, test.images[dc], batch_size=64)
        predicted = np.asarray(logits).argmax(-1)
        results["steady_state"] = {
            "images": len(dc),
            "accuracy": float(np.mean(predicted == test.labels[dc])),
            "software_accuracy": float(np.mean(software[dc] == test.labels[dc])),
            "agreement_with_software": float(np.mean(predicted == software[dc])),
            "max_memristor_voltage_V": max(peaks.values()),
            "seconds": time.time() - started,
            "provenance": results["provenance"],
        }
        results = write_merged(path, results)
    print("steady state:", results["steady_state"], flush=True)
    if results.get("dc_power", {}).get("images") != args.power_images:
        points, _ = operating_point(net, test.images[chosen[: args.power_images]])
        power = summarise_power(points)
        results["dc_power"] = {
            "images": args.power_images,
            **{
                key: power[key]
                for key in ("max_neuron_power_W", "max_neuron_stage", "max_neuron_power_by_kind_W")
            },
            "provenance": results["provenance"],
        }
        results = write_merged(path, results)
    print("DC power:", results["dc_power"], flush=True)
    for face, label, predicted in zip(faces, test.labels[faces], software[faces], strict=True):
        if path.exists() and str(face) in json.loads(path.read_text()).get("faces", {}):
            continue  # measured, perhaps by another process since this one started
        row = measure_face(net, test.images[face], options)
        row.update(label=int(label), software_class=int(predicted))
        row["provenance"] = results["provenance"]
        results["faces"][str(face)] = row
        results = write_merged(path, results)
        print(
            f"face {face}: argmax settled {row['argmax_settle_ns']:.1f} ns (decided "
            f"{row['argmax_decided_ns']:.1f} ns), logits "
            f"{row['logits_settling_ns']:.1f} ns, every layer {row['all_layers_settled_ns']:.1f}"
            f" ns, memristor max {row['max_memristor_voltage_V']:.4f} V, class "
            f"{row['final_class']} (steady {row['steady_state_class']}, software "
            f"{row['software_class']}), {row['seconds']:.0f} s",
            flush=True,
        )
    argmax = [row["argmax_settle_ns"] for row in results["faces"].values()]
    if argmax:
        print(f"argmax settled: worst {max(argmax):.1f} ns over {len(argmax)} faces")


if __name__ == "__main__":
    main()

"""Read disturb from the whole-network transient: what one inference's overshoot above V_p
does to threshold devices, over one and over 10^6 inferences.

    python experiments/transient_disturb.py [--data PATH] [--variants calibrated_bounded
        calibrated_shared paper super_diodes plain_diode near_ideal] [--crop 8]
        [--inferences 1 1e3 1e6]
        [--threshold-margins 0 0.02] [--out PATH] [--cache PATH] [--resume]

For each variant (``paper_calibrated()`` as shipped, with its ReLU op-amps on the bounded
supply; the same on the shared +-1 V supply; ``paper_calibrated_driven()`` as shipped and
with its kernels on the shared supply, at 0.1 V; every other preset, at 1 V): the whole network's
transient on the central ``--crop`` pixels of the main job's PrivateTest image (the one
``memjax reproduce`` draws with its defaults), to the variant's t_end. The transient
records, per neuron and grid time, the largest |V| across any of its memristors (its rows
against its bit lines, which leave virtual ground while the TIA moves; its MBN's cells):
``StageRecord.memristor_voltage``. The cells are the chips' programming device
(``programming_device``: VTEAM with thresholds +-V_p, |k| 1e8 1/s both ways, alpha 3,
exponential I-V, R_on/R_off the preset's range: symmetric, so |V| sets |dx/dt|), and
``memjax.circuits.disturb`` integrates a cell's state through each neuron's envelope: one
inference, then the inference-averaged drift over ``--inferences`` (the same image repeated:
the worst case for that image) of each stage's neuron that moves most in one. The
envelope bounds every cell of its neuron (the rate grows with |V|), so the result is the
most any cell of the neuron can move; without a window the change does not depend on the
state (until a bound), and a cell at G_max changes its conductance most (exponential I-V).

Reported per variant and device threshold V_p (1 + m), ``--threshold-margins`` m (0: the
paper's reading, the limiter at the threshold; 0.02: the limiter 2 % below it): the largest
memristor |V| of the transient and at steady state, the neurons whose cells exceed the
threshold, the largest state change after each count of inferences and what that does to a
weight: the largest conductance change of a cell, in the preset's
levels (LSB), and the inferences after which the first cell has moved half a level (a
refresh interval). The transient's envelopes are kept in ``--cache``/``waves_<variant>.npz``
and reused. Writes results.json (command and commit; ``measured_by``: the commit of each
variant measured since 2026-12-06) and transient_disturb.png (the largest |V| on any
memristor of the network against time, per variant). ``--resume`` keeps the variants already
in results.json and adds the threshold margins they lack from their cached envelopes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from memjax.circuits.disturb import drift_over_inferences, state_change_per_inference  # noqa: E402
from memjax.circuits.waveform import Waveform  # noqa: E402
from memjax.devices.programming import programming_device  # noqa: E402
from memjax.hardware.config import PRESETS  # noqa: E402
from memjax.hardware.layers import network_layers  # noqa: E402
from memjax.hardware.memristive import convert, with_pool_inputs  # noqa: E402
from memjax.hardware.operating_point import operating_point  # noqa: E402
from memjax.hardware.transient import TransientOptions, simulate  # noqa: E402
from memjax.provenance import provenance  # noqa: E402
from memjax.reproduce import find_data, main_job_images  # noqa: E402
from memjax.training.checkpoint import load_model, write_json_atomic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    # name: (preset, changes to it, t_end in s: long enough for every layer to settle)
    "calibrated_bounded": ("paper_calibrated", {}, 1e-6),
    "calibrated_shared": ("paper_calibrated", {"relu_supply": "shared"}, 1e-6),
    # the calibrated design driving its own rows, as shipped (kernels on +-V_p), and with
    # its kernels on the shared supply: U1's rail, sized for the heaviest node, then lets a
    # light node rise above V_p
    "calibrated_driven": ("paper_calibrated_driven", {}, 5e-7),
    "calibrated_driven_shared_kernels": (
        "paper_calibrated_driven",
        {"preactivation_supply": "shared"},
        5e-7,
    ),
    "paper": ("paper", {}, 300e-9),
    "super_diodes": ("paper_super_diodes", {}, 300e-9),
    "plain_diode": ("paper_plain_diode_relu", {}, 300e-9),
    "near_ideal": ("near_ideal", {}, 300e-9),
}


TOP = 1
"""Per stage, the neurons whose drift over many inferences is integrated (those that move
most in one inference; each costs ~0.7 s of one core)."""


def main_job_image(test, seed: int = 0, dc_images: int = 384) -> int:
    """The index of the PrivateTest image whose transient ``memjax reproduce`` runs on its
    defaults."""
    return int(main_job_images(len(test), seed, dc_images)[1][0])


def transient_waves(model, hardware, image, crop: int, t_end: float, path: Path):
    """Every stage's memristor envelope (ns, V) and its peak at steady state, from the
    transient of ``image``'s central ``crop`` pixels; cached in ``path``."""
    if path.exists():
        saved = np.load(path, allow_pickle=False)
        return {key: saved[key] for key in saved.files}
    low = (48 - crop) // 2
    sample = image[None, low : low + crop, low : low + crop]
    pooled = network_layers(model.config, crop)[-2].inputs_per_kernel
    net = with_pool_inputs(convert(model, hardware), pooled)
    options = TransientOptions.for_hardware(hardware, t_end=t_end, memristor_envelopes=True)
    started = time.time()
    records, _ = simulate(net, sample, options)
    points, _ = operating_point(net, sample)
    waves = {"seconds": np.asarray(time.time() - started)}
    for index, ((name, _, record), (_, _, point)) in enumerate(zip(records, points, strict=True)):
        envelope = record.memristor_voltage
        waves[f"{index:02d}:{name}:ts"] = np.asarray(envelope.ts)
        waves[f"{index:02d}:{name}:values"] = np.asarray(envelope.values)
        waves[f"{index:02d}:{name}:slopes"] = np.asarray(envelope.slopes)
        waves[f"{index:02d}:{name}:dc_peak"] = np.asarray(point.max_memristor_voltage).max()
    np.savez(path, **waves)
    return waves


def stages(waves: dict) -> list[str]:
    return sorted({key.rsplit(":", 1)[0] for key in waves if key.count(":") == 2})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints/shufflenetv2-1.0x"))
    parser.add_argument("--data", help="FER2013 (as memjax reproduce finds it when not given)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--crop", type=int, default=8)
    parser.add_argument("--inferences", type=float, nargs="+", default=[1, 1e3, 1e6])
    parser.add_argument("--rate", type=float, default=1e8, help="VTEAM |k|, 1/s")
    parser.add_argument(
        "--threshold-margins",
        type=float,
        nargs="+",
        default=[0.0, 0.02],
        help="device thresholds at V_p (1 + margin): the limiter below the device's threshold",
    )
    parser.add_argument("--out", default="results/transient_disturb")
    parser.add_argument(
        "--cache", help="folder for the transients' envelopes (default --out; ~45 MB each)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the variants already in OUT/results.json (with the command that measured "
        "them) and measure only the others",
    )
    args = parser.parse_args(argv)
    data, used = find_data(args.data)
    if data is None:
        print(used, file=sys.stderr)
        raise SystemExit(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache) if args.cache else out
    cache.mkdir(parents=True, exist_ok=True)
    model, _ = load_model(Path(args.checkpoint))
    test = data.split("private_test")
    index = main_job_image(test)
    envelopes = {}
    results = {
        "command": " ".join(["python", "experiments/transient_disturb.py", *sys.argv[1:]]),
        "checkpoint": args.checkpoint,
        "data": used,
        "image": {"split": "private_test", "index": index, "crop": args.crop},
        "device": f"programming_device(g_min, g_max, v_p, rate={args.rate:g})",
        "inferences": args.inferences,
        "variants": {},
        "provenance": provenance(),
    }
    if args.resume and (out / "results.json").exists():
        kept = json.loads((out / "results.json").read_text())
        if kept["image"] != results["image"] or kept["inferences"] != results["inferences"]:
            print(
                f"{out / 'results.json'}: image or inferences differ; not resumed", file=sys.stderr
            )
            raise SystemExit(2)
        results["variants"] = kept["variants"]
        results["measured_by"] = kept.get("measured_by", {})
        results["resumed"] = [kept["command"], *kept.get("resumed", [])]
    measured_by = results.setdefault("measured_by", {})  # variant -> provenance
    for variant in args.variants:
        preset, changes, t_end = VARIANTS[variant]
        cached = cache / f"waves_{variant}.npz"
        kept = results["variants"].get(variant)
        hardware = PRESETS[preset]().replace(**changes)
        if kept is not None:  # kept; margins it lacks are added from its cached envelopes
            if not cached.exists():
                continue
            waves = transient_waves(None, None, None, 0, 0, cached)
            for margin in args.threshold_margins:
                key = f"threshold_margin_{margin:g}"
                if key not in kept:
                    kept[key] = disturb(hardware, waves, margin, args)
            envelopes[variant] = largest_envelope(waves)
            continue
        waves = transient_waves(model, hardware, test.images[index], args.crop, t_end, cached)
        results["variants"][variant] = {
            f"threshold_margin_{margin:g}": disturb(hardware, waves, margin, args)
            for margin in args.threshold_margins
        }
        measured_by[variant] = results["provenance"]
        envelopes[variant] = largest_envelope(waves)
        write_json_atomic(out / "results.json", results)
    write_json_atomic(out / "results.json", results)
    _figure(out / "transient_disturb.png", envelopes, results)
    print(f"wrote {out / 'results.json'} and transient_disturb.png")


def disturb(hardware, waves: dict, margin: float, args) -> dict:
    """The read disturb of every neuron's cells (see the module's docstring), the devices'
    thresholds at V_p (1 + ``margin``)."""
    threshold = hardware.v_p * (1.0 + margin)
    device = programming_device(hardware.g_min, hardware.g_max, threshold, args.rate)
    lsb = (hardware.g_max - hardware.g_min) / max(hardware.levels - 1, 1)
    counts = np.asarray(args.inferences, np.float64)
    row = {
        "v_p_V": hardware.v_p,
        "device_threshold_V": threshold,
        "lsb_S": lsb,
        "transient_seconds": float(waves["seconds"]),
        "max_memristor_voltage_V": 0.0,
        "max_memristor_voltage_dc_V": 0.0,
        "neurons": 0,
        "neurons_above_threshold": 0,
        "stages": [],
    }
    names, chosen, chosen_slopes, peaks = [], [], [], []
    for stage in stages(waves):
        values = waves[f"{stage}:values"]
        peak, dc_peak = float(values.max()), float(waves[f"{stage}:dc_peak"])
        row["max_memristor_voltage_V"] = max(row["max_memristor_voltage_V"], peak)
        row["max_memristor_voltage_dc_V"] = max(row["max_memristor_voltage_dc_V"], dc_peak)
        row["neurons"] += int(values[0].size)
        above = values.max(0) > threshold
        if above.any():
            names.append(stage)
            chosen.append(values[:, above])
            chosen_slopes.append(waves[f"{stage}:slopes"][:, above])
            peaks.append((peak, dc_peak))
    row["neurons_above_threshold"] = int(sum(c.shape[1] for c in chosen))
    row["max_conductance_change_lsb"] = dict.fromkeys(map(str, args.inferences), 0.0)
    largest = 0.0
    if chosen:  # every neuron above threshold in one solve (all stages share the grid)
        values, slopes = np.concatenate(chosen, 1), np.concatenate(chosen_slopes, 1)
        bounds = np.cumsum([0] + [c.shape[1] for c in chosen])
        with jax.enable_x64(True):
            ts = jnp.asarray(waves[f"{names[0]}:ts"])
            wave = Waveform(ts, jnp.asarray(values), jnp.asarray(slopes))
            change = state_change_per_inference(device, wave, jnp.ones(values.shape[1]), 1e-9)
            one = np.abs(np.asarray(change))
            # the drift over many inferences for each stage's neurons that move most in one
            # (without a window the state's rate does not depend on the state: the order of
            # one inference's changes is the order of the drifts)
            top = np.concatenate(
                [lo + np.argsort(one[lo:hi])[-TOP:] for lo, hi in zip(bounds[:-1], bounds[1:])]
            )
            sub = Waveform(ts, jnp.asarray(values[:, top]), jnp.asarray(slopes[:, top]))
            drifted = drift_over_inferences(device, sub, jnp.ones(len(top)), counts, 1e-9)
            moved_top = np.asarray(device.conductance(1.0) - device.conductance(drifted)) / lsb
        moved = np.zeros((len(counts), values.shape[1]))
        moved[:, top] = moved_top
        largest = float(one.max())
        row["max_conductance_change_lsb"] = dict(
            zip(map(str, args.inferences), moved.max(1).tolist())
        )
        for stage, (peak, dc_peak), lo, hi in zip(names, peaks, bounds[:-1], bounds[1:]):
            row["stages"].append(
                {
                    "stage": stage.split(":", 1)[1],
                    "neurons_above_threshold": int(hi - lo),
                    "peak_V": peak,
                    "peak_dc_V": dc_peak,
                    "max_state_change_one_inference": float(one[lo:hi].max()),
                    "max_conductance_change_lsb": moved[:, lo:hi].max(1).tolist(),
                }
            )
    # half a level at G_max, exponential I-V: G_max (1 - exp(-ln(R_off/R_on) dx)) = lsb / 2
    half_level = -np.log1p(-0.5 * lsb / hardware.g_max) / np.log(hardware.g_max / hardware.g_min)
    row["state_change_for_half_a_level"] = float(half_level)
    row["inferences_to_half_a_level"] = float(half_level / largest) if largest else None
    print({k: v for k, v in row.items() if k != "stages"}, flush=True)
    return row


def largest_envelope(waves: dict):
    """(knots, largest |V| of any memristor at each knot) over the whole network."""
    names = stages(waves)
    ts = waves[f"{names[0]}:ts"]
    values = [waves[f"{name}:values"].reshape(len(ts), -1).max(1) for name in names]
    return ts, np.max(values, axis=0)


def _figure(path: Path, envelopes: dict, results: dict) -> None:
    figure, axes = plt.subplots(figsize=(7, 4))
    for variant, (ts, peak) in envelopes.items():
        v_p = results["variants"][variant]["threshold_margin_0"]["v_p_V"]
        axes.plot(ts[1:], peak[1:] / v_p, label=variant)
    axes.axhline(1.0, color="k", lw=0.8, ls="--", label="V_p (limiter, device threshold)")
    axes.set(
        xscale="log",
        xlabel="time after the input step (ns)",
        ylabel="largest memristor |V| / V_p",
        title="largest voltage on any memristor, whole network (8x8 crop)",
    )
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()

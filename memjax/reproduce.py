"""``memjax reproduce``: the paper's memristive ShuffleNetV2, measured end to end.

Steady-state accuracy of the circuit against the software model (presets side by side), one
whole-network transient (settling per layer and of the network, argmax settling, energy by
kind and unit kind, peak power, peak memristor voltage, calculation periods, both mapping
schedules), resources of both topologies, a table against the paper's numbers, figures and
``results.json``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from memjax.errors import MemjaxError
from memjax.provenance import provenance

PAPER = {"latency_ns": 137.0, "max_neuron_power_W": 2.8e-6}
"""What Wang et al. (IEEE TCAD 2021) report for their design."""

DEFAULT_PRESET = "paper_plain_diode_relu"
"""The preset whose transient the main job runs by default. Not yet ``paper`` (the paper's
consistent reading, since 2026-12-05: super-diode rectifiers and max pool, whose
whole-network transient needs rtol 1e-5): its first stage alone took 323 s on one shared core
(2026-12-05), far beyond the main job's 10 minutes. Every preset's steady state is in the
table either way."""

PAPER_PERIOD_NS = 1.0
"""The calculation period of the paper-style count, ns: 137 layers on the critical path of the
1.0x network x 1 ns = the paper's 137 ns (physics notes, section 1; a hypothesis)."""

FOUND_DATA = ("../shared/data/fer2013/fer2013.npz", "data/fer2013.npz", "fer2013.npz")
"""Where FER2013 is looked for when neither --data nor $MEMJAX_FER2013 is given."""

HOW_TO_GET = (
    "FER2013 not found: pass --data PATH or set MEMJAX_FER2013 (Kaggle fer2013.csv, the "
    "image-folder version, or a .npz from `memjax data convert`); see the README"
)


def find_data(path: str | None):
    """(FER2013 or None, a sentence saying what was used)."""
    from memjax.data import load_fer2013

    if path is None:
        path = os.environ.get("MEMJAX_FER2013")
    if path is None:
        path = next((p for p in FOUND_DATA if Path(p).exists()), None)
    if path is None:
        return None, HOW_TO_GET
    data = load_fer2013(path)
    return data, f"FER2013 from {data.source}"


def reproduce(
    out: Path,
    checkpoint: Path,
    preset: str = DEFAULT_PRESET,
    data_path: str | None = None,
    dc_images: int = 384,
    transient_images: int = 1,
    gbw_ghz: tuple[float, ...] = (0.5, 2.0),
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
    say=print,
    transient_crop: int = 48,
    circuit_trained: dict[str, Path] | None = None,
) -> dict:
    """The main job (module docstring). ``circuit_trained``: preset name -> a checkpoint
    trained through that preset's circuit (``memjax train --circuit``): the table gets a
    second row for the preset on it, and the transient of ``preset`` runs on it."""
    import jax

    from memjax.hardware import CountingOptions, network_layers, network_resources
    from memjax.hardware.config import PRESETS
    from memjax.hardware.layers import critical_path_layers
    from memjax.hardware.memristive import (
        compile_steady_logits,
        convert,
        steady_state_in_batches,
        with_pool_inputs,
    )
    from memjax.hardware.report import summarise
    from memjax.hardware.resources import opamp_bias
    from memjax.hardware.sweep import gbw_sweep, sweep_row
    from memjax.hardware.transient import TransientOptions, simulate
    from memjax.hardware.twin import circuit_activations
    from memjax.training import steps
    from memjax.training.checkpoint import load_model

    if preset not in PRESETS:
        raise MemjaxError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    for name, count in (("dc-images", dc_images), ("transient-images", transient_images)):
        if count < 1:
            raise MemjaxError(f"reproduce: --{name} must be at least 1, got {count}")
    if not 1 <= transient_crop <= 48:
        raise MemjaxError(
            f"reproduce: --transient-crop must be 1 to 48 pixels, got {transient_crop}"
        )
    for name, tolerance in (("rtol", rtol), ("atol", atol)):
        if tolerance is not None and not tolerance > 0:
            raise MemjaxError(f"reproduce: --{name} must be > 0, got {tolerance}")
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    model, _ = load_model(checkpoint)
    circuit_trained = dict(circuit_trained or {})
    unknown = sorted(set(circuit_trained) - set(PRESETS))
    if unknown:
        raise MemjaxError(f"reproduce: circuit-trained checkpoints for unknown presets {unknown}")
    trained_models = {name: load_model(path)[0] for name, path in circuit_trained.items()}
    data, used = find_data(data_path)
    say(f"model: {checkpoint}; preset: {preset}; {used}")
    rng = np.random.default_rng(seed)
    results: dict = {
        "checkpoint": str(checkpoint),
        "preset": preset,
        "data": used,
        "seed": seed,
        "circuit_trained": {name: str(path) for name, path in circuit_trained.items()},
        "provenance": provenance(),
    }

    if data is not None:
        test = data.split("private_test")
        _, eval_graph, params, batch_stats = steps.split_model(model)
        predict = steps.make_predict(eval_graph)
        software = steps.predict_logits(predict, params, batch_stats, test.images).argmax(-1)
        chosen = np.sort(rng.choice(len(test), min(dc_images, len(test)), replace=False))
        labels = test.labels[chosen]
        table = {}
        rows = [(name, name, model) for name in dict.fromkeys([preset, *PRESETS])]
        rows += [
            (f"{name} (circuit-trained)", name, trained_models[name]) for name in trained_models
        ]
        for name, preset_name, row_model in rows:
            logits, peaks = steady_state_in_batches(
                convert(row_model, PRESETS[preset_name]()), test.images[chosen]
            )
            predicted = logits.argmax(-1)
            table[name] = {
                "accuracy": float(np.mean(predicted == labels)),
                # with the shipped (software) model's predictions, for every row
                "agreement_with_software": float(np.mean(predicted == software[chosen])),
                "max_memristor_voltage_dc_V": max(peaks.values()),
                "max_memristor_voltage_dc_V_by_unit_kind": peaks,
                "v_p_V": PRESETS[preset_name]().v_p,
                "opamp_bias_per_opamp_W": PRESETS[preset_name]().opamp.bias_power,
            }
            if row_model is not model:  # a circuit-trained model: against its own twin too
                _, twin_graph, twin_params, twin_stats = steps.split_model(row_model)
                activations = circuit_activations(PRESETS[preset_name](), row_model.config)
                twin = steps.make_predict(twin_graph, activations)
                twin_predicted = steps.predict_logits(
                    twin, twin_params, twin_stats, test.images[chosen], 128
                ).argmax(-1)
                table[name]["agreement_with_twin"] = float(np.mean(predicted == twin_predicted))
                table[name]["twin_accuracy"] = float(np.mean(twin_predicted == labels))
            say(
                f"  steady state, {name}: accuracy {table[name]['accuracy']:.2%}, "
                f"agreement {table[name]['agreement_with_software']:.2%}, largest memristor "
                f"voltage {table[name]['max_memristor_voltage_dc_V']:.2f} V"
            )
        results["accuracy"] = {
            "software": float(np.mean(software == test.labels)),
            "software_on_subset": float(np.mean(software[chosen] == labels)),
            # on the model the transient runs on: the preset's circuit-trained one if given
            "memristive_dc": table[
                f"{preset} (circuit-trained)" if preset in trained_models else preset
            ]["accuracy"],
            "memristive_dc_checkpoint": str(circuit_trained.get(preset, checkpoint)),
            "software_checkpoint": str(checkpoint),
            "images": int(len(chosen)),
            "split": "private_test",
            "presets": table,
        }
        sample = test.images[rng.choice(len(test), transient_images, replace=False)]
        say(
            f"accuracy on {len(chosen)} random PrivateTest images (software on all "
            f"{len(test)}: {results['accuracy']['software']:.2%})"
        )
    else:
        results["accuracy"] = {"software": None, "memristive_dc": None, "images": 0}
        sample = rng.integers(0, 256, (transient_images, 48, 48)).astype(np.uint8)
        say("no FER2013: the transient runs on uniform random images (stated in results.json)")

    transient_model = trained_models.get(preset, model)
    results["transient_checkpoint"] = str(circuit_trained.get(preset, checkpoint))
    net = convert(transient_model, PRESETS[preset]())
    if transient_crop < 48:
        # the central window of each image: every crossbar is convolutional, the average
        # pool is rebuilt for the smaller last map
        low = (48 - transient_crop) // 2
        sample = sample[:, low : low + transient_crop, low : low + transient_crop]
        pooled = network_layers(transient_model.config, transient_crop)[-2].inputs_per_kernel
        net = with_pool_inputs(net, pooled)
    given = {name: value for name, value in (("rtol", rtol), ("atol", atol)) if value is not None}
    options = TransientOptions.for_hardware(net.hardware, **given)
    say(
        f"transient of the whole network on {transient_images} image(s) "
        f"({transient_crop}x{transient_crop} pixels), "
        f"{options.t_end * 1e9:.0f} ns, rtol {options.rtol:g}, atol {options.atol:g} V "
        "(first run compiles each distinct stage)"
    )
    results["transient_options"] = {
        "t_end_s": options.t_end,
        "rtol": options.rtol,
        "atol_V": options.atol,
        "knots": int(len(options.grid())),
    }
    progress = _progress(say)
    records, logits = simulate(net, sample, options, progress)
    summary = summarise(net, records, logits, options, len(sample))
    results.update(summary)
    transient_end = np.asarray(logits.final, np.float64)
    steady_logits = compile_steady_logits(net)  # the transient's network (and crop)
    steady_state = steps.in_fixed_batches(steady_logits, sample, 128).astype(np.float64)
    results["logits"] = {
        "transient_end": transient_end.tolist(),
        "steady_state": steady_state.tolist(),
        "max_abs_difference": float(np.max(np.abs(transient_end - steady_state))),
    }
    say(
        f"logits at {options.t_end * 1e9:.0f} ns against the steady state: largest difference "
        f"{results['logits']['max_abs_difference']:.2e} units"
    )
    results["transient_images"] = int(len(sample))
    results["transient_crop"] = transient_crop
    amp = net.hardware.opamp
    say(
        f"GBW sweep: the same transient with every op-amp's GBW at {list(gbw_ghz)} GHz "
        f"(slew rate held at {amp.slew_rate:.3g} V/s; compiled once)"
    )
    sweep = [sweep_row(summary, amp.gain_bandwidth, amp.slew_rate)]
    if gbw_ghz:
        sweep += gbw_sweep(net, sample, [g * 1e9 for g in gbw_ghz], options, say=say)
    results["gbw_sweep"] = sorted(sweep, key=lambda row: row["gain_bandwidth_Hz"])
    layers = network_layers(transient_model.config)  # the model the transient ran
    hardware = PRESETS[preset]()
    # the preset's circuits: the ReLU, its limiter and the max pool set the op-amp count
    counted = CountingOptions(
        batch_norm=hardware.batch_norm,
        relu=hardware.relu,
        limiter=hardware.limiter,
        max_pool=hardware.max_pool,
    )
    results["resources"] = {
        topology: network_resources(layers, dataclasses.replace(counted, topology=topology))[
            "total"
        ]
        for topology in ("proposed", "original")
    }
    results["resources_reuse"] = {
        topology: network_resources(
            layers, dataclasses.replace(counted, topology=topology, schedule="reuse")
        )["total"]
        for topology in ("proposed", "original")
    }
    bias = opamp_bias(layers, counted, hardware.opamp.bias_power)
    bias["energy_per_inference_J"] = bias["network_W"] * results["energy_window_ns"] * 1e-9
    bias["energy_at_paper_latency_J"] = bias["network_W"] * PAPER["latency_ns"] * 1e-9
    bias["how"] = (
        "static supply power of every op-amp (OpAmp.bias_power: GBW x C_L / FOM_S x the rail "
        "span, or the preset's quiescent_power), over the energy window of the transient; "
        "not in energy_by_kind_J or max_neuron_power_W, which hold the signal path"
    )
    results["opamp_bias"] = bias
    for row in results["gbw_sweep"]:  # the bias grows with the GBW; the signal path's does not
        amp = dataclasses.replace(hardware.opamp, gain_bandwidth=row["gain_bandwidth_Hz"])
        row["opamp_bias_W"] = bias["op_amps"] * amp.bias_power
    results["paper"] = PAPER
    counted_layers = critical_path_layers(transient_model.config)
    results["paper_style_periods"] = {
        "layers_on_critical_path": len(counted_layers),
        "period_ns": PAPER_PERIOD_NS,
        "latency_ns": len(counted_layers) * PAPER_PERIOD_NS,
        "layers": counted_layers,
        "how": "every convolution, batch norm, ReLU, pooling and fully connected layer on the "
        "critical path one calculation period; the simulated latency is when the logits "
        "(and every layer) have settled in the transient, a physical time that depends on "
        "the circuit, not a count",
    }
    results["seconds"] = time.time() - started
    results["device"] = jax.devices()[0].device_kind
    from memjax.training.checkpoint import write_json_atomic

    write_json_atomic(out / "results.json", _jsonable(results))
    figures = _figures(out, results, records, net)
    say(comparison_table(results))
    say(f"wrote {out / 'results.json'} and {len(figures)} figures in {results['seconds']:.0f} s")
    return results


def comparison_table(results: dict) -> str:
    ours, paper = results, results["paper"]
    proposed, original = results["resources"]["proposed"], results["resources"]["original"]
    rows = [
        (
            "latency per inference",
            f"{paper['latency_ns']:.0f} ns",
            f"{ours['latency_ns']['network']:.1f} ns (argmax settled at "
            f"{ours['argmax_settle_ns']:.1f} ns)"
            if ours["latency_ns"]["network"] > 0
            else "0 ns: the logits stay within the settling band of their blank-input values",
        ),
        (
            "calculation periods x period",
            f"{paper['latency_ns']:.0f} ns",
            f"{ours['paper_style_periods']['layers_on_critical_path']} layers x "
            f"{ours['paper_style_periods']['period_ns']:g} ns = "
            f"{ours['paper_style_periods']['latency_ns']:g} ns (a count, not simulated)",
        ),
        (
            "last layer settled",
            "-",
            f"{max(ours['latency_ns']['per_layer'].values()):.1f} ns",
        ),
        (
            "max power per neuron",
            f"{paper['max_neuron_power_W'] * 1e6:.1f} uW",
            f"{ours['max_neuron_power_W'] * 1e6:.1f} uW (signal path, bias apart)",
        ),
        (
            "op-amp bias power",
            "not stated",
            f"{ours['opamp_bias']['per_opamp_W'] * 1e3:.3g} mW per op-amp; "
            f"{ours['opamp_bias']['max_per_neuron_W'] * 1e6:.0f} uW per neuron "
            f"({ours['opamp_bias']['max_op_amps_per_neuron']:g} op-amps); "
            f"{ours['opamp_bias']['network_W']:.3g} W in all",
        ),
        (
            "word lines (2M+1)x1 / (M+1)x2",
            "fewer",
            f"{original['word_lines'] / proposed['word_lines']:.2f}x",
        ),
        (
            "inverters (2M+1)x1 / (M+1)x2",
            "fewer",
            f"{original['inverters'] / max(proposed['inverters'], 1):.0f}x",
        ),
    ]
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'':<{width}}{'paper':>12}   memjax"]
    lines += [f"{name:<{width}}{p:>12}   {m}" for name, p, m in rows]
    return "\n".join(lines)


def _progress(say):
    start = time.time()

    def report(name):
        say(f"  {time.time() - start:7.1f} s  {name}")

    return report


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _figures(out: Path, results: dict, records, net) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memjax.circuits.waveform import Waveform, sample

    paths = []
    layers = results["layers"]
    figure, axes = plt.subplots(figsize=(10, 4))
    axes.bar(range(len(layers)), [layer["settling_ns"] for layer in layers])
    axes.set_xticks(
        range(len(layers)), [layer["name"] for layer in layers], rotation=90, fontsize=6
    )
    axes.set_ylabel("settled at (ns after the input step)")
    axes.set_title(
        f"Per-layer settling ({results['preset']}); network "
        f"{results['latency_ns']['network']:.1f} ns"
    )
    figure.tight_layout()
    paths.append(_save(figure, out / "settling_per_layer.png"))

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    kinds = results["energy_by_kind_J"]
    left.bar(list(kinds), [v * 1e9 for v in kinds.values()])
    left.set_ylabel("energy per inference (nJ)")
    left.set_title("by component")
    units = results["energy_by_unit_kind_J"]
    right.bar(list(units), [v * 1e9 for v in units.values()])
    right.set_title("by unit kind")
    figure.tight_layout()
    paths.append(_save(figure, out / "energy_breakdown.png"))

    figure, axes = plt.subplots(figsize=(7, 4))
    shown = {}
    for name, kind, record in records:
        shown.setdefault(kind, (name, record))
    for kind, (name, record) in shown.items():
        ts = np.asarray(record.output.ts)
        values = np.asarray(record.output.values).reshape(len(ts), -1)
        slopes = np.asarray(record.output.slopes).reshape(len(ts), -1)
        neuron = int(np.argmax(np.abs(values[-1] - values[0])))
        grid = np.linspace(0, results["t_end_ns"], 600)
        one = Waveform(ts, values[:, neuron], slopes[:, neuron])
        trace = np.asarray(sample(one, grid))
        axes.plot(grid, trace, label=f"{kind}: {name}")
    axes.set_xlabel("t (ns)")
    axes.set_ylabel("output (V)")
    axes.set_title("One neuron per unit kind (the one that moves most)")
    axes.legend(fontsize=7)
    figure.tight_layout()
    paths.append(_save(figure, out / "waveforms.png"))

    sweep = results.get("gbw_sweep")
    if sweep:
        figure, axes = plt.subplots(figsize=(6, 4))
        power = [row["mean_power_W"] * 1e3 for row in sweep]
        latency = [row["slowest_layer_ns"] for row in sweep]
        axes.plot(power, latency, "o-")
        for row, p, t in zip(sweep, power, latency, strict=True):
            axes.annotate(f"{row['gain_bandwidth_Hz'] / 1e9:g} GHz", (p, t), fontsize=8)
        axes.set_xlabel("mean power over the inference (mW)")
        axes.set_ylabel("latency: last layer settled (ns)")
        axes.set_title(f"Latency against power as the op-amp GBW varies ({results['preset']})")
        figure.tight_layout()
        paths.append(_save(figure, out / "latency_vs_power_gbw.png"))

    accuracy = results["accuracy"]
    if accuracy.get("presets"):
        figure, axes = plt.subplots(figsize=(6, 2.2))
        axes.axis("off")
        rows = [
            [name, f"{row['accuracy']:.2%}", f"{row['agreement_with_software']:.2%}"]
            for name, row in accuracy["presets"].items()
        ]
        rows.insert(0, ["software", f"{accuracy['software_on_subset']:.2%}", "-"])
        axes.table(cellText=rows, colLabels=["model", "accuracy", "agreement"], loc="center")
        axes.set_title(f"FER2013 PrivateTest, {accuracy['images']} images, steady state")
        paths.append(_save(figure, out / "accuracy_table.png"))
    return paths


def _save(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path

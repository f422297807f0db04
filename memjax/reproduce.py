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
table either way, except :data:`SLOW_STEADY_STATE_PRESETS`'s."""

SLOW_STEADY_STATE_PRESETS = ("paper_calibrated_driven",)
"""Presets the main job's table leaves out unless one is ``--preset``: their activations drive
their rows (``row_drive="direct"``), so every node of the steady state is solved with its own
load (``dc_transfer="exact"``, 40 bracketed Newton iterations per node in float32): 174 s
for the table's 384 images (0.45 s per image, measured 2026-12-06, one core), beside the
main job's 322-369 s (2 cores, 2026-12-08). ``experiments/calibrated_faces.py`` measures
them; ``results.json`` names them under ``accuracy.presets_left_out``."""

TABLE_THREADS = 2
"""Rows of the steady-state table built at once, in threads. A row is mostly compilation
(its network's steady-state and DC operating-point programs; tracing holds Python's lock,
XLA's compiles do not), which leaves a second core idle: the table's six rows took 120 s in
two threads against 148 s one after the other (2 CPU cores, 2026-12-07). The transient
runs after the table, not beside it: its steps keep both cores busy (the table beside it
took ~720 s against ~640 s, 2026-12-07)."""

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


def main_job_images(
    count: int, seed: int = 0, dc_images: int = 384, transient_images: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The PrivateTest indices (of ``count``) that :func:`reproduce` evaluates: its steady
    state's sample (sorted) and then its transient's, drawn in that order from ``seed``."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(count, min(dc_images, count), replace=False))
    return chosen, rng.choice(count, transient_images, replace=False)


def reproduce(
    out: Path,
    checkpoint: Path,
    preset: str = DEFAULT_PRESET,
    data_path: str | None = None,
    dc_images: int = 384,
    transient_images: int = 1,
    gbw_ghz: tuple[float, ...] = (),
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
    say=print,
    transient_crop: int = 48,
    circuit_trained: dict[str, Path] | None = None,
    power_images: int = 4,
    target_latency_ns: float | None = None,
    stepping: str = "lanes",
) -> dict:
    """The main job (module docstring). ``circuit_trained``: preset name -> a checkpoint
    trained through that preset's circuit (``memjax train --circuit``): the table gets a
    second row for the preset on it, and the transient of ``preset`` runs on it.
    ``power_images``: PrivateTest images (the first of the steady state's sample) on which
    every preset's neurons are put at their DC operating point for the power by component
    (0: none). ``target_latency_ns``: a latency the transient's preset must be able to reach;
    refused below its floor (:mod:`memjax.hardware.latency`), else reported as met or not.
    ``stepping``: the transient's :attr:`~memjax.hardware.transient.TransientOptions.stepping`.
    ``gbw_ghz``: op-amp GBWs (GHz) besides the preset's, one more whole transient each
    (``gbw_sweep`` in results.json; without, its one row is the transient's own GBW). None
    by default: the 2 GHz point took ~200 s of the main job's 927 s (2 cores, 2026-12-07),
    a third of the ten minutes issue 22 gives it, and ``experiments/latency_power_front.py``
    measures the GBW axis.
    On refilled lanes by default (since 2026-12-08): on the circuit-trained model, whose
    signal crosses every stage, the diffrax per-neuron stepping at its tolerances put 46 of
    59 stages more than 2e-3 V off a tight solve and the network latency 23 % late on a 16x16
    crop, where the lanes at 1e-4 / 1e-5 are within 1.2e-3 V and 0.02 %; their default,
    3e-5 / 3e-6, also brings the logits at 300 ns within 2.2e-4 units of the steady state
    (1.5e-3 at 1e-4 / 1e-5; :data:`~memjax.hardware.transient.DEFAULT_TOLERANCES`); the
    shared steps took 331 s for the first run and 196 s warm against 245 s and ~200 s per
    neuron (2 cores, 2026-12-07);
    the shipped model's 4x faster warm shared steps (benchmarks/README.md) were measured on a
    signal that dies after stage 2."""
    import jax

    from memjax.hardware import network_layers, network_resources
    from memjax.hardware.config import PRESETS
    from memjax.hardware.latency import latency_floor
    from memjax.hardware.layers import critical_path_layers
    from memjax.hardware.memristive import (
        convert,
        with_pool_inputs,
    )
    from memjax.hardware.resources import opamp_bias
    from memjax.hardware.transient import STEPPINGS, TransientOptions
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
    if stepping not in STEPPINGS:
        raise MemjaxError(
            f"reproduce: --stepping {stepping!r}, expected one of {', '.join(STEPPINGS)}"
        )
    if power_images < 0:
        raise MemjaxError(f"reproduce: --power-images must be >= 0, got {power_images}")
    for name, tolerance in (("rtol", rtol), ("atol", atol)):
        if tolerance is not None and not tolerance > 0:
            raise MemjaxError(f"reproduce: --{name} must be > 0, got {tolerance}")
    model, _ = load_model(checkpoint)
    floor = latency_floor(model.config, PRESETS[preset]())
    if target_latency_ns is not None and not target_latency_ns >= floor["floor_s"] * 1e9:
        raise MemjaxError(
            f"reproduce: --target-latency-ns {target_latency_ns:g} is below what {preset} can "
            f"reach: {floor['series_opamp_stages']} op-amp stages in series on the critical "
            f"path, each at best one pole at GBW {PRESETS[preset]().opamp.gain_bandwidth:.3g} "
            f"Hz, settle no sooner than {floor['floor_s'] * 1e9:.3g} ns"
        )
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
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
        # a warm persistent compile cache makes `seconds` another measurement
        "compile_cache": _compile_cache(),
    }

    table_presets = [name for name in PRESETS if name not in SLOW_STEADY_STATE_PRESETS]
    rows = [(name, name, model) for name in dict.fromkeys([preset, *table_presets])]
    rows += [(f"{name} (circuit-trained)", name, trained_models[name]) for name in trained_models]
    if data is not None:
        test = data.split("private_test")
        chosen, transient_chosen = main_job_images(len(test), seed, dc_images, transient_images)
        sample = test.images[transient_chosen]
    else:
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
    options = TransientOptions.for_hardware(net.hardware, stepping=stepping, **given)
    results["transient_options"] = {
        "t_end_s": options.t_end,
        "rtol": options.rtol,
        "atol_V": options.atol,
        "knots": int(len(options.grid())),
        "stepping": options.stepping,
    }
    # the table first, then the transient (TABLE_THREADS)
    companions = None
    if data is not None:
        _, eval_graph, params, batch_stats = steps.split_model(model)
        software = steps.predict_logits(
            steps.make_predict(eval_graph), params, batch_stats, test.images
        ).argmax(-1)
        labels = test.labels[chosen]
        table, dc_power = _steady_state_table(
            rows, model, test, chosen, software[chosen], power_images, say
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
            "presets_left_out": [name for name in SLOW_STEADY_STATE_PRESETS if name != preset],
        }
        say(
            f"accuracy on {len(chosen)} random PrivateTest images (software on all "
            f"{len(test)}: {results['accuracy']['software']:.2%})"
        )
        if power_images and transient_crop == 48:
            companions = test.images[chosen[:power_images]]
    else:
        results["accuracy"] = {"software": None, "memristive_dc": None, "images": 0}
        dc_power = {}
    records, transient_results = _transient_part(net, sample, options, gbw_ghz, companions, say)
    results.update(transient_results)
    layers = network_layers(transient_model.config)  # the model the transient ran
    hardware = PRESETS[preset]()
    counted = _counting(hardware)
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
    counted_layers = critical_path_layers(transient_model.config, hardware.batch_norm)
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
    transient_row = f"{preset} (circuit-trained)" if preset in trained_models else preset
    results["presets"] = {
        name: _preset_row(
            name,
            PRESETS[preset_name](),
            row_model.config,
            results["accuracy"].get("presets", {}).get(name),
            dc_power.get(name),
            results if name == transient_row else None,
        )
        for name, preset_name, row_model in rows
    }
    results["latency_target"] = None
    if target_latency_ns is not None:
        results["latency_target"] = {
            "target_ns": target_latency_ns,
            "floor_ns": floor["floor_s"] * 1e9,
            "argmax_settle_ns": results["argmax_settle_ns"],
            "argmax_decided_ns": results["argmax_decided_ns"],
            "logits_settled_ns": results["latency_ns"]["network"],
            # the target: the decision settled (on a crop it may never move: then
            # the logits' settling says more)
            "met": results["argmax_settle_ns"] <= target_latency_ns,
        }
    results["seconds"] = time.time() - started
    results["device"] = jax.devices()[0].device_kind
    from memjax.training.checkpoint import write_json_atomic

    write_json_atomic(out / "results.json", _jsonable(results))
    figures = _figures(out, results, records, net)
    say(comparison_table(results))
    say(presets_table(results))
    say(f"wrote {out / 'results.json'} and {len(figures)} figures in {results['seconds']:.0f} s")
    return results


def _steady_state_table(rows, model, test, chosen, software, power_images, say):
    """Every row's steady-state accuracy, agreement with the ``software`` predictions and
    largest memristor voltage on the ``chosen`` PrivateTest images, and its DC power on the
    first ``power_images`` of them: (table, DC power), by row name."""
    from concurrent.futures import ThreadPoolExecutor

    def row(entry):
        _, preset_name, row_model = entry
        return _steady_state_row(
            preset_name, row_model, row_model is not model, test, chosen, software, power_images
        )

    table, dc_power = {}, {}
    with ThreadPoolExecutor(TABLE_THREADS) as pool:
        entries = pool.map(row, rows)  # in the rows' order, each as soon as it is done
        for (name, _, _), (table[name], power) in zip(rows, entries, strict=True):
            if power is not None:
                dc_power[name] = power
            say(
                f"  steady state, {name}: accuracy {table[name]['accuracy']:.2%}, "
                f"agreement {table[name]['agreement_with_software']:.2%}, largest memristor "
                f"voltage {table[name]['max_memristor_voltage_dc_V']:.2f} V"
            )
    return table, dc_power


def _steady_state_row(preset_name, row_model, own_twin, test, chosen, software, power_images):
    """One row of :func:`_steady_state_table`: (its entry, its DC power or None)."""
    from memjax.hardware.config import PRESETS
    from memjax.hardware.memristive import convert, steady_state_in_batches
    from memjax.hardware.operating_point import operating_point, summarise_power
    from memjax.hardware.twin import circuit_activations
    from memjax.training import steps

    hardware = PRESETS[preset_name]()
    images, labels = test.images[chosen], test.labels[chosen]
    converted = convert(row_model, hardware)
    logits, peaks = steady_state_in_batches(converted, images)
    power = None
    if power_images:
        points, _ = operating_point(converted, images[:power_images])
        power = _dc_power(summarise_power(points), len(images[:power_images]))
    predicted = logits.argmax(-1)
    entry = {
        "accuracy": float(np.mean(predicted == labels)),
        # with the shipped (software) model's predictions, for every row
        "agreement_with_software": float(np.mean(predicted == software)),
        "max_memristor_voltage_dc_V": max(peaks.values()),
        "max_memristor_voltage_dc_V_by_unit_kind": peaks,
        "v_p_V": hardware.v_p,
        "opamp_bias_per_opamp_W": hardware.opamp.bias_power,
    }
    if own_twin:  # a circuit-trained model: against its own twin too
        _, twin_graph, twin_params, twin_stats = steps.split_model(row_model)
        twin = steps.make_predict(twin_graph, circuit_activations(hardware, row_model.config))
        twin_predicted = steps.predict_logits(twin, twin_params, twin_stats, images, 128)
        twin_predicted = twin_predicted.argmax(-1)
        entry["agreement_with_twin"] = float(np.mean(predicted == twin_predicted))
        entry["twin_accuracy"] = float(np.mean(twin_predicted == labels))
    return entry, power


def _transient_part(net, sample, options, gbw_ghz, companions, say):
    """The whole-network transient of ``sample`` with its checks against the DC operating
    point and the steady-state logits, and the GBW sweep: (records, results).
    ``companions``: the steady-state table's DC power images (None: none or another crop)."""
    from memjax.hardware.memristive import steady_state_in_batches
    from memjax.hardware.operating_point import operating_point
    from memjax.hardware.report import summarise
    from memjax.hardware.sweep import gbw_sweep, sweep_row
    from memjax.hardware.transient import simulate

    say(
        f"transient of the whole network on {len(sample)} image(s) "
        f"({sample.shape[1]}x{sample.shape[2]} pixels), {options.t_end * 1e9:.0f} ns, "
        f"{options.stepping} steps, rtol {options.rtol:g}, atol {options.atol:g} V (first "
        "run compiles each distinct stage)"
    )
    records, logits = simulate(net, sample, options, _progress(say))
    results = summarise(net, records, logits, options, len(sample))
    # every layer at t_end against its DC operating point: a layer off it by more than the
    # settling band has not settled (its settling time is cut short), which its output's
    # slope cannot tell (a super diode crossing its dead zone holds its output still)
    images = sample
    if companions is not None and len(sample) < len(companions):
        # with the table's DC power images, as many as it had: the same batch, so its
        # compiled drive programs serve (the neurons' chunk programs serve any batch; before
        # the chunks, another batch size compiled every distinct stage again: ~50 s on 2
        # cores, 2026-12-07)
        images = np.concatenate([sample, companions[len(sample) :]])
    points, _ = operating_point(net, images)
    results["off_steady_state_at_t_end"] = [
        {"name": name, "difference_V": gap}
        for (name, _, record), (_, _, point) in zip(records, points, strict=True)
        if (gap := _largest_gap(record.output.values[-1], point.output[: len(sample)]))
        > results["settling_band_V"]
    ]
    if results["off_steady_state_at_t_end"]:
        first = results["off_steady_state_at_t_end"][0]
        say(
            f"  warning: {len(results['off_steady_state_at_t_end'])} layers are off their DC "
            f"operating point at {options.t_end * 1e9:.0f} ns by more than the settling band "
            f"(first {first['name']}, {first['difference_V']:.2e} V): their settling times "
            "are cut short; run a longer transient"
        )
    transient_end = np.asarray(logits.final, np.float64)
    # the transient's network (and crop); the table's program when it has this structure
    steady_state = steady_state_in_batches(net, sample)[0].astype(np.float64)
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
    results["transient_crop"] = int(sample.shape[1])
    amp = net.hardware.opamp
    sweep = [sweep_row(results, amp.gain_bandwidth, amp.slew_rate)]
    if gbw_ghz:
        say(
            f"GBW sweep: the same transient with every op-amp's GBW at {list(gbw_ghz)} GHz "
            f"(slew rate held at {amp.slew_rate:.3g} V/s; the transient's compiled stages)"
        )
        sweep += gbw_sweep(net, sample, [g * 1e9 for g in gbw_ghz], options, say=say)
    results["gbw_sweep"] = sorted(sweep, key=lambda row: row["gain_bandwidth_Hz"])
    return records, results


def _compile_cache() -> dict:
    """JAX's persistent compilation cache as this run found it: its folder (None: off) and
    the entries already there (0: every program compiled afresh)."""
    import jax

    folder = jax.config.jax_compilation_cache_dir
    entries = len(list(Path(folder).expanduser().glob("*"))) if folder else 0
    return {"dir": folder, "entries_at_start": entries}


def _largest_gap(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _counting(hardware):
    """The resource-counting options of a preset's circuits: the ReLU, its limiter, the max
    pool and the batch norm set the op-amp count."""
    from memjax.hardware import CountingOptions

    return CountingOptions(
        batch_norm=hardware.batch_norm,
        relu=hardware.relu,
        limiter=hardware.limiter,
        max_pool=hardware.max_pool,
    )


def _dc_power(summary: dict, images: int) -> dict:
    """The DC operating point's power of a preset (``summarise_power``), without the
    per-stage detail."""
    kept = {key: value for key, value in summary.items() if key != "stages"}
    return {"images": images, **kept}


def _preset_row(name, hardware, config, steady, dc_power, transient) -> dict:
    """One preset's row of the main job (issue 22, item 8): steady-state accuracy and
    agreement, the paper-style count and the latency floor, DC power by component, op-amp
    bias, the largest memristor voltages, resources, and the transient's measurements for
    the preset whose transient ran (``transient``: the results so far; None for the others)."""
    from memjax.hardware import network_layers, network_resources
    from memjax.hardware.latency import latency_floor
    from memjax.hardware.layers import critical_path_layers
    from memjax.hardware.resources import opamp_bias

    layers = network_layers(config)
    counted = _counting(hardware)
    path = critical_path_layers(config, hardware.batch_norm)
    floor = latency_floor(config, hardware)
    bias = opamp_bias(layers, counted, hardware.opamp.bias_power)
    row = {
        "accuracy": steady["accuracy"] if steady else None,
        "agreement_with_software": steady["agreement_with_software"] if steady else None,
        "v_p_V": hardware.v_p,
        # "ideal": each activation's rows held by ideal drivers (PAPER_ASSUMPTIONS)
        "row_drive": hardware.row_drive,
        "paper_style_periods": {
            "layers_on_critical_path": len(path),
            "period_ns": PAPER_PERIOD_NS,
            "latency_ns": len(path) * PAPER_PERIOD_NS,
        },
        "latency_floor_ns": floor["floor_s"] * 1e9,
        "series_opamp_stages": floor["series_opamp_stages"],
        "max_memristor_voltage_dc_V": steady["max_memristor_voltage_dc_V"] if steady else None,
        "dc_power": dc_power,
        "opamp_bias": {key: bias[key] for key in ("per_opamp_W", "op_amps", "network_W")}
        | {"max_per_neuron_W": bias["max_per_neuron_W"]},
        "resources": network_resources(layers, counted)["total"],
        "transient": None,
    }
    if transient is not None:
        row["transient"] = {
            "images": transient["transient_images"],
            "crop": transient["transient_crop"],
            "logits_settled_ns": transient["latency_ns"]["network"],
            "argmax_settled_ns": transient["argmax_settle_ns"],
            "argmax_decided_ns": transient["argmax_decided_ns"],
            "last_layer_settled_ns": max(transient["latency_ns"]["per_layer"].values()),
            "energy_per_inference_J": transient["energy_per_inference_J"],
            "max_neuron_power_W": transient["max_neuron_power_W"],
            "max_neuron_power_by_kind_W": transient["max_neuron_power_by_kind_W"],
            "max_memristor_voltage_V": transient["max_memristor_voltage_V"],
        }
    else:
        row["transient_not_run"] = (
            "the main job integrates one preset's transient (--preset); run `memjax "
            "reproduce --preset NAME` (with --transient-crop 8 for super diodes on a CPU)"
        )
    return row


def presets_table(results: dict) -> str:
    """The presets side by side with the paper (issue 22, item 8), one aligned row each."""
    paper = results["paper"]
    head = ["preset", "accuracy", "DC neuron max", "bias/neuron", "memristor DC"]
    head += ["floor", "periods", "transient"]
    rows = [head]
    rows.append(["paper (Wang et al.)", "-", f"{paper['max_neuron_power_W'] * 1e6:.1f} uW"])
    rows[-1] += ["-", "-", "-", f"{paper['latency_ns']:.0f} ns", "-"]
    for name, row in results["presets"].items():
        power, transient, accuracy = row["dc_power"], row["transient"], row["accuracy"]
        peak = row["max_memristor_voltage_dc_V"]
        rows.append(
            [
                name,
                f"{accuracy:.2%}" if accuracy is not None else "-",
                f"{power['max_neuron_power_W'] * 1e6:.3g} uW" if power else "-",
                f"{row['opamp_bias']['max_per_neuron_W'] * 1e6:.3g} uW",
                f"{peak:.3g} V" if peak is not None else "-",
                f"{row['latency_floor_ns']:.3g} ns",
                f"{row['paper_style_periods']['latency_ns']:g} ns",
                f"argmax {transient['argmax_settled_ns']:.1f} ns, logits "
                f"{transient['logits_settled_ns']:.1f} ns"
                if transient
                else "not run",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in lines)


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
    if sweep and len(sweep) > 1:  # the transient's own GBW alone is no sweep
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

    power_figure = _power_by_preset(out, results)
    if power_figure is not None:
        paths.append(power_figure)

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


def _power_by_preset(out: Path, results: dict) -> Path | None:
    """The busiest neuron's DC power by component for every preset, its op-amps' bias apart,
    and the paper's 2.8 uW (None without DC power)."""
    import matplotlib.pyplot as plt

    powered = {n: r["dc_power"] for n, r in results["presets"].items() if r["dc_power"]}
    if not powered:
        return None
    figure, axes = plt.subplots(figsize=(9, 4))
    kinds = list(next(iter(powered.values()))["max_neuron_power_by_kind_W"])
    width = 0.8 / (len(kinds) + 1)
    for k, kind in enumerate(["total", *kinds]):
        values = [
            row["max_neuron_power_W"]
            if kind == "total"
            else row["max_neuron_power_by_kind_W"][kind]
            for row in powered.values()
        ]
        positions = np.arange(len(powered)) + (k - len(kinds) / 2) * width
        axes.bar(positions, np.maximum(values, 1e-12) * 1e6, width, label=kind)
    bias = [results["presets"][n]["opamp_bias"]["max_per_neuron_W"] for n in powered]
    axes.plot(
        np.arange(len(powered)),
        np.maximum(bias, 1e-12) * 1e6,
        "kx",
        label="op-amp bias of a neuron (apart)",
    )
    paper_power = results["paper"]["max_neuron_power_W"] * 1e6
    axes.axhline(paper_power, color="k", ls="--", lw=1, label="paper: 2.8 uW")
    axes.set_yscale("log")
    axes.set_ylim(bottom=1e-2)
    axes.set_xticks(range(len(powered)), list(powered), rotation=20, fontsize=7, ha="right")
    axes.set_ylabel("largest neuron power at DC (uW)")
    images = next(iter(powered.values()))["images"]
    axes.set_title(f"Power of the busiest neuron by component, per preset ({images} images)")
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    return _save(figure, out / "power_by_preset.png")


def _save(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path

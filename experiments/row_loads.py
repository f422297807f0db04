"""What each activation really drives, and what driving it costs: every preset with its
activation nodes loaded by R_L alone (``row_drive="ideal"``, a stated assumption) and by the
rows they feed (``row_drive="direct"``, :mod:`memjax.hardware.loads`).

    python experiments/row_loads.py [--checkpoint DIR] [--data FER2013] [--images 384]
        [--power-images 8] [--variants NAME ...] [--out results/row_loads]

A node (one channel at one position of a ReLU, clamp or max-pool output) drives one row in
every kernel copy that reads it, each row a G+ and a G- cell to a bit line at virtual
ground; its load is the sum of those cells, through the network's wiring (a basic unit's
kept half is read by a later unit, a down-sampling unit's input by both branches). Per
variant: the per-node loads (median and largest over the nodes of every stage that drives
rows), whether the preset's ReLU holds V_p against them (in the stages that end in a ReLU:
its steady output for an input at V_p, loaded by the stage's median and largest node; until
fcf3283 every driving stage was counted, clamps and pools included, under the ReLU's curve),
the steady-state accuracy and agreement with the
software model on the PrivateTest images ``memjax reproduce`` draws, both ways, and the DC
operating point's power (largest neuron, split by kind; the network's total) both ways.
Writes results.json (the command and the commit with it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from memjax.hardware.config import PRESETS
from memjax.hardware.loads import row_loads
from memjax.hardware.memristive import convert, nonlinear_blocks, steady_state_in_batches
from memjax.hardware.operating_point import operating_point, summarise_power
from memjax.provenance import provenance
from memjax.reproduce import find_data, main_job_images
from memjax.training import steps
from memjax.training.checkpoint import load_model, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {  # paper_plain_diode_relu: its diode-OR pool refuses row_drive="direct"
    "paper": ("paper", {}),
    "paper_calibrated": ("paper_calibrated", {}),
    # the calibrated ReLU with a series resistor that lets it drive its rows: 10 kohm,
    # the shared +-1 V supply (the bounded one is sized for R_L alone)
    "paper_calibrated_10k_shared": (
        "paper_calibrated",
        {"relu_series_resistance": 1e4, "relu_supply": "shared"},
    ),
    "near_ideal": ("near_ideal", {}),
}


def node_drive(relu, load: float, v_p: float) -> float:
    """The ReLU's steady output for an input at V_p with ``load`` (S) in parallel with its
    R_L, in V_p."""
    with jax.enable_x64(True):
        total = 1.0 / relu.load_resistance + load
        out = relu.steady_output(jnp.asarray([v_p], jnp.float64), jnp.asarray(total))
    return float(out[0]) / v_p


def loads_summary(net, relu, v_p: float) -> dict:
    """Per stage that drives rows, the median and largest load of its output nodes (S); for
    the stages that end in a ReLU, the ReLU's output at V_p under each (in V_p); their
    spread over the stages."""
    ends_in_relu = {step[0] for step in net.steps() if getattr(step[4], "relu", None)}
    stages = {}
    for name, load in row_loads(net.steps(), (48, 48)).items():
        load = np.asarray(load)
        if not load.max():
            continue  # the stem feeds a super-diode pool's op-amp inputs; the logits nothing
        median, largest = float(np.median(load)), float(load.max())
        stages[name] = {"median_S": median, "max_S": largest}
        if name in ends_in_relu:
            stages[name]["relu_output_at_median_load_v_p"] = node_drive(relu, median, v_p)
            stages[name]["relu_output_at_max_load_v_p"] = node_drive(relu, largest, v_p)
    medians = np.array([s["median_S"] for s in stages.values()])
    relus = [s["relu_output_at_median_load_v_p"] for s in stages.values() if len(s) > 2]
    return {
        "stages_driving_rows": len(stages),
        "median_of_stage_medians_S": float(np.median(medians)),
        "largest_S": max(s["max_S"] for s in stages.values()),
        "relu_stages": len(relus),
        "relu_stages_reaching_99pct_v_p_at_median_load": sum(o >= 0.99 for o in relus),
        "lowest_relu_output_at_median_load_v_p": min(relus),
        "stages": stages,
    }


def measure(model, hardware, images, labels, software, power_images: int) -> dict:
    """Accuracy, agreement and DC power of ``model`` converted under ``hardware``."""
    net = convert(model, hardware)
    started = time.time()
    logits, peaks = steady_state_in_batches(net, images, batch_size=64)
    seconds = time.time() - started
    predicted = logits.argmax(-1)
    points, _ = operating_point(net, images[:power_images])
    power = summarise_power(points)
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "agreement_with_software": float(np.mean(predicted == software)),
        "steady_state_seconds": seconds,
        "max_memristor_voltage_dc_V": max(peaks.values()),
        "max_neuron_power_W": power["max_neuron_power_W"],
        "max_neuron_stage": power["max_neuron_stage"],
        "max_neuron_power_by_kind_W": power["max_neuron_power_by_kind_W"],
        "network_power_by_kind_W": power["network_power_by_kind_W"],
        "network_power_W": power["network_power_W"],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints/shufflenetv2-1.0x"))
    parser.add_argument("--data", default=None, help="FER2013 (default: $MEMJAX_FER2013)")
    parser.add_argument("--images", type=int, default=384, help="reproduce's sample size")
    parser.add_argument("--power-images", type=int, default=8)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default="results/row_loads")
    args = parser.parse_args(argv)
    model, _ = load_model(Path(args.checkpoint))
    data, used = find_data(args.data)
    if data is None:
        raise SystemExit("row_loads: FER2013 is needed (--data or $MEMJAX_FER2013)")
    test = data.split("private_test")
    chosen, _ = main_job_images(len(test), dc_images=args.images)
    images, labels = test.images[chosen], test.labels[chosen]
    _, graph, params, batch_stats = steps.split_model(model)
    software = steps.predict_logits(steps.make_predict(graph), params, batch_stats, images)
    software = software.argmax(-1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "command": " ".join(
            ["python", "experiments/row_loads.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "checkpoint": args.checkpoint,
        "data": used,
        "images": int(len(chosen)),
        "power_images": args.power_images,
        "software_accuracy": float(np.mean(software == labels)),
        "variants": {},
        "provenance": provenance(),
    }
    for name in args.variants:
        preset, changes = VARIANTS[name]
        hardware = PRESETS[preset]().replace(**changes)
        relu = nonlinear_blocks(hardware)[0]
        net = convert(model, hardware)
        row = {
            "preset": preset,
            "changes": changes,
            "loads": loads_summary(net, relu, hardware.v_p),
        }
        for drive, transfer in (("ideal", "table"), ("direct", "exact")):
            chosen_hardware = hardware.replace(row_drive=drive, dc_transfer=transfer)
            row[drive] = measure(
                model, chosen_hardware, images, labels, software, args.power_images
            )
            print(
                f"{name}, {drive}: accuracy {row[drive]['accuracy']:.2%} (agreement "
                f"{row[drive]['agreement_with_software']:.2%}), largest neuron "
                f"{row[drive]['max_neuron_power_W'] * 1e6:.3g} uW, network "
                f"{row[drive]['network_power_W'] * 1e3:.3g} mW",
                flush=True,
            )
        results["variants"][name] = row
        write_json_atomic(out / "results.json", results)  # after every variant, atomically


if __name__ == "__main__":
    main()

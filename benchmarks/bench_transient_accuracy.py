"""Whole-network transient against a tight solve of the same circuit: how far each stepping at
its tolerances is from it, stage by stage, on the model whose signal crosses every stage.

    python benchmarks/bench_transient_accuracy.py [--crop 16] [--runs lanes per_neuron ...]
        [--checkpoint DIR] [--preset P]

Each run is ``STEPPING`` (its default tolerances) or ``STEPPING:RTOL:ATOL``. The reference is
the per-neuron stepping at rtol 1e-6 / atol 1e-7. The image is the main job's PrivateTest
image (``$MEMJAX_FER2013``), its central ``--crop`` pixels (the average pool rebuilt for the
smaller last map); the model is the circuit-trained plain-diode one unless ``--checkpoint``.
Printed per run: the stages whose outputs are more than 2e-3 V from the reference at any of
1,201 times (0-300 ns), the worst of them, the layers whose settling time is more than 3 %
off, the energy per inference and network latency against the reference's, the logits at
t_end, and the run's seconds (first run, with compilation). Issue 23's bars: outputs within
2e-3 V, energy within 1 %, per-layer settling within 3 %.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from memjax.circuits.waveform import sample
from memjax.cli import CIRCUIT_TRAINED
from memjax.hardware import network_layers
from memjax.hardware.config import PRESETS
from memjax.hardware.memristive import convert, with_pool_inputs
from memjax.hardware.report import summarise
from memjax.hardware.transient import TransientOptions, simulate
from memjax.reproduce import find_data, main_job_images
from memjax.training.checkpoint import load_model

PRESET = "paper_plain_diode_relu"
TIMES = np.concatenate([np.linspace(0, 10, 801), np.linspace(10, 300, 401)[1:]])


def options_of(run: str) -> TransientOptions:
    stepping, *tolerances = run.split(":")
    if tolerances:
        rtol, atol = (float(x) for x in tolerances)
        return TransientOptions(stepping=stepping, rtol=rtol, atol=atol)
    return TransientOptions(stepping=stepping)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=16)
    parser.add_argument("--runs", nargs="+", default=["lanes", "per_neuron"])
    parser.add_argument("--checkpoint", help="default: the preset's circuit-trained model")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=PRESET)
    args = parser.parse_args()
    data, _ = find_data(None)
    if data is None:
        raise SystemExit("bench_transient_accuracy: FER2013 not found; set MEMJAX_FER2013")
    test = data.split("private_test")
    _, chosen = main_job_images(len(test), 0)
    checkpoint = Path(args.checkpoint) if args.checkpoint else CIRCUIT_TRAINED[args.preset]
    model, _ = load_model(checkpoint)
    low = (48 - args.crop) // 2
    image = test.images[chosen][:, low : low + args.crop, low : low + args.crop]
    pooled = network_layers(model.config, args.crop)[-2].inputs_per_kernel
    net = with_pool_inputs(convert(model, PRESETS[args.preset]()), pooled)
    tight = TransientOptions(rtol=1e-6, atol=1e-7, max_steps=20000)
    print(
        f"{checkpoint.name}, {args.preset}, central {args.crop}x{args.crop} of the main job's image"
    )

    def run(options):
        start = time.perf_counter()
        records, logits = simulate(net, image, options)
        seconds = time.perf_counter() - start
        return records, logits, summarise(net, records, logits, options, 1), seconds

    reference, reference_logits, theirs, seconds = run(tight)
    print(f"reference rtol 1e-6 / atol 1e-7: {seconds:.0f} s")
    times = jnp.asarray(TIMES)
    for name in args.runs:
        options = options_of(name)
        records, logits, ours, seconds = run(options)
        gaps, late = [], []
        with jax.enable_x64(True):
            for (stage, _, record), (_, _, other) in zip(records, reference, strict=True):
                gap = np.max(
                    np.abs(np.asarray(sample(record.output, times) - sample(other.output, times)))
                )
                gaps.append((float(gap), stage))
                a, b = (s["latency_ns"]["per_layer"][stage] for s in (ours, theirs))
                if abs(a - b) > max(0.03 * b, 0.01):
                    late.append(stage)
        worst = max(gaps)
        energy = ours["energy_per_inference_J"] / theirs["energy_per_inference_J"] - 1
        off = np.max(np.abs(np.asarray(logits.values[-1] - reference_logits.values[-1])))
        print(
            f"{options.stepping} {options.rtol:g} / {options.atol:g}: "
            f"{sum(g > 2e-3 for g, _ in gaps)} stages > 2e-3 V (worst {worst[0]:.2g} V, "
            f"{worst[1]}), {len(late)} layers' settling > 3 % off, energy {energy:+.2%}, "
            f"latency {ours['latency_ns']['network']:.2f} ns against "
            f"{theirs['latency_ns']['network']:.2f}, logits at t_end {off:.1e}; {seconds:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()

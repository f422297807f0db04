"""Score a model trained through a circuit: its software twin and the converted chip's steady
state, on all of PublicTest and PrivateTest, one inference per image.

    python experiments/evaluate_circuit_trained.py [--checkpoint DIR] [--preset NAME]
        [--data PATH] [--out results/circuit_trained]

Defaults: the shipped plain-diode model (``checkpoints/shufflenetv2-1.0x-plain-diode``, from
``memjax train --init-from checkpoints/shufflenetv2-1.0x --circuit paper_plain_diode_relu
--recentre --epochs 4 --lr 3e-4 --warmup-epochs 0.2``) and its preset. The twin is the Flax
model through the preset's steady-state ReLU, clamp and max-pool curves
(``memjax.hardware.twin``); the chip is ``convert(model, preset)`` at steady state (8-bit
conductance levels, finite-gain op-amps: what the twin leaves out). Writes results.json with
the command and the commit (``provenance``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from memjax.hardware.config import PRESETS
from memjax.hardware.memristive import compile_steady_logits, convert
from memjax.hardware.twin import circuit_activations
from memjax.provenance import provenance
from memjax.reproduce import find_data
from memjax.training import steps
from memjax.training.checkpoint import load_model, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", default=str(ROOT / "checkpoints/shufflenetv2-1.0x-plain-diode")
    )
    parser.add_argument("--preset", default="paper_plain_diode_relu", choices=sorted(PRESETS))
    parser.add_argument("--data", help="FER2013 (as memjax reproduce finds it when not given)")
    parser.add_argument("--out", default="results/circuit_trained")
    args = parser.parse_args(argv)

    data, used = find_data(args.data)
    if data is None:
        print(used, file=sys.stderr)
        raise SystemExit(2)
    model, payload = load_model(Path(args.checkpoint))
    hardware = PRESETS[args.preset]()
    _, graph, params, stats = steps.split_model(model)
    twin = steps.make_predict(graph, circuit_activations(hardware, model.config))
    chip = compile_steady_logits(convert(model, hardware))
    results = {
        "command": " ".join(["python", "experiments/evaluate_circuit_trained.py", *sys.argv[1:]]),
        "checkpoint": args.checkpoint,
        "preset": args.preset,
        "data": used,
        "trained": payload.get("trained"),
        "provenance": provenance(),
        "accuracy": {},
    }
    for split in ("public_test", "private_test"):
        test = data.split(split)
        row = {"images": len(test)}
        for name, logits in (
            ("twin", lambda x: twin(params, stats, x)),
            ("chip_steady_state", chip),
        ):
            started = time.time()
            predicted = steps.in_fixed_batches(logits, test.images, 128).argmax(-1)
            row[name] = float(np.mean(predicted == test.labels))
            print(f"{split} {name}: {row[name]:.4f} ({time.time() - started:.0f} s)", flush=True)
        results["accuracy"][split] = row
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", results)
    print(json.dumps(results["accuracy"]))


if __name__ == "__main__":
    main()

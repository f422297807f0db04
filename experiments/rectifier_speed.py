"""What sets the calibrated preset's settling: the input layer's transient on a patch of a
PrivateTest image with one op-amp or load parameter changed at a time.

    python experiments/rectifier_speed.py [--data PATH] [--out results/rectifier_speed]

Variants of ``paper_calibrated()``: as is; GBW and slew rate x10; A0 1e7; R_L 100 kohm. For
each: the layer's settling (1 mV band, 1 % of V_p), the three slowest neurons' settling and
final outputs. Writes results.json with the command and the commit.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from memjax.circuits.waveform import Waveform
from memjax.hardware.config import PRESETS
from memjax.hardware.memristive import convert
from memjax.hardware.stages import plan
from memjax.hardware.transient import TransientOptions, float64, run_stage, settling_time
from memjax.provenance import provenance
from memjax.reproduce import find_data
from memjax.training.checkpoint import load_model, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="FER2013 (as memjax reproduce finds it when not given)")
    parser.add_argument("--out", default="results/rectifier_speed")
    args = parser.parse_args(argv)
    data, used = find_data(args.data)
    if data is None:
        print(used, file=sys.stderr)
        raise SystemExit(2)
    model, _ = load_model(ROOT / "checkpoints/shufflenetv2-1.0x")
    patch = np.asarray(data.split("private_test").images[:1, 20:24, 20:24], np.float64)
    base = PRESETS["paper_calibrated"]()
    variants = {
        "as is": {},
        "GBW and slew x10": {
            "opamp": dataclasses.replace(base.opamp, gain_bandwidth=1e10, slew_rate=1e10)
        },
        "A0 1e7": {"opamp": dataclasses.replace(base.opamp, open_loop_gain=1e7)},
        "R_L 100 kohm": {"relu_load_resistance": 1e5},
    }
    band = 0.01 * base.v_p
    results = {
        "command": " ".join(["python", "experiments/rectifier_speed.py", *sys.argv[1:]]),
        "data": used,
        "patch": "PrivateTest image 0, rows and columns 20-23",
        "band_V": band,
        "provenance": provenance(),
        "variants": {},
    }
    with jax.enable_x64(True):
        for name, changes in variants.items():
            hardware = base.replace(**changes)
            net = float64(convert(model, hardware))
            options = TransientOptions.for_hardware(hardware, t_end=1e-6)
            grid = jnp.asarray(options.grid())
            v = float64(net.input_voltages(patch))
            source = Waveform(
                jnp.asarray([0.0, grid[-1]]), jnp.stack([v, v]), jnp.zeros((2, *v.shape))
            )
            stage = plan(net)[0][-1]
            record = run_stage("input.conv", stage, source, jnp.zeros_like(v), grid, options)
            values = np.asarray(record.output.values).reshape(len(grid), -1)
            outside = np.abs(values - values[-1]) > band
            last = np.array(
                [grid[np.flatnonzero(o)[-1] + 1] if o.any() else 0.0 for o in outside.T], float
            )
            slowest = np.argsort(-last)[:3]
            row = {
                "layer_settling_ns": settling_time(record.output, band, float(grid[-1])),
                "slowest_neurons_settling_ns": last[slowest].tolist(),
                "slowest_neurons_final_V": values[-1, slowest].tolist(),
            }
            results["variants"][name] = row
            print(name, row, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", results)
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()

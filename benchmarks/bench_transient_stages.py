"""Where the whole-network transient spends its time, stage by stage.

    python benchmarks/bench_transient_stages.py [--checkpoint DIR] [--preset P] [--stepping S]

Runs the transient of one random 48x48 image twice (first run, then warm) and prints for
every stage: its unit's kind, the seconds it took in each run, the programs XLA compiled for
it and their compile seconds (first run), the solver steps it tried, its neurons and the warm
microseconds per neuron and step (none for a stage without state, read at its source's
knots). The totals end the table: beside the warm transient, the batch-1 Flax forward pass of
the same model measured in the same run, and their ratio (issue 23's target: 1,000). A
stage's seconds run from the end of the stage before to the end of its own (both steppings
synchronise with the host when a stage ends), so tracing, compiling and running are all in
them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np
from bench_network import best_rate  # noqa: E402  (same folder)
from jax import monitoring

from memjax.cli import DEFAULT_CHECKPOINT
from memjax.hardware.config import PRESETS
from memjax.hardware.memristive import convert
from memjax.hardware.transient import STEPPINGS, TransientOptions, simulate
from memjax.training import steps
from memjax.training.checkpoint import load_model

_COMPILES: list[float] = []


def _on_duration(event: str, duration: float, **_) -> None:
    if "backend_compile" in event:
        _COMPILES.append(duration)


def timed_run(circuit, images, options):
    """(records, per stage [(name, seconds, compiles, compile seconds)], total seconds)."""
    rows, mark = [], [time.perf_counter(), len(_COMPILES)]

    def progress(name):
        now, count = time.perf_counter(), len(_COMPILES)
        rows.append((name, now - mark[0], count - mark[1], sum(_COMPILES[mark[1] : count])))
        mark[:] = [now, count]

    start = time.perf_counter()
    records, _ = simulate(circuit, images, options, progress)
    return records, rows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper_plain_diode_relu")
    parser.add_argument("--stepping", choices=STEPPINGS, default="per_stage")
    args = parser.parse_args()
    monitoring.register_event_duration_secs_listener(_on_duration)
    model, _ = load_model(Path(args.checkpoint))
    _, eval_graph, params, batch_stats = steps.split_model(model)
    predict = jax.jit(steps.make_predict(eval_graph))
    circuit = convert(model, PRESETS[args.preset]())
    options = TransientOptions(stepping=args.stepping)
    images = np.random.default_rng(0).integers(0, 256, (1, 48, 48), dtype=np.uint8)
    forward = 1.0 / best_rate(lambda: predict(params, batch_stats, images), 1, repeats=5)
    _, first_rows, first = timed_run(circuit, images, options)
    records, warm_rows, warm = timed_run(circuit, images, options)
    print(f"{Path(args.checkpoint).name}, preset {args.preset}, {args.stepping} steps")
    print(
        f"{'stage':26}{'unit kind':>16}{'first s':>9}{'compiles':>9}{'compile s':>10}"
        f"{'warm s':>8}{'steps':>7}{'neurons':>9}{'us/neuron-step':>16}"
    )
    for (name, kind, record), one, two in zip(records, first_rows, warm_rows, strict=True):
        neurons = int(np.prod(record.output.values.shape[2:]))  # (knots, batch, ...)
        count = int(record.steps)
        per = f"{1e6 * two[1] / (count * neurons):.2f}" if count else "-"
        print(
            f"{name:26}{kind:>16}{one[1]:>9.2f}{one[2]:>9}{one[3]:>10.1f}{two[1]:>8.2f}"
            f"{count:>7}{neurons:>9}{per:>16}"
        )
    print(
        f"first run {first:.1f} s ({len(first_rows)} stages, {sum(r[2] for r in first_rows)} "
        f"programs compiled in {sum(r[3] for r in first_rows):.1f} s); warm {warm:.2f} s; "
        f"forward {forward:.2e} s; transient / forward {warm / forward:.0f}"
    )


if __name__ == "__main__":
    main()

"""Whole-network steady state of the memristive ShuffleNetV2 against the plain Flax forward
pass of the same model on the same batch, measured in one run.

    python benchmarks/bench_memristive.py [--models random shipped] [--inputs random fer2013]
        [--widths 0.5 1.0] [--batches 8 32 128] [--preset P] [--rounds 15]

Models: ``random``, random-init models at ``--widths``; ``shipped``, the trained model in
``--checkpoint`` (1.0x). Inputs: ``random``, uniformly random gray levels; ``fer2013``,
PrivateTest images (a fixed random draw of each batch size) of FER2013 from ``--data``,
$MEMJAX_FER2013 or the places ``memjax reproduce`` looks (skipped, with a message, if none).
Every model is timed on every kind of input, since the steady state's read-out path depends on
the data: a 1x1 or depthwise stage is read out with one convolution when a bound on the
batch's inputs proves that no bit-line amplifier reaches a rail
(``CrossbarStage.lines_cannot_saturate``), with both lines and their rails otherwise. The
column "one conv" gives how many of those stages (all but the stem) took the one-convolution
path for the timed batch; the stages that did not are listed after the table.

Four jitted programs per model and batch, timed in interleaved rounds (one call of each per
round, so that a change in the machine's load hits all four alike):

- Flax forward with its parameters as arguments, and with them closed over (constants);
- the circuit's ``steady_logits`` with the network as an argument (``eqx.filter_jit``), and
  compiled for the one network (``compile_steady_logits``: its conductances constants, as a
  programmed chip's are during inference).

Prints images/s (medians over rounds) and the ratio (circuit time / forward time per image)
of each circuit program against the faster of the two forward programs, from the medians and
from the best round of each program. Issue 4's target is a ratio <= 3.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from memjax.hardware.config import PRESETS
from memjax.hardware.memristive import CrossbarStage, compile_steady_logits, convert
from memjax.network import ShuffleNetConfig, build_model
from memjax.training import steps

SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "shufflenetv2-1.0x"
BASIC_STAGES = ("expand", "depthwise", "project")
DOWNSAMPLING_STAGES = (
    "left_depthwise",
    "left_project",
    "right_expand",
    "right_depthwise",
    "right_project",
)
"""The order of ``MemristiveShuffleNet.units`` (and of ``steady_logits``) within a unit."""


def interleaved_times(programs: dict, rounds: int) -> tuple[dict, dict]:
    """Median and best seconds per call of each program, one call of each per round."""
    for fn in programs.values():
        jax.block_until_ready(fn())  # compile
    times = {name: [] for name in programs}
    for _ in range(rounds):
        for name, fn in programs.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    return medians, {name: min(t) for name, t in times.items()}


def programs(model, preset: str) -> tuple[dict, object]:
    """The four programs of one model, each a function of the images; and its circuit."""
    _, eval_graph, params, batch_stats = steps.split_model(model)
    predict = steps.make_predict(eval_graph)
    circuit = convert(model, PRESETS[preset]())
    steady = eqx.filter_jit(lambda net, x: net.steady_logits(x))
    return {
        "flax args": functools.partial(jax.jit(predict), params, batch_stats),
        "flax const": jax.jit(functools.partial(predict, params, batch_stats)),
        "circuit args": functools.partial(steady, circuit),
        "circuit const": compile_steady_logits(circuit),
    }, circuit


def one_convolution_stages(circuit) -> tuple[list[str], Callable]:
    """The names of the stages that choose their read-out (every crossbar stage but the stem,
    in signal order), and a jitted function of the images giving, for each, whether the bound
    held for the batch (whether it was read out with one convolution).

    The choice is recorded by wrapping ``CrossbarStage.lines_cannot_saturate`` while the
    function is traced, so it is the steady state's own test on its own inputs."""
    names = []
    for i, (kind, stages) in enumerate(zip(circuit.unit_kinds, circuit.units, strict=True)):
        parts = BASIC_STAGES if kind == "basic" else DOWNSAMPLING_STAGES
        names += [f"unit {i} {part}" for part in parts[: len(stages)]]
    names += ["output 1x1", "fully connected"]
    original = CrossbarStage.lines_cannot_saturate
    proofs = []

    def recording(stage, v):
        holds = original(stage, v)
        proofs.append(holds)
        return holds

    def logits_and_proofs(net, images):
        proofs.clear()
        CrossbarStage.lines_cannot_saturate = recording
        try:
            logits = net.steady_logits(images)
        finally:
            CrossbarStage.lines_cannot_saturate = original
        if len(proofs) != len(names):
            raise RuntimeError(f"{len(proofs)} read-out choices for {len(names)} stages")
        return logits, jnp.stack(proofs)

    compiled = eqx.filter_jit(logits_and_proofs)
    return names, lambda images: np.asarray(compiled(circuit, images)[1])


def load_private_test(path: str | None):
    """PrivateTest images of FER2013, or None with the reason printed."""
    from memjax.errors import MemjaxError
    from memjax.reproduce import find_data

    try:
        data, said = find_data(path)
    except MemjaxError as error:
        data, said = None, str(error)
    print(said)
    return None if data is None else data.split("private_test").images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", choices=("random", "shipped"), nargs="+", default=["random", "shipped"]
    )
    parser.add_argument(
        "--inputs", choices=("random", "fer2013"), nargs="+", default=["random", "fer2013"]
    )
    parser.add_argument("--widths", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="near_ideal")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED)
    parser.add_argument("--data", help="FER2013 (.npz, .csv or folder)")
    args = parser.parse_args()
    private = load_private_test(args.data) if "fer2013" in args.inputs else None
    models = []
    if "random" in args.models:
        models += [
            (f"random {width}x", lambda w=width: build_model(ShuffleNetConfig(width=w)))
            for width in args.widths
        ]
    if "shipped" in args.models:
        from memjax.training.checkpoint import load_model

        models.append(("shipped 1.0x", lambda: load_model(args.checkpoint)[0]))
    print(
        f"preset {args.preset}, {jax.device_count()} {jax.default_backend()} device(s), "
        f"{args.rounds} interleaved rounds; img/s from the medians; ratios: circuit / faster "
        "forward, from the medians and from the best rounds"
    )
    print(
        f"{'model':>13}{'batch':>6}{'inputs':>8}{'flax args':>11}{'flax const':>12}"
        f"{'circuit args':>14}{'circuit const':>15}{'ratio args':>12}{'ratio const':>13}"
        f"{'best args':>11}{'best const':>12}{'one conv':>10}"
    )
    fallbacks = []
    for label, make in models:
        fns, circuit = programs(make(), args.preset)
        names, read_outs = one_convolution_stages(circuit)
        for batch in args.batches:
            rng = np.random.default_rng(0)
            inputs = {}
            if "random" in args.inputs:
                inputs["random"] = rng.integers(0, 256, (batch, 48, 48), dtype=np.uint8)
            if "fer2013" in args.inputs and private is not None:
                chosen = np.random.default_rng(0).choice(len(private), batch, replace=False)
                inputs["fer2013"] = private[np.sort(chosen)]
            for kind, images in inputs.items():
                calls = {name: functools.partial(fn, images) for name, fn in fns.items()}
                medians, bests = interleaved_times(calls, args.rounds)
                forward = min(medians["flax args"], medians["flax const"])
                best_forward = min(bests["flax args"], bests["flax const"])
                rate = {name: batch / s for name, s in medians.items()}
                holds = read_outs(images)
                print(
                    f"{label:>13}{batch:>6}{kind:>8}{rate['flax args']:>11.0f}"
                    f"{rate['flax const']:>12.0f}{rate['circuit args']:>14.0f}"
                    f"{rate['circuit const']:>15.0f}"
                    f"{medians['circuit args'] / forward:>12.2f}"
                    f"{medians['circuit const'] / forward:>13.2f}"
                    f"{bests['circuit args'] / best_forward:>11.2f}"
                    f"{bests['circuit const'] / best_forward:>12.2f}"
                    f"{f'{int(holds.sum())}/{len(holds)}':>10}",
                    flush=True,
                )
                if not holds.all():
                    missed = ", ".join(n for n, h in zip(names, holds, strict=True) if not h)
                    fallbacks.append(f"{label}, batch {batch}, {kind} inputs: {missed}")
    print("stages read out with both lines (the bound did not hold for the batch):")
    for line in fallbacks or ["none"]:
        print(f"  {line}")


if __name__ == "__main__":
    main()

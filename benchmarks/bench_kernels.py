"""10,000 neurons (64-input (M+1)x2 crossbar kernel + amplifiers + diode ReLU/limiter):
one batched memjax transient against ngspice on the same circuits (super-diode or plain ReLU).

ngspice is timed in two framings (issue 21, item 6), each on neurons drawn from the same
population, its time per neuron scaled to the whole population:

- one ``ngspice -b`` process per neuron, simulating alone (no waveforms written), on
  ``--spice-sample`` neurons; its start-up is included, and printed apart (an almost empty
  deck timed alike), with the per-neuron time less that start-up beside it; and the same
  processes run ``--spice-processes`` at a time (default: one per CPU core, as memjax may use
  every core), timed as the wall time of the whole sample;
- many neurons in one netlist (``--deck-sizes``): each neuron's own netlist, as
  ``kernel_relu_netlist`` writes it, becomes a subcircuit of one deck run by one process, so no
  per-process start-up; but one time-step sequence and one Newton iteration for all of them.
  A few neurons' waveforms from each deck are checked against their own netlist's run.

memjax is timed warm (best of ``--repeats`` calls of the compiled program) and cold (tracing,
XLA compilation and one run: the first call in this process, the script enabling no
persistent compilation cache, then again after ``jax.clear_caches()``; the best counts).
Warm memjax and every ngspice framing are timed in the same interleaved rounds (one of each
per round, best per item over the rounds), so that a change in the machine's load hits both
sides alike. Printed: seconds for the whole population and the speed-up of memjax, warm and
cold, against every framing.

A second ngspice run of each sampled per-neuron netlist writes the waveforms; the deviation
columns compare memjax and that run with a fine ngspice reference: final output (fraction of
V_p = 1 V), settling time and energy (relative).

    python benchmarks/bench_kernels.py [--neurons 10000] [--spice-sample 50]
        [--deck-sizes 3 10 30 100 1000] [--relu plain|super] [--spice-step S]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from memjax.circuits import Chain, ConductanceMapping, PairKernel, transient  # noqa: E402
from memjax.circuits.diodes import DiodeReLU  # noqa: E402
from memjax.circuits.simulate import _last_crossing  # noqa: E402
from memjax.circuits.spice import kernel_relu_netlist, run_ngspice, simulate_netlist  # noqa: E402
from memjax.devices import Diode, OpAmp  # noqa: E402

M, T_END, V_P, EPSILON = 64, 30e-9, 1.0, 0.01
AMP = OpAmp(quiescent_power=1e-6)
PLAIN_DIODE_DROP = 0.55
"""V, the limiter diode's forward drop at its clamping current (as in tests/test_blocks.py)."""

EMPTY_DECK = "* ngspice start-up\nV1 a 0 DC 1\nR1 a 0 1k\n.op\n.end\n"
"""What the start-up is timed on: one resistor's operating point."""


def neurons(count: int, seed: int = 0, relu: str = "super"):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(count, M)) * 0.2
    bias = rng.normal(size=count) * 0.1
    inputs = rng.uniform(0.0, V_P, (count, M))
    kernels = ConductanceMapping(1e-6, 1e-4).to_conductances(weights, bias)
    if relu == "super":
        block = DiodeReLU(Diode(), 10e3, V_P, opamp=AMP, super_diode=True)
    else:  # the limiter's diode adds its forward drop to the reference
        block = DiodeReLU(Diode(), 10e3, V_P - PLAIN_DIODE_DROP)
    chains = Chain((PairKernel(kernels, AMP, difference_gain=4.0), block))
    return chains, jnp.asarray(inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=10_000)
    parser.add_argument("--spice-sample", type=int, default=50)
    parser.add_argument(
        "--deck-sizes",
        type=int,
        nargs="*",
        default=[3, 10, 30, 100, 1000],
        help="neurons per ngspice deck in the many-neurons-in-one-netlist framing",
    )
    parser.add_argument(
        "--check", type=int, default=3, help="neurons of each deck whose waveforms are checked"
    )
    parser.add_argument(
        "--relu",
        choices=("plain", "super"),
        default="plain",
        help="ReLU/limiter variant: plain diodes (the paper's diode ReLU), or op-amp super diodes",
    )
    parser.add_argument(
        "--reference-step",
        type=float,
        default=5e-12,
        help="ngspice step of the reference runs the deviations are measured against, s",
    )
    parser.add_argument("--rtol", type=float, default=1e-4, help="memjax's relative tolerance")
    parser.add_argument(
        "--spice-reltol", type=float, default=1e-6, help="ngspice's reltol in the timed runs"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="interleaved rounds (memjax warm, every ngspice framing); the best of each counts",
    )
    parser.add_argument(
        "--cold-repeats",
        type=int,
        default=2,
        help="cold memjax calls: the first in this process, then after jax.clear_caches()",
    )
    parser.add_argument(
        "--spice-processes",
        type=int,
        default=os.cpu_count(),
        help="also time the per-neuron ngspice processes this many at a time (wall time of the "
        "whole sample; 1: not timed)",
    )
    parser.add_argument("--chunk", type=int, default=200, help="neurons vmapped together")
    parser.add_argument(
        "--samples", type=int, default=151, help="memjax output samples over the 30 ns"
    )
    parser.add_argument(
        "--spice-step",
        type=float,
        help="ngspice's output and largest time step, s (default: memjax's sample spacing)",
    )
    args = parser.parse_args()
    spice_step = args.spice_step or T_END / (args.samples - 1)
    if max([args.spice_sample, *args.deck_sizes]) > args.neurons:
        parser.error("--spice-sample and --deck-sizes must not exceed --neurons")
    chains, inputs = neurons(args.neurons, relu=args.relu)

    # Batch over the conductances only: the op-amp and diode parameters are shared. Chunks of
    # neurons are vmapped (one adaptive step sequence per neuron) and run one after another,
    # which keeps the working set in cache.
    def per_neuron(x):
        return eqx.is_array(x) and x.ndim > 0 and x.shape[0] == args.neurons

    batched = eqx.filter(chains, per_neuron)
    shared = eqx.filter(chains, per_neuron, inverse=True)

    def program():
        return jax.jit(
            lambda c, v: jax.lax.map(
                lambda cv: _finals(eqx.combine(cv[0], shared), cv[1], args.samples, args.rtol),
                (c, v),
                batch_size=args.chunk,
            )
        )

    # Cold: tracing, compilation and one run. The first call is this process's first; the
    # others start from jax.clear_caches() and a new jit object.
    cold = []
    for repeat in range(args.cold_repeats):
        if repeat:
            jax.clear_caches()
        run = program()
        start = time.perf_counter()
        jax.block_until_ready(run(batched, inputs))
        cold.append(time.perf_counter() - start)

    # Every ngspice netlist the framings need, written as the tests write them.
    order = np.random.default_rng(1).permutation(args.neurons)
    needed = max([args.spice_sample, *args.deck_sizes])
    netlists = [
        kernel_relu_netlist(
            _neuron(chains, int(index), args.neurons),
            np.asarray(inputs[index]),
            T_END,
            spice_step,
        ).replace("reltol=1e-6", f"reltol={args.spice_reltol:g}")
        for index in order[:needed]
    ]
    decks = {size: multi_neuron_deck(netlists[:size]) for size in args.deck_sizes}

    # Warm memjax and every ngspice framing, one of each per round.
    warm = startup = parallel = math.inf
    warm_cpu, spice_wall, spice_cpu = 0.0, 0.0, 0.0
    single = np.full(args.spice_sample, math.inf)
    deck_seconds = dict.fromkeys(args.deck_sizes, math.inf)
    for _ in range(args.repeats):
        start, cpu = time.perf_counter(), time.process_time()
        finals, settling, energy = jax.block_until_ready(run(batched, inputs))
        seconds = time.perf_counter() - start
        if seconds < warm:
            warm, warm_cpu = seconds, time.process_time() - cpu
        startup = min(startup, _ngspice_seconds(EMPTY_DECK)[0])
        for i, netlist in enumerate(netlists[: args.spice_sample]):
            wall, cpu = _ngspice_seconds(netlist)
            single[i] = min(single[i], wall)
            spice_wall, spice_cpu = spice_wall + wall, spice_cpu + cpu
        for size, deck in decks.items():
            deck_seconds[size] = min(deck_seconds[size], _ngspice_seconds(deck)[0])
        if args.spice_processes > 1:
            start = time.perf_counter()
            with ThreadPoolExecutor(args.spice_processes) as pool:
                list(pool.map(_ngspice_seconds, netlists[: args.spice_sample]))
            parallel = min(parallel, (time.perf_counter() - start) / args.spice_sample)

    # Accuracy: memjax and the timed ngspice setting against a fine ngspice reference; every
    # deck against its neurons' own netlists.
    ours, coarse, reference = [], [], []
    for index, netlist in zip(order[: args.spice_sample], netlists, strict=False):
        chain, v = _neuron(chains, int(index), args.neurons), np.asarray(inputs[index])
        coarse.append(_spice_metrics(netlist))
        reference.append(_spice_metrics(kernel_relu_netlist(chain, v, T_END, args.reference_step)))
        ours.append((float(finals[index]), float(settling[index]), float(energy[index])))
    checked = order[: min(args.check, *args.deck_sizes)]
    deck_checks = _deck_deviations(
        netlists[: len(checked)],
        [
            kernel_relu_netlist(
                _neuron(chains, int(index), args.neurons),
                np.asarray(inputs[index]),
                T_END,
                args.reference_step,
            )
            for index in checked
        ],
        decks,
    )

    per_process = float(np.mean(single))
    framings = [
        ("one process per neuron", per_process, f"{args.spice_sample} neurons"),
        (
            "  the same less start-up",
            per_process - startup,
            f"start-up {1e3 * startup:.1f} ms",
        ),
    ]
    if args.spice_processes > 1:
        framings.append(
            (
                f"  the same, {args.spice_processes} at a time",
                parallel,
                f"{args.spice_sample} neurons",
            )
        )
    framings += [
        (f"{size} neurons in one deck", deck_seconds[size] / size, f"{size} neurons")
        for size in args.deck_sizes
    ]
    cold_best = min(cold)
    print(
        f"{args.neurons} neurons: {M}-input (M+1)x2 kernel + {args.relu}-diode ReLU/limiter, "
        f"t_end = {T_END * 1e9:.0f} ns, float64, {jax.device_count()} "
        f"{jax.default_backend()} device(s); memjax {args.samples} samples in chunks of "
        f"{args.chunk}, rtol {args.rtol:g}; ngspice step {spice_step * 1e12:.0f} ps, reltol "
        f"{args.spice_reltol:g}; best of {args.repeats} interleaved rounds"
    )
    print(
        f"memjax warm {warm:.2f} s ({1e3 * warm / args.neurons:.3f} ms per neuron, "
        f"{warm_cpu / warm:.2f} CPU s per s); cold (compile + run) "
        + ", ".join(f"{s:.1f}" for s in cold)
        + f" s (first in this process, then after jax.clear_caches()); ngspice "
        f"{spice_cpu / spice_wall:.2f} CPU s per s (one process per neuron)"
    )
    print(
        f"{'ngspice framing':30}{'timed on':>18}{'ms/neuron':>11}"
        f"{'s for ' + str(args.neurons):>12}{'x warm':>9}{'x cold':>9}"
    )
    for name, seconds, timed_on in framings:
        total = seconds * args.neurons
        print(
            f"{name:30}{timed_on:>18}{1e3 * seconds:>11.2f}{total:>12.1f}"
            f"{_times(total / warm):>9}{_times(total / cold_best):>9}"
        )
    # the cheapest ngspice run that exists (not the floor with the start-up subtracted)
    cheapest = min(seconds for name, seconds, _ in framings if "less start-up" not in name)
    compile_seconds = cold_best - warm
    per_neuron_gain = cheapest - warm / args.neurons
    print(
        f"(x cold: against the best cold call, {cold_best:.1f} s. memjax cold is as fast as the "
        f"cheapest ngspice framing that runs (not the floor less start-up) from "
        f"~{compile_seconds / per_neuron_gain:,.0f} neurons on: compilation "
        f"{compile_seconds:.1f} s / {1e3 * per_neuron_gain:.2f} ms per neuron)"
    )
    print(
        f"largest deviation from ngspice at {args.reference_step * 1e12:.0f} ps on the sample "
        "(final % of V_p / settling % / energy %):"
    )
    for name, worst in (
        ("memjax", _worst_deviation(ours, reference)),
        (f"ngspice {spice_step * 1e12:.0f} ps", _worst_deviation(coarse, reference)),
    ):
        print(
            f"  {name:<16} {100 * worst[0]:.4f} / {100 * worst[1]:.3f} / {100 * worst[2]:.4f}"
            f"   ({'within' if _within(worst) else 'OUTSIDE'} the tests' 0.5 / 3 / 3)"
        )
    print(
        f"decks against their first neurons' own netlists (largest |dV| over {T_END * 1e9:.0f} "
        "ns of the output / the kernel output, V; settling time %):"
    )
    for key, (d_out, d_kernel, d_settling, count) in deck_checks.items():
        name = (
            f"own netlists at {args.reference_step * 1e12:.0f} ps (yardstick)"
            if key == "reference"
            else f"{key} neurons in one deck"
        )
        print(
            f"  {name:<34} {count} neurons: {d_out:.2e} / {d_kernel:.2e} V; "
            f"{100 * d_settling:.3f} %"
        )


def _times(ratio: float) -> str:
    return f"{ratio:.0f}" if ratio >= 10 else f"{ratio:.1f}"


def multi_neuron_deck(netlists: list[str]) -> str:
    """One ngspice deck simulating every netlist of ``netlists`` (each one neuron, as
    ``kernel_relu_netlist`` writes it): each netlist's elements become a subcircuit
    ``neuron<j>`` whose port is its output ``ro``, instantiated as ``Xn<j>`` with its output
    at node ``o<j>``. The op-amp subcircuit, diode model and options, identical in every
    netlist, are written once; ``.save all`` as in each netlist, with every neuron's diode
    currents under their expanded names (``@d.xn<j>.dr1[id]``).

    (If decks like this were wanted beyond this benchmark, a ``kernel_relu_deck`` beside
    ``kernel_relu_netlist`` in ``memjax/circuits/spice.py`` would be their place.)"""
    shared, controls = None, None
    lines, diodes = [f"* {len(netlists)} memjax kernel + ReLU/limiter neurons"], []
    for j, netlist in enumerate(netlists):
        definitions, elements, control = _split_netlist(netlist)
        if shared is None:
            shared, controls = definitions, control
            lines += definitions
        elif (definitions, control) != (shared, controls):
            raise ValueError("the neurons' netlists differ outside their elements")
        lines += [f".subckt neuron{j} ro", *elements, ".ends", f"Xn{j} o{j} neuron{j}"]
        diodes += [f"@d.xn{j}.{e.split()[0].lower()}[id]" for e in elements if e[:1] == "D"]
    for line in controls:
        lines.append(" ".join([".save all", *diodes]) if line.startswith(".save") else line)
    return "\n".join([*lines, ".end"]) + "\n"


def _split_netlist(netlist: str):
    """(subcircuit and model definitions, elements, dot-commands other than .end)."""
    definitions, elements, control, inside = [], [], [], False
    for line in netlist.splitlines():
        if line.startswith(".subckt"):
            inside = True
        if inside or line.startswith(".model"):
            definitions.append(line)
            inside = inside and not line.startswith(".ends")
        elif line.startswith("*") or not line.strip() or line.strip() == ".end":
            continue
        elif line.startswith("."):
            control.append(line)
        else:
            elements.append(line)
    return definitions, elements, control


def _neuron(chains, index: int, count: int):
    return jax.tree.map(
        lambda x: x[index] if eqx.is_array(x) and x.ndim and x.shape[0] == count else x, chains
    )


def _deck_deviations(netlists: list[str], references: list[str], decks: dict) -> dict:
    """Per deck size: largest |dV| between the deck's waveforms and those of its first
    neurons' own netlists (output, kernel output; interpolated onto a 20 ps grid), and largest
    relative difference of the settling times read from them. As a yardstick, under key
    "reference": the same between those neurons' own netlists and the fine reference runs."""
    grid = np.linspace(0.0, T_END, 1501)
    names = ("v(ro)", "v(kyo)")

    def waveforms(run, vectors):
        return [np.interp(grid, run["time"], run[v]) for v in vectors] + [
            _settling_time(run["time"], run[vectors[0]], run[vectors[0]][-1], EPSILON * V_P)
        ]

    alone = [waveforms(run_ngspice(n, list(names)), names) for n in netlists]
    runs = {"reference": [waveforms(run_ngspice(n, list(names)), names) for n in references]}
    for size, deck in decks.items():
        count = min(size, len(netlists))
        vectors = [(f"v(o{j})", f"v(xn{j}.kyo)") for j in range(count)]
        together = run_ngspice(deck, [v for pair in vectors for v in pair])
        runs[size] = [waveforms(together, pair) for pair in vectors]
    result = {}
    for key, other in runs.items():
        worst = np.zeros(3)
        for (out, kernel, settling), (out2, kernel2, settling2) in zip(alone, other):
            gaps = [np.max(np.abs(out - out2)), np.max(np.abs(kernel - kernel2)), 0.0]
            if settling > 0.2e-9:  # resolvable, as in _worst_deviation
                gaps[2] = abs(settling2 - settling) / settling
            worst = np.maximum(worst, gaps)
        result[key] = (*worst, len(other))
    return result


def _ngspice_seconds(netlist: str) -> tuple[float, float]:
    """Wall time of ``ngspice -b`` simulating the netlist and writing nothing (its start-up
    included): the cost of the simulation alone; and the CPU time of the process."""
    control = ".control\nrun\nquit\n.endc\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "circuit.cir"
        path.write_text(netlist.replace("\n.end\n", f"\n{control}.end\n"))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(["ngspice", "-b", str(path)], capture_output=True, check=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def _settling_time(ts, out, final, band):
    """The transient's own estimator (last crossing into the band, linear between samples)
    applied to an ngspice waveform."""
    outputs = jnp.asarray(out)[:, None]
    outside = jnp.abs(outputs[:, 0] - final) > band
    return float(_last_crossing(jnp.asarray(ts), outputs, final, band, outside))


def _spice_metrics(netlist: str):
    """(final output, settling time, energy) of one ngspice run of the netlist."""
    spice = simulate_netlist(netlist, AMP, ["v(ro)"])
    out = spice["v(ro)"]
    energy = sum(np.trapezoid(p, spice["time"]) for p in spice["power"].values())
    return out[-1], _settling_time(spice["time"], out, out[-1], EPSILON * V_P), energy


def _worst_deviation(results, reference):
    """Largest |final| deviation (fraction of V_p), relative settling and energy deviations;
    settling only where the reference settles later than 0.2 ns (resolvable)."""
    results, reference = np.asarray(results), np.asarray(reference)
    final = np.abs(results[:, 0] - reference[:, 0]) / V_P
    slow = reference[:, 1] > 0.2e-9
    settling = np.abs(results[slow, 1] - reference[slow, 1]) / reference[slow, 1]
    energy = np.abs(results[:, 2] - reference[:, 2]) / reference[:, 2]
    return final.max(), settling.max(initial=0.0), energy.max()


def _within(worst) -> bool:
    return worst[0] <= 0.005 and worst[1] <= 0.03 and worst[2] <= 0.03


def _finals(chain, inputs, samples, rtol):
    r = transient(chain, inputs, T_END, samples=samples, rtol=rtol, atol=1e-3 * rtol)
    return r.final[0], r.settling_time, r.energy


if __name__ == "__main__":
    main()

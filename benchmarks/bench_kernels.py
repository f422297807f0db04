"""10,000 neurons (64-input (M+1)x2 crossbar kernel + amplifiers + diode ReLU/limiter):
one batched memjax transient against ngspice on the same circuits (super-diode or plain ReLU).

ngspice simulates one netlist per neuron; it is timed on a random sample of the neurons, running
the simulation alone (no waveforms written), and its time per neuron is scaled to the whole
population (stated in the output). A second ngspice run of each sampled netlist writes the
waveforms; the deviation columns compare memjax with it: final output (fraction of
V_p = 1 V), settling time and energy (relative).

    python benchmarks/bench_kernels.py [--neurons 10000] [--spice-sample 50] [--spice-step S]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import tempfile
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from memjax.circuits import Chain, ConductanceMapping, PairKernel, transient  # noqa: E402
from memjax.circuits.diodes import DiodeReLU  # noqa: E402
from memjax.circuits.simulate import _last_crossing  # noqa: E402
from memjax.circuits.spice import kernel_relu_netlist, simulate_netlist  # noqa: E402
from memjax.devices import Diode, OpAmp  # noqa: E402

M, T_END, V_P, EPSILON = 64, 30e-9, 1.0, 0.01
AMP = OpAmp(quiescent_power=1e-6)
PLAIN_DIODE_DROP = 0.55
"""V, the limiter diode's forward drop at its clamping current (as in tests/test_blocks.py)."""


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
    parser.add_argument("--repeats", type=int, default=3, help="memjax runs; the best counts")
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
    chains, inputs = neurons(args.neurons, relu=args.relu)

    # Batch over the conductances only: the op-amp and diode parameters are shared. Chunks of
    # neurons are vmapped (one adaptive step sequence per neuron) and run one after another,
    # which keeps the working set in cache.
    def per_neuron(x):
        return eqx.is_array(x) and x.ndim > 0 and x.shape[0] == args.neurons

    batched = eqx.filter(chains, per_neuron)
    shared = eqx.filter(chains, per_neuron, inverse=True)
    run = jax.jit(
        lambda c, v: jax.lax.map(
            lambda cv: _finals(eqx.combine(cv[0], shared), cv[1], args.samples, args.rtol),
            (c, v),
            batch_size=args.chunk,
        )
    )
    start = time.perf_counter()
    jax.block_until_ready(run(batched, inputs))
    compile_and_run = time.perf_counter() - start
    memjax_seconds = math.inf
    for _ in range(args.repeats):  # the best of a few runs, as timeit does
        start = time.perf_counter()
        finals, settling, energy = jax.block_until_ready(run(batched, inputs))
        memjax_seconds = min(memjax_seconds, time.perf_counter() - start)

    sample = np.random.default_rng(1).choice(args.neurons, args.spice_sample, replace=False)
    ours, coarse, reference, spice_seconds = [], [], [], 0.0
    for index in sample:
        chain = jax.tree.map(
            lambda x, index=index: (
                x[index] if eqx.is_array(x) and x.ndim and x.shape[0] == args.neurons else x
            ),
            chains,
        )
        v = np.asarray(inputs[index])
        netlist = kernel_relu_netlist(chain, v, T_END, spice_step).replace(
            "reltol=1e-6", f"reltol={args.spice_reltol:g}"
        )
        spice_seconds += _ngspice_seconds(netlist)
        coarse.append(_spice_metrics(netlist))
        reference.append(_spice_metrics(kernel_relu_netlist(chain, v, T_END, args.reference_step)))
        ours.append((float(finals[index]), float(settling[index]), float(energy[index])))
    per_neuron = spice_seconds / len(sample)
    spice_total = per_neuron * args.neurons
    worst_ours = _worst_deviation(ours, reference)
    worst_spice = _worst_deviation(coarse, reference)
    print(
        f"{args.neurons} neurons: {M}-input (M+1)x2 kernel + {args.relu}-diode ReLU/limiter, "
        f"t_end = {T_END * 1e9:.0f} ns, float64, {jax.device_count()} "
        f"{jax.default_backend()} device(s); memjax {args.samples} samples in chunks of "
        f"{args.chunk}, ngspice step "
        f"{spice_step * 1e12:.0f} ps"
    )
    print(f"{'':28}{'seconds':>10}{'per neuron (ms)':>18}")
    print(
        f"{'memjax (one batched run)':28}{memjax_seconds:>10.2f}"
        f"{1e3 * memjax_seconds / args.neurons:>18.3f}   (first call with compile: "
        f"{compile_and_run:.1f} s)"
    )
    print(
        f"{'ngspice (scaled from ' + str(len(sample)) + ')':28}{spice_total:>10.1f}"
        f"{1e3 * per_neuron:>18.3f}"
    )
    print(f"speed-up: {spice_total / memjax_seconds:.0f}x")
    print(
        f"largest deviation from ngspice at {args.reference_step * 1e12:.0f} ps on the sample "
        "(final % of V_p / settling % / energy %):"
    )
    for name, worst in (
        ("memjax", worst_ours),
        (f"ngspice {spice_step * 1e12:.0f} ps", worst_spice),
    ):
        print(
            f"  {name:<16} {100 * worst[0]:.4f} / {100 * worst[1]:.3f} / {100 * worst[2]:.4f}"
            f"   ({'within' if _within(worst) else 'OUTSIDE'} the tests' 0.5 / 3 / 3)"
        )


def _ngspice_seconds(netlist: str) -> float:
    """Wall time of ``ngspice -b`` simulating the netlist and writing nothing (its start-up,
    ~7 ms here, included): the cost of the simulation alone."""
    control = ".control\nrun\nquit\n.endc\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "circuit.cir"
        path.write_text(netlist.replace("\n.end\n", f"\n{control}.end\n"))
        start = time.perf_counter()
        subprocess.run(["ngspice", "-b", str(path)], capture_output=True, check=True)
        return time.perf_counter() - start


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

"""Which diffrax solver for the circuit transients: steps, wall time and accuracy.

A 64-input (M+1)x2 kernel + super-diode ReLU/limiter, step input, 30 ns, against a reference
run at rtol 1e-11. Printed per solver: accepted steps, milliseconds per transient (median of
5, jitted), largest output deviation from the reference (fraction of 1 V), settling-time
deviation. Implicit solvers run with time in ns (as ``transient`` does) and float64.

    python benchmarks/bench_solvers.py
"""

from __future__ import annotations

import time

import jax

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from memjax.circuits import Chain, ConductanceMapping, PairKernel, transient  # noqa: E402
from memjax.circuits.diodes import DiodeReLU  # noqa: E402
from memjax.devices import Diode, OpAmp  # noqa: E402


def main() -> None:
    rng = np.random.default_rng(0)
    amp = OpAmp(quiescent_power=1e-6)
    kernel = ConductanceMapping(1e-6, 1e-4).to_conductances(rng.normal(size=64) * 0.2, 0.1)
    chain = Chain(
        (
            PairKernel(kernel, amp, difference_gain=4.0),
            DiodeReLU(Diode(), 10e3, 1.0, opamp=amp, super_diode=True),
        )
    )
    inputs = jnp.asarray(rng.uniform(0.0, 1.0, 64))
    reference = transient(chain, inputs, 30e-9, rtol=1e-11, atol=1e-14)
    print(
        f"{'solver':<12}{'rtol':>8}{'steps':>8}{'ms/run':>10}{'max |dV| (V)':>15}"
        f"{'settling dev':>14}"
    )
    for name, solver, rtol in [
        ("Tsit5", diffrax.Tsit5(), 1e-6),
        ("Dopri5", diffrax.Dopri5(), 1e-6),
        ("Bosh3", diffrax.Bosh3(), 1e-6),
        ("Kvaerno5", diffrax.Kvaerno5(), 1e-6),
        ("Kvaerno3", diffrax.Kvaerno3(), 1e-6),
    ]:
        run = jax.jit(
            lambda v, solver=solver, rtol=rtol: transient(
                chain, v, 30e-9, solver=solver, rtol=rtol, atol=rtol * 1e-3
            )
        )
        result = jax.block_until_ready(run(inputs))
        times = []
        for _ in range(5):
            start = time.perf_counter()
            jax.block_until_ready(run(inputs))
            times.append(time.perf_counter() - start)
        deviation = float(jnp.max(jnp.abs(result.outputs - reference.outputs)))
        settle = abs(float(result.settling_time / reference.settling_time) - 1)
        print(
            f"{name:<12}{rtol:>8.0e}{int(result.steps):>8}{1e3 * np.median(times):>10.2f}"
            f"{deviation:>15.2e}{100 * settle:>13.3f}%"
        )


if __name__ == "__main__":
    main()

"""Crossbar kernels: mapping, steady state vs closed forms and the transient, ngspice agreement."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import spice_references

from memjax.circuits import (
    ColumnKernel,
    ConductanceMapping,
    PairKernel,
    steady_outputs,
    transient,
)
from memjax.circuits.spice import (
    column_kernel_netlist,
    pair_kernel_netlist,
)
from memjax.devices import OpAmp
from memjax.errors import MemjaxError

MAPPING = ConductanceMapping(g_min=1e-6, g_max=1e-4, bias_voltage=1.0)


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def random_kernel(seed, m=9):
    rng = np.random.default_rng(seed)
    weights, bias = rng.normal(size=m) * 0.5, rng.normal() * 0.2
    inputs = rng.uniform(0.0, 1.0, m)  # word-line voltages within [0, V_p = 1 V]
    return MAPPING.to_conductances(weights, bias), weights, bias, inputs


def test_mapping_round_trip_and_levels():
    kernel, weights, bias, _ = random_kernel(0)
    back_w, back_b = ConductanceMapping.to_weights(kernel)
    np.testing.assert_allclose(back_w, weights, atol=1e-12)
    np.testing.assert_allclose(back_b, bias, atol=1e-12)
    assert float(kernel.positive.min()) >= MAPPING.g_min - 1e-18
    assert float(kernel.positive.max()) <= MAPPING.g_max + 1e-18
    quantized = ConductanceMapping(1e-6, 1e-4, levels=16).to_conductances(weights, bias)
    steps = (np.asarray(quantized.positive) - 1e-6) / ((1e-4 - 1e-6) / 15)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
    error = np.abs(np.asarray(ConductanceMapping.to_weights(quantized)[0]) - weights)
    assert error.max() <= 0.5 * np.abs(weights).max() / 15 + 1e-12  # half a level


@pytest.mark.parametrize("kind", [PairKernel, ColumnKernel])
def test_ideal_limit_computes_the_dot_product(kind):
    kernel, weights, bias, inputs = random_kernel(1)
    block = kind(kernel, OpAmp.ideal(rail_low=-5.0, rail_high=5.0))
    np.testing.assert_allclose(steady_outputs(block, inputs), weights @ inputs + bias, rtol=1e-7)
    finite = kind(kernel, OpAmp(open_loop_gain=1e3))
    error = abs(float(steady_outputs(finite, inputs)[0]) - (weights @ inputs + bias))
    assert 1e-5 < error < 1e-2  # finite gain: an error of order 1 / (A0 beta)


@pytest.mark.parametrize("kind", [PairKernel, ColumnKernel])
def test_long_transient_reaches_the_steady_state(kind):
    kernel, _, _, inputs = random_kernel(2)
    block = kind(kernel, OpAmp())
    result = transient(block, inputs, 100e-9, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.final, steady_outputs(block, inputs), atol=1e-7)
    assert 0 < float(result.settling_time) < 20e-9


def test_saturated_amplifiers_agree_between_solvers():
    """Rails at +-0.2 V saturate the TIAs (each column alone exceeds them): both solvers must
    find the same saturated state, with no output beyond a rail."""
    kernel, weights, bias, inputs = random_kernel(3)
    block = PairKernel(kernel, OpAmp(rail_low=-0.2, rail_high=0.2))
    assert abs(float(kernel.transimpedance * kernel.positive @ jnp.append(inputs, 1.0))) > 0.2
    result = transient(block, inputs, 200e-9, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.final, steady_outputs(block, inputs), atol=1e-4)
    # every op-amp output (both TIAs and the difference stage), not only the block's output
    assert float(jnp.max(jnp.abs(result.final_state))) <= 0.2 + 1e-9
    assert float(jnp.max(jnp.abs(result.outputs))) <= 0.2 + 1e-9


def test_gradients_and_vmap():
    kernel, _, _, inputs = random_kernel(4)
    amp = OpAmp()

    def output(positive):
        block = PairKernel(
            type(kernel)(positive, kernel.negative, kernel.transimpedance, kernel.bias_voltage), amp
        )
        return steady_outputs(block, inputs)[0]

    grad = jax.grad(output)(kernel.positive)
    h = 1e-9
    for i in (0, 4, 9):
        bumped = kernel.positive.at[i].add(h)
        finite_difference = (output(bumped) - output(kernel.positive)) / h
        assert float(grad[i]) == pytest.approx(float(finite_difference), rel=1e-4)
    batch = jax.vmap(lambda seed_inputs: steady_outputs(PairKernel(kernel, amp), seed_inputs))
    many = batch(jnp.stack([inputs, inputs * 0.5, inputs * 0.0]))
    assert many.shape == (3, 1)
    np.testing.assert_allclose(many[1] - many[2], 0.5 * (many[0] - many[2]), rtol=1e-6)


def test_wire_resistance_lowers_the_output():
    """IR drop: cells far from the TIA see a raised bit line and contribute less current."""
    kernel, weights, bias, inputs = random_kernel(6)
    ideal = OpAmp.ideal(rail_low=-50.0, rail_high=50.0)
    clean = float(steady_outputs(PairKernel(kernel, ideal), inputs)[0])
    wired = float(steady_outputs(PairKernel(kernel, ideal, wire_resistance=2e3), inputs)[0])
    assert clean == pytest.approx(weights @ inputs + bias, rel=1e-6)
    assert abs(wired - clean) > 1e-3 and abs(wired) < abs(clean)
    column_clean = float(steady_outputs(ColumnKernel(kernel, ideal), inputs)[0])
    column_wired = float(
        steady_outputs(ColumnKernel(kernel, ideal, wire_resistance=2e3), inputs)[0]
    )
    assert column_clean == pytest.approx(weights @ inputs + bias, rel=1e-6)
    assert abs(column_wired - column_clean) > 1e-3


def test_step_limit_names_the_block():
    kernel, _, _, inputs = random_kernel(5)
    with pytest.raises(MemjaxError, match=r"PairKernel: the transient solver stopped at t ="):
        transient(PairKernel(kernel, OpAmp()), inputs, 100e-9, max_steps=5)
    with pytest.raises(MemjaxError, match="PairKernel.bitline_capacitance"):
        PairKernel(kernel, OpAmp(), bitline_capacitance=-1e-15)


NGSPICE_CASES = [
    (kind, seed) for kind in ("pair", "column", "wired", "column_wired") for seed in (10, 11, 12)
]

# Agreement with ngspice (5 ps steps) as measured on the 12 kernels below and the fully
# connected layer (2026-12-05), each tolerance the worst case times a margin of about 3, so
# that a 1 % error in energy (or 0.05 % in settling time) fails every case. Every
# pytest.approx here has abs=0: its default abs of 1e-12 is 1.2-3.7 % of these energies
# (27-86 pJ; more of each kind's) and 0.03-0.05 % of these settling times (1.9-4 ns), and
# let an energy 1 % off pass in all 13 cases, each kind's too (2026-12-05).
FINAL_TOLERANCE = 1e-8
"""Final value, V (full scale 1 V): worst 3.4e-9 V (column_wired), margin 3."""
SETTLING_RTOL = 1.5e-4
"""Settling time, relative: worst 5.3e-5 (wired), margin 2.8. Both crossings interpolated:
ngspice's first point inside the band, on its 5 ps output steps, was up to 1.7e-3 late."""
ENERGY_RTOL = 3e-6
"""Total energy, relative: worst 9.3e-7 (pair), margin 3.2."""
KIND_ENERGY_RTOL = {"memristors": 5e-5, "resistors": 1.5e-6, "opamps": 2e-5}
"""Energy by kind, relative: worst 1.7e-5 / 4.4e-7 / 7.3e-6 (memristors and op-amps: the
pair kernel with 20 fF bit lines, whose charging the two split slightly differently; the
total agrees to 9.3e-7), margins 2.9 / 3.4 / 2.7."""


def crossing(ts, outputs, band):
    """Last time any of ``outputs`` is outside ``band`` of its final value, interpolated
    linearly to the band between the last sample outside and the next (as
    :func:`memjax.circuits.transient` does on its samples)."""
    error = np.max([np.abs(out - out[-1]) for out in outputs], axis=0)
    i = np.flatnonzero(error > band)[-1]
    fraction = (error[i] - band) / (error[i] - error[i + 1])
    return float(ts[i] + fraction * (ts[i + 1] - ts[i]))


def _kernel_case(kind: str, seed: int):
    """(block, inputs, netlist, op-amp) of one ngspice case."""
    kernel, _, _, inputs = random_kernel(seed)
    amp = OpAmp(quiescent_power=1e-6)
    block, netlist = {
        "pair": lambda: (
            b := PairKernel(kernel, amp, bitline_capacitance=20e-15),
            pair_kernel_netlist(b, inputs, 30e-9, 5e-12),
        ),
        "column": lambda: (
            b := ColumnKernel(kernel, amp),
            column_kernel_netlist(b, inputs, 30e-9, 5e-12),
        ),
        # 200 ohm of bit line per cell against cells of 10 kohm..1 Mohm: a visible IR drop
        "wired": lambda: (
            b := PairKernel(kernel, amp, wire_resistance=200.0),
            pair_kernel_netlist(b, inputs, 30e-9, 5e-12),
        ),
        "column_wired": lambda: (
            b := ColumnKernel(kernel, amp, wire_resistance=200.0),
            column_kernel_netlist(b, inputs, 30e-9, 5e-12),
        ),
    }[kind]()
    return block, inputs, netlist, amp


def _numbers(names):
    """Final values, settling time (1 % of 1 V, interpolated) and energy, total and by kind,
    of an ngspice run with outputs ``names``."""

    def reduce(spice):
        numbers = {f"final/{name}": spice[name][-1] for name in names}
        numbers["settling"] = crossing(spice["time"], [spice[n] for n in names], 0.01)
        numbers["energy"] = sum(np.trapezoid(p, spice["time"]) for p in spice["power"].values())
        for kind, power in spice["power"].items():
            numbers[f"energy/{kind}"] = np.trapezoid(power, spice["time"])
        return numbers

    return reduce


@pytest.mark.parametrize(("kind", "seed"), NGSPICE_CASES)
def test_agrees_with_ngspice(kind, seed):
    """Final value, settling time, energy and energy by kind within the measured tolerances
    above (ngspice's numbers stored, :mod:`spice_references`)."""
    block, inputs, netlist, amp = _kernel_case(kind, seed)
    ours = transient(block, inputs, 30e-9, rtol=1e-8, atol=1e-11, solver=diffrax.Tsit5())
    spice = spice_references.stored(f"kernel/{kind}/{seed}", netlist, amp)
    assert abs(float(ours.final[0]) - spice["final/v(yo)"]) <= FINAL_TOLERANCE
    assert float(ours.settling_time) == pytest.approx(spice["settling"], rel=SETTLING_RTOL, abs=0)
    assert float(ours.energy) == pytest.approx(spice["energy"], rel=ENERGY_RTOL, abs=0)
    for name, rel in KIND_ENERGY_RTOL.items():
        assert float(ours.energy_by_kind[name]) == pytest.approx(
            spice[f"energy/{name}"], rel=rel, abs=0
        )


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "seed"), NGSPICE_CASES)
def test_live_ngspice_gives_the_stored_kernel_numbers(kind, seed):
    """ngspice, run now on each kernel's netlist, gives its stored numbers."""
    _, _, netlist, amp = _kernel_case(kind, seed)
    spice_references.live(f"kernel/{kind}/{seed}", netlist, amp, ["v(yo)"], _numbers(["v(yo)"]))


def test_transient_gradient_matches_finite_differences():
    """d(energy)/d(G+_0) and d(settled output)/d(G+_0) through the diffrax transient."""
    kernel, _, _, inputs = random_kernel(7, m=4)
    amp = OpAmp()

    def run(g0):
        positive = kernel.positive.at[0].set(g0)
        block = PairKernel(
            type(kernel)(positive, kernel.negative, kernel.transimpedance, kernel.bias_voltage), amp
        )
        result = transient(block, inputs, 20e-9, samples=41, rtol=1e-10, atol=1e-13)
        return result.energy, result.final[0]

    g0 = kernel.positive[0]
    (grad_energy, grad_out) = jax.jacrev(run)(g0)
    h = 1e-9
    (e_hi, o_hi), (e_lo, o_lo) = run(g0 + h), run(g0 - h)
    assert float(grad_energy) == pytest.approx(float((e_hi - e_lo) / (2 * h)), rel=1e-3)
    assert float(grad_out) == pytest.approx(float((o_hi - o_lo) / (2 * h)), rel=1e-3)


FC_OUTPUTS = [f"v(k{k}yo)" for k in range(3)]


def _fully_connected_case():
    """(weights, bias, inputs, op-amp, the layer, its netlist) of the ngspice case."""
    from memjax.circuits import FullyConnected
    from memjax.circuits.spice import fully_connected_netlist

    rng = np.random.default_rng(21)
    weights, bias = rng.normal(size=(3, 6)) * 0.5, rng.normal(size=3) * 0.2
    inputs = rng.uniform(0.0, 1.0, 6)
    amp = OpAmp(quiescent_power=1e-6)
    layer = FullyConnected.from_weights(weights, bias, MAPPING, amp)
    return weights, bias, inputs, amp, layer, fully_connected_netlist(layer, inputs, 30e-9, 5e-12)


def test_fully_connected_layer_against_closed_form_and_ngspice():
    """MFC with K = 3 outputs over M = 6 shared inputs: the ideal limit computes W v + b; with
    the default op-amp every output agrees with ngspice (final value, settling time and
    energy within the tolerances above: measured 2.4e-9 V, 1.8e-5 and 2.5e-7), and it is the
    three pair kernels it is made of."""
    from memjax.circuits import FullyConnected

    weights, bias, inputs, amp, layer, netlist = _fully_connected_case()
    ideal = FullyConnected.from_weights(weights, bias, MAPPING, OpAmp.ideal())
    np.testing.assert_allclose(steady_outputs(ideal, inputs), weights @ inputs + bias, atol=1e-6)
    with pytest.raises(MemjaxError, match=r"\(K, M\)"):
        FullyConnected.from_weights(weights[0], bias[0], MAPPING, OpAmp())

    ours = transient(layer, inputs, 30e-9, rtol=1e-8, atol=1e-11)
    alone = [
        transient(
            PairKernel(MAPPING.to_conductances(weights[k], bias[k]), amp),
            inputs,
            30e-9,
            rtol=1e-8,
            atol=1e-11,
        )
        for k in range(3)
    ]
    np.testing.assert_allclose(ours.final, [float(r.final[0]) for r in alone], atol=1e-9)
    alone_energy = sum(float(r.energy) for r in alone)  # measured 3.7e-12 relative apart
    assert float(ours.energy) == pytest.approx(alone_energy, rel=1e-6, abs=0)

    spice = spice_references.stored("fully_connected", netlist, amp)
    for k, name in enumerate(FC_OUTPUTS):
        assert abs(float(ours.final[k]) - spice[f"final/{name}"]) <= FINAL_TOLERANCE
    assert float(ours.settling_time) == pytest.approx(spice["settling"], rel=SETTLING_RTOL, abs=0)
    assert float(ours.energy) == pytest.approx(spice["energy"], rel=ENERGY_RTOL, abs=0)


@pytest.mark.slow
def test_live_ngspice_gives_the_stored_fully_connected_numbers():
    """ngspice, run now on the fully connected layer's netlist, gives its stored numbers."""
    *_, amp, _, netlist = _fully_connected_case()
    spice_references.live("fully_connected", netlist, amp, FC_OUTPUTS, _numbers(FC_OUTPUTS))

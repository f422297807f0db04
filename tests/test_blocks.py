"""Amplifier and diode blocks: closed forms, transient vs steady state, ngspice agreement."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import spice_references

from memjax.circuits import (
    Chain,
    ConductanceMapping,
    PairKernel,
    steady_outputs,
    steady_state,
    transient,
)
from memjax.circuits.amplifiers import global_average_pool, inverter, memristive_batch_norm
from memjax.circuits.diodes import DiodeClamp, DiodeMaxPool, DiodeReLU
from memjax.circuits.spice import (
    diode_clamp_netlist,
    diode_max_pool_netlist,
    diode_relu_netlist,
    kernel_relu_netlist,
    pair_kernel_netlist,
    summing_amplifier_netlist,
)
from memjax.devices import Diode, OpAmp
from memjax.errors import MemjaxError

pytestmark = pytest.mark.compile_bound  # single neurons and small circuits: mostly compiling

AMP = OpAmp(quiescent_power=1e-6)
AMP_RO = OpAmp(quiescent_power=1e-6, output_resistance=75.0)
DIODE = Diode.d1n4148()
V_P = 1.0


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def test_amplifier_blocks_closed_forms():
    ideal = OpAmp.ideal()
    assert float(steady_outputs(inverter(ideal), jnp.array([0.7]))[0]) == pytest.approx(-0.7)
    mbn = memristive_batch_norm(-1.7, 0.3, ideal, 1e-6, 1e-4, bias_voltage=-1.0)
    assert float(steady_outputs(mbn, jnp.array([0.4]))[0]) == pytest.approx(-1.7 * 0.4 + 0.3)
    pool = global_average_pool(9, 1e-4, ideal)
    inputs = jnp.linspace(0.0, 1.0, 9)
    assert float(steady_outputs(pool, inputs)[0]) == pytest.approx(-float(inputs.mean()))
    with pytest.raises(MemjaxError, match="below g_min"):
        memristive_batch_norm(-1e3, 0.0, ideal, 1e-6, 1e-4, bias_voltage=-1.0)


def test_relu_and_limiter_transfer_curves():
    """Super diode: max(v, 0) capped at V_p; plain diode: the same shifted by its drop."""
    precise = DiodeReLU(DIODE, 10e3, V_P, opamp=AMP, super_diode=True)
    plain = DiodeReLU(DIODE, 10e3, V_P - 0.55)
    for v in (-0.8, -0.1, 0.2, 0.6, 0.95, 1.3, 2.0):
        out = float(steady_outputs(precise, jnp.array([v]))[0])
        assert out == pytest.approx(min(max(v, 0.0), V_P), abs=2e-3)
        plain_out = float(steady_outputs(plain, jnp.array([v]))[0])
        leakage = 2 * DIODE.saturation_current * 10e3  # reverse currents into R_L
        assert plain_out <= max(v, 0.0) + leakage and plain_out <= V_P + 0.05
    drop = 0.9 - float(steady_outputs(plain, jnp.array([0.9]))[0])
    assert 0.35 < drop < 0.55  # a silicon junction at ~50 uA
    pool = DiodeMaxPool(DIODE, 4, 10e3, opamp=AMP, super_diode=True)
    inputs = jnp.array([0.2, 0.9, 0.5, 0.7])
    assert float(steady_outputs(pool, inputs)[0]) == pytest.approx(0.9, abs=1e-4)


def test_relu_gradient_through_the_diode_node():
    relu = DiodeReLU(DIODE, 10e3, V_P - 0.55)
    f = lambda v: steady_outputs(relu, jnp.array([v]))[0]  # noqa: E731
    h = 1e-6
    assert float(jax.grad(f)(0.9)) == pytest.approx(
        float((f(0.9 + h) - f(0.9 - h)) / (2 * h)), rel=1e-5
    )


def _kernel(rng, inputs, weights=None, swing=None):
    """A random (M+1)x2 kernel whose output swings across the ReLU's range (its difference
    stage on +-``swing`` when given)."""
    weights = rng.normal(size=inputs) * 0.3 if weights is None else weights
    conductances = ConductanceMapping(1e-6, 1e-4).to_conductances(weights, rng.normal() * 0.2)
    return PairKernel(conductances, AMP, difference_gain=4.0, output_swing=swing)


def test_chain_passes_load_currents_to_the_driving_op_amp():
    """A plain diode ReLU draws its D1 current from the kernel's output op-amp: the chain's
    power is the kernel's with that load (class-B stage: (V_rail+ - v_out) i_load more while
    sourcing) plus the ReLU's. A passive diode node driving a current-drawing block is
    refused."""
    rng = np.random.default_rng(4)
    kernel = _kernel(rng, 16, weights=rng.uniform(0.05, 0.15, 16))
    relu = DiodeReLU(DIODE, 10e3, V_P - 0.55)
    chain = Chain((kernel, relu))
    inputs = jnp.asarray(rng.uniform(0, V_P, 16))
    y = steady_state(chain, inputs)
    v_out = kernel.outputs(y[:3], inputs)
    i_load = relu.input_currents(y[3:], v_out)
    assert float(v_out[0]) > 0.6 and float(i_load[0]) > 1e-6  # D1 conducts
    unloaded = kernel.power(y[:3], inputs).total + relu.power(y[3:], v_out).total
    extra = (AMP.rail_high - v_out[0]) * i_load[0]
    assert float(chain.power(y, inputs).total) == pytest.approx(float(unloaded + extra), rel=1e-12)
    assert float(chain.observe(y, inputs)[1].total) == pytest.approx(
        float(unloaded + extra), rel=1e-12
    )
    with pytest.raises(MemjaxError, match=r"blocks\[1\] \(PairKernel\) draws current"):
        Chain((relu, _kernel(rng, 1)))


def _bounded(amp: OpAmp, load: float, series: float = 1e3) -> OpAmp:
    """``amp`` on the bounded ReLU supply for a load ``load`` and D1's series resistor."""
    current = V_P / load
    rail = V_P + float(DIODE.voltage_at(current)) + current * (series + amp.output_resistance)
    return dataclasses.replace(amp, rail_high=rail)


def _random_blocks(rng):
    """Each block with random element values (conductances, gains, loads) and inputs."""
    g = lambda: float(rng.uniform(1e-5, 1e-4))  # noqa: E731  memristor conductances
    load = float(rng.uniform(5e3, 20e3))
    rows = lambda: float(10 ** rng.uniform(-3.7, -2.7))  # noqa: E731  rows driven, S
    return {
        "inverter": (
            inverter(AMP, 1 / g()),
            [rng.uniform(-1, 1)],
            summing_amplifier_netlist,
            "v(yo)",
        ),
        "mbn": (
            memristive_batch_norm(
                -rng.uniform(0.3, 2.0), rng.uniform(0.0, 0.5), AMP, 1e-6, 1e-4, -1.0
            ),
            [rng.uniform(0, 1)],
            summing_amplifier_netlist,
            "v(yo)",
        ),
        "average_pool": (
            global_average_pool(9, g(), AMP),
            list(rng.uniform(0, 1, 9)),
            summing_amplifier_netlist,
            "v(yo)",
        ),
        "relu_plain": (
            DiodeReLU(DIODE, load, 0.45, node_capacitance=1e-12),
            [rng.uniform(0.8, 2.0)],
            diode_relu_netlist,
            "v(o)",
        ),
        "relu_super": (
            DiodeReLU(DIODE, load, V_P, opamp=AMP, super_diode=True),
            [rng.uniform(0.1, 0.9)],
            diode_relu_netlist,
            "v(o)",
        ),
        "relu_limited": (
            DiodeReLU(DIODE, load, V_P, opamp=AMP, super_diode=True),
            [rng.uniform(1.1, 2.0)],
            diode_relu_netlist,
            "v(o)",
        ),
        # 75 ohm of open-loop output resistance in both op-amps, in series with D1 and D2
        "relu_limited_output_resistance": (
            DiodeReLU(DIODE, load, V_P, opamp=AMP_RO, super_diode=True),
            [rng.uniform(1.1, 2.0)],
            diode_relu_netlist,
            "v(o)",
        ),
        # the paper preset's reading: an active ReLU, the limiter a diode to V_p - V_D
        # (HardwareConfig.limiter_reference: 0.425 V for these parts)
        "relu_super_diode_limiter": (
            DiodeReLU(DIODE, load, 0.425, AMP_RO, True, diode_limiter=True),
            [rng.uniform(0.1, 0.9)],
            diode_relu_netlist,
            "v(o)",
        ),
        "relu_super_diode_limiter_limited": (
            DiodeReLU(DIODE, load, 0.425, AMP_RO, True, diode_limiter=True),
            [rng.uniform(1.1, 2.0)],
            diode_relu_netlist,
            "v(o)",
        ),
        "maxpool_super_output_resistance": (
            DiodeMaxPool(DIODE, 4, load, opamp=AMP_RO, super_diode=True),
            list(rng.uniform(0, 1, 4)),
            diode_max_pool_netlist,
            "v(o)",
        ),
        # a 16-input (M+1)x2 kernel driving each ReLU variant: the plain diode loads the
        # kernel's output op-amp, whose dissipation the chain must count. Positive weights
        # (|N(0, 0.15)|): with N(0, 0.3) all six pre-activations were negative (-0.35..-0.95 V)
        # and the ReLUs sat at 0 V, a trivial final value and settling time; now the kernel
        # gives 0.74..1.21 V, the plain ReLU 0.35..0.67 V, the super one 0.74 V..V_p
        "kernel_relu_plain": (
            Chain(
                (
                    _kernel(rng, 16, weights=np.abs(rng.normal(size=16)) * 0.15),
                    DiodeReLU(DIODE, load, V_P - 0.55),
                )
            ),
            list(rng.uniform(0, V_P, 16)),
            kernel_relu_netlist,
            "v(ro)",
        ),
        "kernel_relu_super": (
            Chain(
                (
                    _kernel(rng, 16, weights=np.abs(rng.normal(size=16)) * 0.15),
                    DiodeReLU(DIODE, load, V_P, opamp=AMP, super_diode=True),
                )
            ),
            list(rng.uniform(0, V_P, 16)),
            kernel_relu_netlist,
            "v(ro)",
        ),
        # the symmetric limiter of linear stages: passing, and holding +V_p and -V_p
        "clamp_inside": (
            DiodeClamp(DIODE, load, V_P, AMP),
            [rng.uniform(-0.9, 0.9)],
            diode_clamp_netlist,
            "v(o)",
        ),
        "clamp_above": (
            DiodeClamp(DIODE, load, V_P, AMP),
            [rng.uniform(1.1, 2.0)],
            diode_clamp_netlist,
            "v(o)",
        ),
        "clamp_below": (
            DiodeClamp(DIODE, load, V_P, AMP_RO),
            [rng.uniform(-2.0, -1.1)],
            diode_clamp_netlist,
            "v(o)",
        ),
        "maxpool_or": (
            DiodeMaxPool(DIODE, 4, load),
            list(rng.uniform(0, 1, 4)),
            diode_max_pool_netlist,
            "v(o)",
        ),
        "maxpool_super": (
            DiodeMaxPool(DIODE, 4, load, opamp=AMP, super_diode=True),
            list(rng.uniform(0, 1, 4)),
            diode_max_pool_netlist,
            "v(o)",
        ),
        # issue 22, item 2: nodes that drive the rows of the next crossbar themselves
        # (HardwareConfig.row_drive "direct"): 0.2-2 mS of cells to virtual ground beside R_L,
        # a resistor to ground in the netlist whose dissipation ngspice reports apart (the
        # next stage's memristors), as memjax leaves it out of the block's power
        "relu_super_diode_limiter_rows": (
            DiodeReLU(DIODE, load, 0.425, AMP_RO, True, diode_limiter=True, row_conductance=rows()),
            [rng.uniform(0.1, 0.9)],
            diode_relu_netlist,
            "v(o)",
        ),
        "relu_plain_rows": (
            DiodeReLU(DIODE, load, 0.45, node_capacitance=1e-12, row_conductance=rows()),
            [rng.uniform(0.8, 2.0)],
            diode_relu_netlist,
            "v(o)",
        ),
        "clamp_inside_rows": (
            DiodeClamp(DIODE, load, V_P, AMP, row_conductance=rows()),
            [rng.uniform(-0.9, 0.9)],
            diode_clamp_netlist,
            "v(o)",
        ),
        "maxpool_super_rows": (
            DiodeMaxPool(DIODE, 4, load, opamp=AMP, super_diode=True, row_conductance=rows()),
            list(rng.uniform(0, 1, 4)),
            diode_max_pool_netlist,
            "v(o)",
        ),
        # issue 22, item 6: the ReLU's op-amps on the bounded supply (HardwareConfig.
        # relu_rail_high: V_p + D1's and the series resistor's drop at the load's current),
        # limiting: U1 sits on that rail, which holds the output at V_p with the limiter
        "relu_limited_bounded_supply": (
            DiodeReLU(DIODE, load, V_P, opamp=_bounded(AMP, load), super_diode=True),
            [rng.uniform(1.1, 2.0)],
            diode_relu_netlist,
            "v(o)",
        ),
        # a clamp's driver U1 on a supply sized for its rows (HardwareConfig.clamp_supply),
        # limiting: U1 on its rail; the swing is capped at 2.4 V (the limiters keep +-2.5 V),
        # where U1 falls short of V_p instead (about one draw in five)
        "clamp_above_bounded_driver_rows": _clamp_on_driver_supply(rng, load, rows(), 1.0),
        "clamp_below_bounded_driver_rows": _clamp_on_driver_supply(rng, load, rows(), -1.0),
        # the difference stage on +-V_p (HardwareConfig.preactivation_supply): a kernel
        # driven past -V_p sits on its rail, and one past +V_p feeds the ReLU no more than V_p
        "kernel_bounded_output": (
            _kernel(rng, 16, weights=-np.abs(rng.normal(size=16)) * 0.4, swing=V_P),
            list(rng.uniform(0, V_P, 16)),
            pair_kernel_netlist,
            "v(yo)",
        ),
        "kernel_relu_super_bounded_preactivation": (
            Chain(
                (
                    _kernel(rng, 16, weights=np.abs(rng.normal(size=16)) * 0.4, swing=V_P),
                    DiodeReLU(DIODE, load, V_P, opamp=AMP, super_diode=True),
                )
            ),
            list(rng.uniform(0, V_P, 16)),
            kernel_relu_netlist,
            "v(ro)",
        ),
        # the rectifier U1 on a single supply, its low rail at 0 V (HardwareConfig.
        # relu_low_rail "ground"), exported as its own subcircuit: from rest U1 rises to the
        # node plus D1's drop (0.06-0.19 V outputs with these seeds); its dead zone from a
        # negative input is test_rectifier_on_ground_crosses_its_dead_zone_sooner
        "kernel_relu_super_rectifier_ground": (
            Chain(
                (
                    _kernel(rng, 16, weights=rng.normal(size=16) * 0.3),
                    DiodeReLU(DIODE, load, V_P, AMP, True, rectifier_rail_low=0.0),
                )
            ),
            list(rng.uniform(0, V_P, 16)),
            kernel_relu_netlist,
            "v(ro)",
        ),
    }


def _clamp_on_driver_supply(rng, load, rows, sign):
    swing = min(V_P + V_P * (1.0 / load + rows) * (1e3 + AMP_RO.output_resistance), 2.4)
    clamp = DiodeClamp(DIODE, load, V_P, AMP_RO, row_conductance=rows, driver_swing=swing)
    return clamp, [sign * rng.uniform(1.1, 2.0)], diode_clamp_netlist, "v(o)"


BLOCKS = sorted(_random_blocks(np.random.default_rng(0)))

# Agreement with ngspice as measured on the 45 cases below (2026-12-05; the 12 *_rows cases
# and the 6 *_bounded_driver_rows cases added 2026-12-06 pass within them, not
# re-measured), each tolerance the
# worst case times a margin of 2.3-3.7, so that a 1 % error in energy (or 0.2 % in settling
# time) fails every case. Every pytest.approx here has abs=0: its default abs of 1e-12 is
# 0.5 % to 4x these energies (0.23 pJ to 0.21 nJ) and 0.02-0.3 % of these settling times
# (0.33-6 ns), and let an energy 1 % off pass in 32 of these 45 cases (2026-12-05).
FINAL_TOLERANCE = 5e-7 * V_P
"""Final value, V: worst 1.34e-7 V (relu_plain: the plain diode's node), margin 3.7."""
SETTLING_RTOL = 1.5e-3
"""Settling time, relative: worst 5.5e-4 (clamp_inside, settling at 0.41 ns, where our
15 ps samples' linear interpolation is coarsest), margin 2.7. Both crossings interpolated:
ngspice's first point inside the band, on its 5 ps output steps, was up to 8.9e-3 late."""
ENERGY_RTOL = 5e-5
"""Energy, relative: worst 2.2e-5 (relu_plain), margin 2.3; 1e-6 or less for most blocks."""


def crossing(ts, outputs, band):
    """Last time any of ``outputs`` is outside ``band`` of its final value, interpolated
    linearly to the band between the last sample outside and the next (as
    :func:`memjax.circuits.transient` does on its samples); 0 if none is."""
    error = np.max([np.abs(out - out[-1]) for out in outputs], axis=0)
    outside = np.flatnonzero(error > band)
    if not len(outside):
        return 0.0
    i = outside[-1]
    fraction = (error[i] - band) / (error[i] - error[i + 1])
    return float(ts[i] + fraction * (ts[i + 1] - ts[i]))


SLOW_TAIL = {
    "relu_limited_bounded_supply": 2e-5,
    "clamp_above_bounded_driver_rows": 2e-5,
    "clamp_below_bounded_driver_rows": 2e-5,
}
"""Blocks not at their steady state by 30 ns, with how far (V). On the bounded supply U1 sits
on its rail and holds the output at V_p against the load alone (1.0000034 V in memjax and
ngspice alike, 1.5e-7 V apart, measured 2026-12-06), while the limiter's U2 creeps down from
its rail at its small-signal rate (A0 (V_p - o) - y) / tau ~ 0.1 mV/ns: D2 takes the last
1.3e-5 V only microseconds later. The same for a clamp whose U1 is on a supply sized for its
rows (9.2e-6 V at 30 ns, 2026-12-06)."""


def _block_case(name: str, seed: int):
    """(block, inputs, netlist, op-amps for :func:`simulate_netlist`, probe) of one case."""
    with jax.enable_x64(True):
        block, inputs, netlist, probe = _random_blocks(np.random.default_rng(seed))[name]
    inputs = np.asarray(inputs)
    amp = getattr(block, "opamp", None) or AMP  # the block's own supply (bounded ReLU)
    if getattr(block, "driver_swing", None) is not None:  # a clamp's U1 on its own supply
        amp = {"opamp": block.opamp, "driver": block.driver}
    kernel = block.blocks[0] if isinstance(block, Chain) else block
    if getattr(kernel, "output_swing", None) is not None:  # the difference stage on its own
        amp = {"opamp": AMP, "difference": kernel.difference_opamp}
    relu = block.blocks[-1] if isinstance(block, Chain) else block
    if getattr(relu, "rectifier_rail_low", None) is not None:  # U1 on its own low rail
        amp = {"opamp": AMP, "rectifier": relu.rectifier}
    return block, inputs, netlist(block, inputs, 30e-9, 5e-12), amp, probe


def _block_numbers(probe: str):
    """What the block cases read from an ngspice run: final value, settling time (to 1 %
    of V_p, interpolated) and energy."""

    def reduce(spice):
        out = spice[probe]
        return {
            "final": out[-1],
            "settling": crossing(spice["time"], [out], 0.01 * V_P),
            "energy": sum(np.trapezoid(p, spice["time"]) for p in spice["power"].values()),
        }

    return reduce


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", BLOCKS)
def test_block_agrees_with_ngspice_and_its_steady_state(name, seed):
    """Three random element sets per block against ngspice (5 ps steps; its numbers stored,
    :mod:`spice_references`): final value, settling time and energy within the measured
    tolerances above, and the long transient at the steady state. An algebraic block (the
    passive diode-OR) settles at once in both."""
    block, inputs, netlist, amp, _ = _block_case(name, seed)
    ours = transient(block, inputs, 30e-9, rtol=1e-8, atol=1e-11)
    steady_atol = SLOW_TAIL.get(name, 1e-6)
    np.testing.assert_allclose(ours.final, steady_outputs(block, inputs), atol=steady_atol)
    spice = spice_references.stored(f"block/{name}/{seed}", netlist, amp)
    assert abs(float(ours.final[0]) - spice["final"]) <= FINAL_TOLERANCE
    if name == "kernel_bounded_output":  # held on its -V_p rail (unbounded: -1.86..-2.5 V)
        assert float(ours.final[0]) == pytest.approx(-V_P, abs=1e-5)
    if name == "kernel_relu_super_bounded_preactivation":  # never above V_p, limiting at it
        assert float(jnp.max(ours.outputs)) <= V_P and float(ours.final[0]) > 0.9999 * V_P
    if spice["settling"] > 0.2e-9:
        assert float(ours.settling_time) == pytest.approx(
            spice["settling"], rel=SETTLING_RTOL, abs=0
        )
    else:  # an algebraic block settles at once in both
        assert float(ours.settling_time) < 0.2e-9
    assert float(ours.energy) == pytest.approx(spice["energy"], rel=ENERGY_RTOL, abs=0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", BLOCKS)
def test_live_ngspice_gives_the_stored_block_numbers(name, seed):
    """ngspice, run now on each case's netlist, gives the numbers the fast lane holds memjax
    to (:mod:`spice_references`)."""
    _, _, netlist, amp, probe = _block_case(name, seed)
    spice_references.live(f"block/{name}/{seed}", netlist, amp, [probe], _block_numbers(probe))


RECTIFIER_STEP = {"v_p": 0.1, "low": 2e-3, "high": 0.05, "step": 50e-9}
"""The rectifier case: V_p, the positive input stepped to, the negative input before it
(V), and when the step comes (s)."""


def _rectifier_case(rail):
    """(block, drive, netlist, op-amps) of the rectifier case with U1's low rail ``rail``
    (None: the op-amp's own -1 V)."""
    v_p, low, high, step = RECTIFIER_STEP.values()
    amp = OpAmp(gain_bandwidth=10e9, rail_low=-1.0, rail_high=1.0)

    def drive(t):
        return (-high + (low + high) * jnp.clip((t - step) / 1e-10, 0, 1))[None]

    block = DiodeReLU(DIODE, 10e3, v_p, amp, True, rectifier_rail_low=rail)
    netlist = diode_relu_netlist(block, [low], 150e-9, 5e-12).replace(
        f"Vin0 in0 0 DC {low:.12g}", f"Vin0 in0 0 PWL(0 {-high} {step} {-high} 50.1n {low})"
    )
    amps = amp if rail is None else {"opamp": amp, "rectifier": block.rectifier}
    return block, drive, netlist, amps


def _rectifier_numbers(spice):
    """The output's final value, its settling after the step, and U1 just before it."""
    step = RECTIFIER_STEP["step"]
    before = np.searchsorted(spice["time"], step) - 1
    return {
        "final": spice["v(o)"][-1],
        "settling": crossing(spice["time"], [spice["v(o)"]], 0.01 * RECTIFIER_STEP["v_p"]) - step,
        "rest": spice["v(y1)"][before],
    }


def test_rectifier_on_ground_crosses_its_dead_zone_sooner():
    """A super-diode ReLU resting at a negative input (U1 on its low rail, D1 off) whose input
    steps to a small positive value: with U1's low rail at 0 V instead of the op-amp's -1 V,
    U1 swings ~0.5 V instead of ~1.5 V open loop before D1 conducts, so the output settles
    several times sooner, at the same value. ngspice (numbers stored,
    :mod:`spice_references`), U1 exported on its own rails and driven by the same
    piecewise-linear input, agrees on where U1 rests and on the settling time."""
    v_p, low, high, step = RECTIFIER_STEP.values()
    settled, rests = {}, {}
    for rail in (None, 0.0):
        block, drive, netlist, amps = _rectifier_case(rail)
        ours = transient(block, drive, 150e-9, samples=3001, full_scale=v_p, rtol=1e-7, atol=1e-10)
        rest = transient(block, jnp.asarray([-high]), step, rtol=1e-7, atol=1e-10)
        spice = spice_references.stored(f"rectifier/{rail}", netlist, amps)
        settled[rail] = float(ours.settling_time) - step
        rests[rail] = float(rest.final_state[0])
        assert float(ours.final[0]) == pytest.approx(spice["final"], abs=FINAL_TOLERANCE)
        assert float(ours.final[0]) == pytest.approx(low, rel=2e-3)
        assert rests[rail] == pytest.approx(spice["rest"], abs=1e-4)
        # measured 2026-12-06: 9.672 / 1.688 ns, ngspice within 6e-5 relative
        assert settled[rail] == pytest.approx(spice["settling"], rel=SETTLING_RTOL, abs=0)
    assert rests[None] < -0.99 and -1e-4 < rests[0.0] <= 1e-6  # each on its rail
    assert settled[0.0] < settled[None] / 3, settled


@pytest.mark.slow
@pytest.mark.parametrize("rail", [None, 0.0])
def test_live_ngspice_gives_the_stored_rectifier_numbers(rail):
    """ngspice, run now, gives the rectifier case's stored numbers."""
    _, _, netlist, amps = _rectifier_case(rail)
    spice_references.live(f"rectifier/{rail}", netlist, amps, ["v(o)", "v(y1)"], _rectifier_numbers)


def test_limited_node_bounds_agree_with_bracketed_newton():
    """The ReLU's closed-form bound iteration against the generic 40-step bracketed Newton
    solve of the same KCL, over driver voltages spanning both rails (a 1e-6 V tolerance is
    1e-4 % of V_p; the measured worst case of 4 rounds on this domain is 9e-8 V)."""
    from memjax.circuits.diodes import solve_limited_node, solve_node

    source = Diode(series_resistance=DIODE.series_resistance + 1e3)
    rng = np.random.default_rng(0)
    drivers = jnp.asarray(rng.uniform(-2.6, 2.6, (2000, 2)))

    def both(anode, cathode):
        def net(o):
            return source.current(anode - o) - o / 1e4 - DIODE.current(o - cathode)

        reference = solve_node(net, -4.0, 4.0)
        return solve_limited_node(source, DIODE, 1e4, anode, cathode), reference

    fast, reference = jax.vmap(both)(drivers[:, 0], drivers[:, 1])
    np.testing.assert_allclose(fast, reference, atol=1e-6)
    # Implicit differentiation: d o / d anode against a central difference.
    grad = jax.grad(lambda a: solve_limited_node(source, DIODE, 1e4, a, 2.5))(0.6)
    h = 1e-5
    fd = (
        solve_limited_node(source, DIODE, 1e4, 0.6 + h, 2.5)
        - solve_limited_node(source, DIODE, 1e4, 0.6 - h, 2.5)
    ) / (2 * h)
    assert float(grad) == pytest.approx(float(fd), rel=1e-5)
    assert 0.5 < float(grad) < 1.0  # the forward-biased D1 into R_L passes most of a change


def test_diode_nodes_converge_in_few_newton_steps():
    """In float64 the node solves stop within a few Newton steps of a good start: a
    nine-input diode-OR pool (from the largest input less its drop) and the precision clamp
    (from its one-diode closed form), over random states (both limiters conducting at once
    included). Each iteration is a full
    diode evaluation in every solver step of every neuron; before the root was accepted as a
    bracket end they ran to the 40-iteration cap (max pool) or ~35 (clamp) for a tenth of the
    nodes, bisecting away from the root and back. Roots checked against KCL."""
    from memjax.circuits.diodes import bracketed_newton

    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        pool = DiodeMaxPool(DIODE, count=9, load_resistance=10e3)
        windows = jnp.asarray(rng.uniform(0.0, 1.0, (2000, 9)) * (rng.random((2000, 9)) < 0.7))

        def pool_node(v):
            largest = jnp.max(v)
            guess = largest - DIODE.voltage_at(largest / 10e3)
            return bracketed_newton(lambda o: pool._net_current(o, None, v), -1.0, 2.0, guess)

        roots, counts = jax.vmap(pool_node)(windows)
        residual = jax.vmap(lambda o, v: pool._net_current(o, None, v))(roots, windows)
        assert int(counts.max()) <= 8
        assert float(jnp.max(jnp.abs(residual))) < 1e-12  # A: 1e-8 V across R_L = 10 kohm

        clamp = DiodeClamp(DIODE, 10e3, V_P, AMP)
        states = jnp.asarray(rng.uniform(-2.5, 2.5, (2000, 3)))

        def clamp_node(y):
            u, w, z = y
            guess = clamp._one_diode_node(u, w, z)
            return bracketed_newton(lambda o: clamp._net_current(o, u, w, z), -2.5, 2.5, guess)

        roots, counts = jax.vmap(clamp_node)(states)
        residual = jax.vmap(lambda o, y: clamp._net_current(o, *y))(roots, states)
        assert int(counts.max()) <= 8
        assert float(jnp.max(jnp.abs(residual))) < 1e-12


def test_sampled_energy_matches_integrated_energy():
    """The trapezoid energy over the samples and the energy carried as a solver state differ
    only by the quadrature error: measured 2.2e-6 relative at 401 samples over 30 ns
    (2026-12-05), 1e-5 allowed (``abs=0``: pytest.approx's default 1e-12 J would be 19 % of
    this 5.2 pJ)."""
    relu = DiodeReLU(DIODE, 10e3, V_P, opamp=AMP, super_diode=True)
    sampled = transient(relu, jnp.array([0.7]), 30e-9, samples=401)
    integrated = transient(relu, jnp.array([0.7]), 30e-9, samples=401, energy="integrated")
    assert float(sampled.energy) == pytest.approx(float(integrated.energy), rel=1e-5, abs=0)
    with pytest.raises(MemjaxError, match="energy"):
        transient(relu, jnp.array([0.7]), 30e-9, energy="trapezoid")


def test_output_resistance_changes_the_limited_relu_and_is_refused_where_not_modelled():
    """With R_o the limited output still sits at V_p (U2's loop absorbs R_o), but U2's internal
    output must sink the limiter current i2 through R_o too: it sits about R_o i2 lower (within
    10%: V_D2 also shifts with the slightly smaller current). The ngspice cases above check the
    waveforms; the linear blocks refuse R_o > 0 instead of ignoring it."""
    inputs = jnp.array([2.0])
    ideal_out = DiodeReLU(DIODE, 10e3, V_P, opamp=AMP, super_diode=True)
    resistive = DiodeReLU(DIODE, 10e3, V_P, opamp=AMP_RO, super_diode=True)
    state_ideal, state = steady_state(ideal_out, inputs), steady_state(resistive, inputs)
    o = float(resistive.outputs(state, inputs)[0])
    assert o == pytest.approx(float(ideal_out.outputs(state_ideal, inputs)[0]), abs=1e-3)
    i2 = float(resistive._d2.current(o - state[1]))
    assert i2 > 1e-4  # the limiter conducts
    shift = float(state_ideal[1] - state[1])
    assert shift == pytest.approx(AMP_RO.output_resistance * i2, rel=0.1)
    from memjax.circuits import PairKernel
    from memjax.circuits.amplifiers import inverter as make_inverter
    from memjax.circuits.mapping import ConductanceMapping

    kernel = ConductanceMapping(1e-6, 1e-4).to_conductances(jnp.ones(3), 0.1)
    with pytest.raises(MemjaxError, match="PairKernel.opamp.output_resistance"):
        PairKernel(kernel, AMP_RO)
    with pytest.raises(MemjaxError, match="SummingAmplifier.opamp.output_resistance"):
        make_inverter(AMP_RO)


@pytest.mark.parametrize("amp", [AMP, OpAmp(open_loop_gain=300.0), AMP_RO])
def test_elementwise_steady_outputs_match_the_newton_steady_state(amp):
    """The closed-form / one-node steady states a whole network uses (pair_kernel_dc,
    DiodeReLU.steady_output, DiodeMaxPool.steady_output) solve the same static equations as
    Newton's method on every block state: agreement to 1e-7 V (0.00001 % of V_p), inside
    and beyond the rails."""
    from memjax.circuits.crossbar import pair_kernel_dc

    rng = np.random.default_rng(7)
    if amp.output_resistance == 0:  # the linear blocks refuse R_o > 0
        for scale in (0.3, 3.0):  # the second drives the output into a rail
            kernel = _kernel(rng, 16, weights=rng.normal(size=16) * scale)
            v = jnp.asarray(rng.uniform(0, V_P, 16))
            rows = jnp.append(v, kernel.conductances.bias_voltage)
            c = kernel.conductances
            dc = pair_kernel_dc(kernel, jnp.sum(c.positive * rows), jnp.sum(c.negative * rows))
            assert float(dc) == pytest.approx(float(steady_outputs(kernel, v)[0]), abs=1e-7)
    drives = jnp.array([-0.8, -0.01, 0.0, 0.3, 0.99, 1.0, 1.4, 2.4, 3.0])
    windows = jnp.asarray(rng.uniform(0, V_P, (4, 9)))
    for super_diode in (False, True):
        relu = DiodeReLU(DIODE, 10e3, V_P if super_diode else 0.45, amp, super_diode)
        newton = jax.vmap(lambda v, relu=relu: steady_outputs(relu, v[None])[0])(drives)
        np.testing.assert_allclose(relu.steady_output(drives), newton, atol=1e-7)
    diode_limited = DiodeReLU(DIODE, 10e3, 0.425, amp, True, diode_limiter=True)
    newton = jax.vmap(lambda v: steady_outputs(diode_limited, v[None])[0])(drives)
    np.testing.assert_allclose(diode_limited.steady_output(drives), newton, atol=1e-7)
    for super_diode in (False, True):
        pool = DiodeMaxPool(DIODE, 9, 10e3, amp, super_diode)
        newton = jax.vmap(lambda w, pool=pool: steady_outputs(pool, w)[0])(windows)
        np.testing.assert_allclose(pool.steady_output(windows), newton, atol=1e-7)
    clamp = DiodeClamp(DIODE, 10e3, V_P, amp)
    newton = jax.vmap(lambda v: steady_outputs(clamp, v[None])[0])(drives - 1.0)
    np.testing.assert_allclose(clamp.steady_output(drives - 1.0), newton, atol=1e-7)
    # within a few mV of clip(v, -V_p, V_p): the limiters' loop gain, not a diode drop
    ideal = np.clip(np.asarray(drives) - 1.0, -V_P, V_P)
    np.testing.assert_allclose(clamp.steady_output(drives - 1.0), ideal, atol=5e-3)


def test_diode_limiter_reference_buffer_sinks_the_limiter_current():
    """A diode limiter's reference held by a follower: its output stage sinks D2's current at
    V_ref, (V_ref - rail_low) i2, counted under op-amps; the node and every other kind of
    power stay those of the ideal source. i2 from Shockley's law at the solved node."""
    inputs = jnp.array([2.0])  # limiting: D2 conducts
    ideal = DiodeReLU(DIODE, 10e3, 0.425, diode_limiter=True)
    buffered = DiodeReLU(DIODE, 10e3, 0.425, diode_limiter=True, reference_buffer=AMP)
    state = ideal.initial_state()
    o = float(ideal.outputs(state, inputs)[0])
    assert float(buffered.outputs(state, inputs)[0]) == o
    i2 = float(DIODE.current(o - 0.425))
    assert i2 > 1e-4  # limiting
    before, after = ideal.power(state, inputs), buffered.power(state, inputs)
    assert float(after.opamps - before.opamps) == pytest.approx((0.425 + 2.5) * i2, rel=1e-9)
    for kind in ("memristors", "resistors", "diodes"):
        assert float(getattr(after, kind)) == float(getattr(before, kind))
    with pytest.raises(MemjaxError, match="DiodeReLU.reference_buffer"):
        DiodeReLU(DIODE, 10e3, 1.0, AMP, True, reference_buffer=AMP)
    with pytest.raises(MemjaxError, match="reference_buffer .* is not exported"):
        diode_relu_netlist(buffered, inputs, 1e-8, 1e-10)  # refused, not silently ideal


def test_plain_max_pool_node_reaches_float_resolution_from_its_largest_diode():
    """The plain diode-OR pool's node (PLAIN_POOL_ITERATIONS bracketed Newton iterations from
    the largest input's diode alone) against a float64 root from the bracket's midpoint with
    every iteration: within float32's resolution around 1 V in float32 (the steady state),
    within 1e-10 V in float64, on windows where several diodes conduct (inputs within a few
    tens of mV of the largest) and on windows spread over the rails, with a 1 kOhm series
    resistor and a load that includes driven rows."""
    from memjax.circuits.diodes import bracketed_newton, total_load_conductance

    pool = DiodeMaxPool(DIODE, 9, 10e3, series_resistance=1e3)
    rng = np.random.default_rng(3)
    spread = rng.uniform(-2.6, 2.6, (3000, 9))
    clustered = rng.uniform(-0.5, 2.6, (3000, 1)) - np.abs(rng.normal(0, 0.03, (3000, 9)))
    windows = np.concatenate([spread, clustered])
    loads = np.concatenate([np.full(3000, total_load_conductance(pool)), np.full(3000, 2e-4)])

    def reference(v, g):
        f = lambda o: jnp.sum(pool._d.current(v - o)) - o * g  # noqa: E731
        low, high = jnp.minimum(jnp.min(v), 0.0) - 1.0, jnp.maximum(jnp.max(v), 0.0) + 1.0
        return bracketed_newton(f, low, high, iterations=200)[0]

    with jax.enable_x64(True):
        exact = np.asarray(jax.jit(jax.vmap(reference))(windows, loads))
        fast = np.asarray(pool.steady_output(jnp.asarray(windows), jnp.asarray(loads)))
    np.testing.assert_allclose(fast, exact, atol=1e-10)
    single = pool.steady_output(jnp.asarray(windows, jnp.float32), jnp.asarray(loads, jnp.float32))
    assert single.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(single, np.float64), exact, atol=5e-7)

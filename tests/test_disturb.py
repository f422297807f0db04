"""Read disturb with and without the limiter; a write pulse against ngspice."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import spice_references

from memjax.circuits import ConductanceMapping, PairKernel, transient
from memjax.circuits.disturb import (
    DynamicCrossbar,
    WriteCircuit,
    drift_over_inferences,
    pulse,
    state_change_per_inference,
)
from memjax.circuits.spice import vteam_write_netlist
from memjax.circuits.waveform import Waveform
from memjax.devices import VTEAM, OpAmp
from memjax.devices.programming import programming_device
from memjax.errors import MemjaxError

THRESHOLD = 1.0
DEVICE = VTEAM.with_thresholds(
    THRESHOLD, k_off=1e8, k_on=-1e8, alpha_off=3.0, alpha_on=3.0, r_on=10e3, r_off=1e6
)


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


V_P = 0.5 * THRESHOLD
"""Limiter level. Between inferences the bit lines leave virtual ground for a few ns (the TIA
must slew to the new sum), so the memristors see up to ~V_p + the previous output's share: a
limiter at the threshold itself would not protect them, a margin does."""


def crossbar(seed=0, m=16):
    rng = np.random.default_rng(seed)
    g_min, g_max = DEVICE.conductance_range
    mapping = ConductanceMapping(float(g_min), float(g_max), bias_voltage=V_P)
    kernel = mapping.to_conductances(rng.normal(size=m) * 0.3, 0.05)
    return DynamicCrossbar(
        PairKernel(kernel, OpAmp(rail_low=-5.0, rail_high=5.0), difference_gain=2.0), DEVICE
    ), rng


def repeated_inferences(block, images, period):
    """Each row of ``images`` applied for ``period`` seconds, one after the other."""

    def drive(t):
        index = jnp.clip(jnp.floor(t / period).astype(int), 0, len(images) - 1)
        return images[index]

    return transient(
        block, drive, period * len(images), samples=4 * len(images) + 1, max_steps=1_000_000
    )


def test_limited_inputs_keep_every_weight_exactly():
    block, rng = crossbar()
    images = jnp.asarray(rng.uniform(0.0, V_P, (40, 16)))  # the limiter keeps inputs <= V_p
    result = repeated_inferences(block, images, 20e-9)
    assert float(result.max_memristor_voltage) < THRESHOLD
    final_states = block.states(result.final_state)
    np.testing.assert_array_equal(
        np.asarray(final_states), np.asarray(block.states(block.initial_state()))
    )


def test_inputs_above_threshold_drift_the_weights():
    block, rng = crossbar()
    images = jnp.asarray(rng.uniform(0.0, 1.6 * THRESHOLD, (40, 16)))  # no limiter
    result = repeated_inferences(block, images, 20e-9)
    assert float(result.max_memristor_voltage) > THRESHOLD
    drift = np.abs(
        np.asarray(block.states(result.final_state))
        - np.asarray(block.states(block.initial_state()))
    )
    assert drift.max() > 1e-3


WRITE_TIMES = np.linspace(0.0, 30e-9, 1201)
"""Where the write pulse's stored ngspice trajectory is sampled (25 ps apart; ngspice ran
on 5 ps steps)."""


def _write_case():
    device = VTEAM.with_thresholds(
        THRESHOLD, k_off=1e8, k_on=-1e8, alpha_off=3.0, alpha_on=3.0, r_on=1e3, r_off=100e3
    )
    block = WriteCircuit(device, 1e3, initial=0.9)
    return block, vteam_write_netlist(block, 1.8, 2e-9, 20e-9, 1e-9, 30e-9, 5e-12)


def _trajectory(spice):
    return {"v(x)": np.interp(WRITE_TIMES, spice["time"], spice["v(x)"])}


def test_write_pulse_trajectory_agrees_with_ngspice():
    """VTEAM state under a 1.8 V, 20 ns pulse: within 2% of its change at every sample
    (ngspice's trajectory stored, :mod:`spice_references`)."""
    block, netlist = _write_case()
    ours = transient(block, pulse(1.8, 2e-9, 20e-9, 1e-9), 30e-9, rtol=1e-9, atol=1e-12)
    spice = np.asarray(spice_references.stored("write_pulse", netlist, None)["v(x)"])
    theirs = np.interp(np.asarray(ours.ts), WRITE_TIMES, spice)
    change = abs(0.9 - spice[-1])
    assert change > 0.5  # the pulse does switch the device
    assert np.max(np.abs(np.asarray(ours.outputs[:, 0]) - theirs)) <= 0.02 * change


@pytest.mark.slow
def test_live_ngspice_gives_the_stored_write_pulse():
    """ngspice, run now, gives the stored write-pulse trajectory."""
    _, netlist = _write_case()
    spice_references.live("write_pulse", netlist, None, ["v(x)"], _trajectory)


def _held(voltages, span=10.0, knots=11):
    """Voltages held constant over ``span`` (ns) as a waveform."""
    ts = jnp.linspace(0.0, span, knots)
    values = jnp.broadcast_to(jnp.asarray(voltages), (knots, len(voltages)))
    return Waveform(ts, values, jnp.zeros_like(values))


def test_state_change_of_one_inference_against_the_closed_form():
    """VTEAM without a window moves at -k (v / v_th - 1)^alpha above threshold, whatever its
    state: a voltage held for T moves it by exactly that times T; below threshold not at all
    (to the last bit); and a smooth pulse, recorded as a transient records it, by the
    integral of the rate over the pulse, computed here by scipy's quadrature (an independent
    reference), within 1e-6 relative (the Hermite interpolant between knots)."""
    from scipy.integrate import quad

    device = programming_device(1e-8, 1e-6, 0.1, rate=1e8)
    voltages = np.array([0.05, 0.0999, 0.11, 0.13, -0.12, -0.15])
    change = state_change_per_inference(device, _held(voltages), jnp.full(6, 0.5), 1e-9)
    above = np.maximum(voltages / 0.1 - 1.0, 0.0) ** 3
    below = np.maximum(voltages / -0.1 - 1.0, 0.0) ** 3
    expected = (-1e8 * above + 1e8 * below) * 10e-9
    np.testing.assert_allclose(np.asarray(change), expected, rtol=1e-9, atol=0.0)
    assert np.asarray(change)[:2].tolist() == [0.0, 0.0]

    # a smooth pulse, 0.15 V at 4 ns, 1 ns wide, as a transient records it: values and
    # slopes at knots (every 0.05 ns) between which the cubic Hermite interpolant runs
    def pulse_at(t):
        return 0.15 * np.exp(-0.5 * (t - 4.0) ** 2)

    ts = np.arange(0.0, 10.0 + 1e-9, 0.05)
    values, slopes = pulse_at(ts), -(ts - 4.0) * pulse_at(ts)
    wave = Waveform(jnp.asarray(ts), jnp.asarray(values)[:, None], jnp.asarray(slopes)[:, None])
    change = state_change_per_inference(device, wave, jnp.full(1, 0.5), 1e-9)
    reference, _ = quad(
        lambda t: -1e8 * max(pulse_at(t) / 0.1 - 1.0, 0.0) ** 3 * 1e-9,
        0.0,
        10.0,
        points=[4.0 - np.sqrt(2 * np.log(1.5)), 4.0, 4.0 + np.sqrt(2 * np.log(1.5))],
        epsabs=0.0,
        epsrel=1e-12,
    )
    assert float(change[0]) == pytest.approx(reference, rel=1e-6)  # the interpolant's error


def test_drift_over_inferences_follows_the_inferences_one_by_one():
    """The inference-averaged drift against the same inference applied 200 times in turn, on
    a device with a Joglekar window (so that the change per inference depends on the state):
    within 2 % of the total drift (the averaging error is second order in one inference's
    change, here ~1e-3 of the range); exactly n times one inference's change without a
    window; held within [0, 1] at the bounds."""
    windowed = VTEAM.with_thresholds(
        0.1, k_off=1e7, k_on=-1e7, alpha_off=3.0, alpha_on=3.0, window_p=2
    )
    wave = _held([0.12, -0.115, 0.11], span=5.0)
    start = jnp.asarray([0.7, 0.3, 0.5])
    state = start
    for _ in range(200):
        state = state + state_change_per_inference(windowed, wave, state, 1e-9)
    averaged = drift_over_inferences(windowed, wave, start, [1.0, 200.0], 1e-9)
    total = np.abs(np.asarray(state - start))
    assert total.min() > 5e-3  # every state moved
    np.testing.assert_allclose(np.asarray(averaged[-1]), np.asarray(state), atol=0.02 * total.max())
    one = state_change_per_inference(windowed, wave, start, 1e-9)
    np.testing.assert_allclose(np.asarray(averaged[0] - start), np.asarray(one), rtol=1e-3)

    plain = programming_device(1e-8, 1e-6, 0.1, rate=1e8)
    small = _held([0.101], span=10.0)  # 1e-6 per inference
    one = state_change_per_inference(plain, small, jnp.full(1, 0.5), 1e-9)
    drift = drift_over_inferences(plain, small, jnp.full(1, 0.5), [10.0, 1e4, 1e6], 1e-9)
    np.testing.assert_allclose(
        np.asarray(drift[:2, 0]) - 0.5, [10 * one[0], 1e4 * one[0]], rtol=1e-6
    )
    assert float(drift[2, 0]) == 0.0  # 1e6 x 1e-6 would cross x = 0: held at the bound
    with pytest.raises(MemjaxError, match="increasing"):
        drift_over_inferences(plain, small, jnp.full(1, 0.5), [10.0, 5.0], 1e-9)

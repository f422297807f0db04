"""Read disturb with and without the limiter; a write pulse against ngspice."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.circuits import ConductanceMapping, PairKernel, transient
from memjax.circuits.disturb import DynamicCrossbar, WriteCircuit, pulse
from memjax.circuits.spice import ngspice_available, run_ngspice, vteam_write_netlist
from memjax.devices import VTEAM, OpAmp

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


def test_write_pulse_trajectory_agrees_with_ngspice():
    """VTEAM state under a 1.8 V, 20 ns pulse: within 2% of its change at every sample."""
    assert ngspice_available(), "ngspice must be installed (.ci/run installs it); never skipped"
    device = VTEAM.with_thresholds(
        THRESHOLD, k_off=1e8, k_on=-1e8, alpha_off=3.0, alpha_on=3.0, r_on=1e3, r_off=100e3
    )
    block = WriteCircuit(device, 1e3, initial=0.9)
    ours = transient(block, pulse(1.8, 2e-9, 20e-9, 1e-9), 30e-9, rtol=1e-9, atol=1e-12)
    spice = run_ngspice(vteam_write_netlist(block, 1.8, 2e-9, 20e-9, 1e-9, 30e-9, 5e-12), ["v(x)"])
    theirs = np.interp(np.asarray(ours.ts), spice["time"], spice["v(x)"])
    change = abs(0.9 - spice["v(x)"][-1])
    assert change > 0.5  # the pulse does switch the device
    assert np.max(np.abs(np.asarray(ours.outputs[:, 0]) - theirs)) <= 0.02 * change

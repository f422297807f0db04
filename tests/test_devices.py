"""Devices against closed forms: pinched hysteresis, frozen thresholds, single pole, Shockley."""

import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import wrightomega

from memjax.devices import VTEAM, HPLinearDrift, Yakopcic
from memjax.devices.diode import Diode, wright_omega
from memjax.devices.opamp import OpAmp
from memjax.errors import MemjaxError


@pytest.fixture(autouse=True)
def float64():
    """Closed-form comparisons at float64 precision, for this module's tests only."""
    with jax.enable_x64(True):
        yield


def drive_memristor(device, x0, amplitude, frequency, periods=2, samples=801):
    """Integrate dx/dt under v(t) = A sin(2 pi f t); returns t, v, x, i."""
    t_end = periods / frequency
    ts = jnp.linspace(0.0, t_end, samples)
    voltage = lambda t: amplitude * jnp.sin(2 * jnp.pi * frequency * t)  # noqa: E731
    term = diffrax.ODETerm(lambda t, x, args: device.state_rate(x, voltage(t)))
    solution = diffrax.diffeqsolve(
        term,
        diffrax.Tsit5(),
        0.0,
        t_end,
        dt0=t_end / 1000,
        y0=jnp.asarray(x0, float),
        saveat=diffrax.SaveAt(ts=ts),
        max_steps=100_000,
        stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10),
    )
    v = voltage(ts)
    return ts, v, solution.ys, device.current(solution.ys, v)


def lobe_area(v, i):
    """|integral of i dv| over one positive half-period: the area of one lobe (W).

    Over a whole period the two lobes of the pinched loop cancel."""
    return abs(float(jnp.trapezoid(i, v)))


@pytest.mark.parametrize("window", ["joglekar", "biolek"])
def test_hp_pinched_hysteresis_shrinks_with_frequency(window):
    device = HPLinearDrift(window=window)
    areas = []
    for frequency in (1.0, 4.0, 16.0):
        _, v, x, i = drive_memristor(device, 0.5, 1.0, frequency)
        zero = np.isclose(np.asarray(v), 0.0, atol=1e-12)
        assert zero.sum() >= 3
        np.testing.assert_allclose(np.asarray(i)[zero], 0.0, atol=1e-15)  # pinched at origin
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        # samples 400..600 are the second period's positive half (801 samples, 2 periods)
        areas.append(lobe_area(v[400:601], i[400:601]))
    assert areas[0] > 2.0 * areas[1] > 4.0 * areas[2] > 0  # the lobe shrinks with frequency
    # Closed form at low drive: x(t) = x0 + k q(t), k = mu_v R_on / D^2, when the window ~ 1
    # and R ~ R(x0). Here only the sign of the drift is checked: positive charge raises x.
    _, v, x, _ = drive_memristor(device, 0.5, 1.0, 16.0, periods=0.5)
    assert float(x[-1]) == pytest.approx(float(x.max()), rel=1e-3) and float(x[-1]) > 0.5


@pytest.mark.parametrize(
    "device",
    [
        VTEAM.with_thresholds(0.5),
        VTEAM.with_thresholds(0.5, iv="exponential", window_p=2),
        Yakopcic.yakopcic2011(),
    ],
)
def test_threshold_models_are_frozen_below_threshold(device):
    low, high = device.thresholds
    amplitude = 0.95 * min(-low, high)
    _, _, x, _ = drive_memristor(device, 0.37, amplitude, 1e6, periods=3)
    np.testing.assert_array_equal(np.asarray(x), 0.37)  # exactly: the rate is zero
    _, _, x_above, _ = drive_memristor(device, 0.37, 1.5 * max(-low, high), 1e6, periods=0.5)
    assert abs(float(x_above[-1]) - 0.37) > 1e-6


def test_hp_state_conductance_inverse():
    device = HPLinearDrift()
    x = jnp.linspace(0, 1, 11)
    np.testing.assert_allclose(device.state_for_conductance(device.conductance(x)), x, atol=1e-9)
    g_min, g_max = device.conductance_range
    assert float(g_min) == pytest.approx(1 / 16e3) and float(g_max) == pytest.approx(1 / 100)


def test_single_pole_follower_step_matches_closed_form():
    """Voltage follower (v- = y): y(t) = A0/(1+A0) V (1 - exp(-(1+A0) t / tau_p))."""
    amp = OpAmp(
        open_loop_gain=1e4, gain_bandwidth=1e8, slew_rate=math.inf, rail_low=-10.0, rail_high=10.0
    )
    step = 0.5
    tau = amp.pole_time_constant / (1 + amp.open_loop_gain)
    ts = jnp.linspace(0, 8 * tau, 200)
    term = diffrax.ODETerm(lambda t, y, args: amp.output_rate(y, step - y))
    solution = diffrax.diffeqsolve(
        term,
        diffrax.Tsit5(),
        0.0,
        ts[-1],
        dt0=tau / 10,
        y0=0.0,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-12),
    )
    gain = amp.open_loop_gain / (1 + amp.open_loop_gain)
    expected = gain * step * (1 - jnp.exp(-ts / tau))
    np.testing.assert_allclose(solution.ys, expected, atol=1e-7 * step)
    assert abs(tau - 1 / (2 * math.pi * amp.gain_bandwidth)) / tau < 1e-3  # tau ~ 1/(2 pi GBW)


def test_opamp_rails_and_slew_without_windup():
    amp = OpAmp(slew_rate=1e8, rail_low=-1.0, rail_high=1.0, rail_softness=1e-3)
    # Far overdriven: the output slews at S, stops at the rail and never passes it.
    assert float(amp.output_rate(0.0, 1.0)) == pytest.approx(1e8, rel=1e-6)
    assert float(amp.output_rate(1.0, 1.0)) == 0.0
    assert float(amp.output_rate(1.0, -1.0)) == pytest.approx(-1e8, rel=1e-6)  # leaves at once
    assert float(amp.steady_output(1.0)) == 1.0


def test_diode_matches_shockley_and_lambert():
    z = np.array([-40.0, -3.0, 0.0, 2.0, 30.0, 1e4])
    np.testing.assert_allclose(wright_omega(jnp.asarray(z)), wrightomega(z).real, rtol=1e-12)
    diode = Diode.d1n4148()
    for v in (-1.0, 0.2, 0.5, 0.7, 1.0, 10.0):
        i = float(diode.current(v))
        junction = v - i * diode.series_resistance
        assert i == pytest.approx(float(diode.junction_current(junction)), rel=1e-9, abs=0)
    assert float(diode.current(-5.0)) == pytest.approx(
        -diode.saturation_current, rel=1e-9, abs=0
    )  # nA currents: pytest's default abs=1e-12 would allow 4e-4
    assert np.isfinite(float(jax.grad(diode.current)(50.0)))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: HPLinearDrift(r_on=2e4), "r_on = 20000.0 must be below r_off"),
        (lambda: VTEAM(v_on=0.2), "VTEAM.v_on = 0.2: expected a negative threshold"),
        (lambda: VTEAM(k_on=3.0), "VTEAM.k_on"),
        (lambda: Yakopcic(v_p=-0.1), "Yakopcic.v_p"),
        (lambda: OpAmp(gain_bandwidth=-1.0), "OpAmp.gain_bandwidth"),
        (lambda: OpAmp(rail_low=1.0, rail_high=0.0), "rail_low = 1.0 must be below rail_high"),
        (lambda: Diode(series_resistance=-1.0), "Diode.series_resistance"),
        (lambda: OpAmp(quiescent_power=-1e-3), "OpAmp.quiescent_power"),
        (lambda: OpAmp(bias_figure_of_merit=0.0), "OpAmp.bias_figure_of_merit"),
        (lambda: OpAmp(bias_load_capacitance=-1e-15), "OpAmp.bias_load_capacitance"),
    ],
)
def test_non_physical_parameters_are_rejected(build, message):
    with pytest.raises(MemjaxError, match=message):
        build()


def test_opamp_bias_power_follows_its_gbw():
    """I_q = GBW C_L / FOM_S: 1 GHz into 50 fF at 500 MHz pF / mA is 100 uA, 0.5 mW over the
    5 V between the rails; linear in GBW; a given quiescent power wins; the ideal op-amp
    draws none."""
    supply_current = 1e9 * 50e-15 / (500e6 * 1e-12 / 1e-3)  # A, from the published units
    assert supply_current == pytest.approx(100e-6, rel=1e-12)
    assert OpAmp().bias_power == pytest.approx(5.0 * 100e-6, rel=1e-12)
    assert OpAmp(gain_bandwidth=2e8).bias_power == pytest.approx(0.2 * 5e-4, rel=1e-12)
    assert OpAmp(rail_low=-1.0, rail_high=1.0).bias_power == pytest.approx(2e-4, rel=1e-12)
    assert OpAmp(quiescent_power=1e-6).bias_power == 1e-6
    assert OpAmp.ideal().bias_power == 0.0
